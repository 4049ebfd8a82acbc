import type { SyncDecodeFailure, SyncPcmDecoderKind } from './sync-pcm-decoder';

/** Main thread → decoding thread. `id` names one stream, unique per thread for the thread's life. */
export type ToDecodeThread =
  | { t: 'open'; id: number; kind: SyncPcmDecoderKind; primed: boolean }
  /** Bytes of the stream, in order (copied: see DecodeThreads on why nothing is transferred). */
  | { t: 'push'; id: number; bytes: Uint8Array }
  /** The input ended: decode what is left and forget the stream. */
  | { t: 'finish'; id: number }
  /** Forget the stream now (killed by its owner). */
  | { t: 'close'; id: number }
  /** Report the thread's own memory (answered with `memory`, out of the streams' order count). */
  | { t: 'memory'; req: number };

/** Decoding thread → main thread: one answer per `push` and per `finish`, in order. */
export interface DecodeThreadOutput {
  t: 'out';
  id: number;
  /** PCM it produced (copied), if any. */
  pcm: Uint8Array | null;
  /** Input bytes of the `push` answered (0 for `finish`). */
  consumed: number;
  /** The stream failed: no more output for it. */
  failure?: SyncDecodeFailure;
  /** Answer to `finish`: the stream is done. */
  finished?: boolean;
}

/** Decoding thread → main thread, once: its entry is loaded and it takes messages (what was sent before waited). */
export interface DecodeThreadReady {
  t: 'ready';
}

/** A decoding thread's own memory, as it sees it (its isolate's heap and the buffers it allocated), bytes. */
export interface DecodeThreadMemory {
  heapUsed: number;
  heapTotal: number;
  /** Memory outside the heap that its isolate accounts for (array buffers' backing stores, wasm memories). */
  external: number;
  arrayBuffers: number;
  /** Young-generation collections (scavenges) and full collections since the thread started. */
  scavenges: number;
  fullGcs: number;
}

/** Decoding thread → main thread: the answer to `memory`. */
export interface DecodeThreadMemoryAnswer {
  t: 'memory';
  req: number;
  memory: DecodeThreadMemory;
}

export type FromDecodeThread = DecodeThreadOutput | DecodeThreadReady | DecodeThreadMemoryAnswer;

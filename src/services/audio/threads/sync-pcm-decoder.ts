import type { AudioDecodeError } from '../session-audio-decoder';

/** Why a synchronous decoder gave up on its stream (the PCM before that point is still returned). */
export interface SyncDecodeFailure {
  code: AudioDecodeError['code'];
  message: string;
}

/** What one call of a synchronous decoder produced. */
export interface SyncDecodeResult {
  /** 16 kHz mono s16le, even-length (may be empty). */
  pcm: Buffer;
  /** Set once the stream cannot go on; later calls return nothing. */
  failure?: SyncDecodeFailure;
}

/**
 * A decoder that does all its work inside each call: one stream's bytes in stream order, PCM out. It runs where it is
 * called, on the main thread or on a decoding thread (`DecodeThreads`), and holds no timers or handles.
 */
export interface SyncPcmDecoder {
  /** Decodes everything `bytes` completes (a split element waits for its rest). */
  push(bytes: Uint8Array): SyncDecodeResult;
  /** The input ended: decodes what is left, if anything. */
  finish(): SyncDecodeResult;
  /** Frees its resources (native decoder state); no call after this. */
  close(): void;
}

/** The synchronous decoders a decoding thread can run, by the stream kind they decode. */
export type SyncPcmDecoderKind = 'webm-opus';

/** How a stream's decoder starts. */
export interface SyncPcmDecoderOptions {
  /** The stream continues a recording that already had a decoder (fed its head again): see WebmOpusDecoder. */
  primed: boolean;
}

/** Creates a decoder of each kind (a decoding thread is given one of these at its start). */
export type SyncPcmDecoderMakers = Record<SyncPcmDecoderKind, (opts: SyncPcmDecoderOptions) => SyncPcmDecoder>;

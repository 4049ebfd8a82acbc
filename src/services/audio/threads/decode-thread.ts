import type { FromDecodeThread, DecodeThreadMemory, DecodeThreadOutput, ToDecodeThread } from './decode-thread-protocol';
import type { SyncDecodeResult, SyncPcmDecoder, SyncPcmDecoderMakers } from './sync-pcm-decoder';

/** The side of a MessagePort a decoding thread uses (worker_threads' `parentPort`). */
export interface DecodeThreadPort {
  on(event: 'message', listener: (m: ToDecodeThread) => void): unknown;
  postMessage(m: FromDecodeThread): void;
}

/**
 * The body of a decoding thread: one synchronous decoder per open stream, each message handled to completion and
 * answered (`push` and `finish` get exactly one `out` each, in order, so the main thread can count its bytes in
 * flight). A decoder that throws fails its stream, never the thread.
 */
export function runDecodeThread(port: DecodeThreadPort, makers: SyncPcmDecoderMakers, memory?: () => DecodeThreadMemory): void {
  const streams = new Map<number, SyncPcmDecoder>();

  const answer = (id: number, consumed: number, res: SyncDecodeResult | undefined, finished: boolean): void => {
    let pcm: Uint8Array | null = null;
    if (res && res.pcm.length > 0) {
      pcm = ownBytes(res.pcm);
    }
    const out: DecodeThreadOutput = { t: 'out', id, pcm, consumed };
    if (res?.failure) out.failure = res.failure;
    if (finished) out.finished = true;
    port.postMessage(out);
  };

  const run = (id: number, dec: SyncPcmDecoder, f: (d: SyncPcmDecoder) => SyncDecodeResult): SyncDecodeResult => {
    let res: SyncDecodeResult;
    try {
      res = f(dec);
    } catch (err) {
      res = { pcm: Buffer.alloc(0), failure: { code: 'AUDIO_DECODE_FAILED', message: `Audio could not be decoded (${(err as Error).message})` } };
    }
    if (res.failure) forget(id);
    return res;
  };

  const forget = (id: number): void => {
    const dec = streams.get(id);
    if (!dec) return;
    streams.delete(id);
    try {
      dec.close();
    } catch {
      // already unusable
    }
  };

  port.on('message', (m: ToDecodeThread) => {
    switch (m.t) {
      case 'open': {
        forget(m.id);
        try {
          streams.set(m.id, makers[m.kind]({ primed: m.primed }));
        } catch {
          // The next push answers with a failure (the stream is unknown).
        }
        return;
      }
      case 'push': {
        const dec = streams.get(m.id);
        if (!dec) {
          answer(m.id, m.bytes.length, { pcm: Buffer.alloc(0), failure: { code: 'AUDIO_DECODE_FAILED', message: 'Audio could not be decoded (no decoder)' } }, false);
          return;
        }
        const bytes = m.bytes;
        answer(m.id, bytes.length, run(m.id, dec, (d) => d.push(bytes)), false);
        return;
      }
      case 'finish': {
        const dec = streams.get(m.id);
        const res = dec ? run(m.id, dec, (d) => d.finish()) : undefined;
        forget(m.id);
        answer(m.id, 0, res, true);
        return;
      }
      case 'close':
        forget(m.id);
        return;
      case 'memory':
        if (memory) port.postMessage({ t: 'memory', req: m.req, memory: memory() });
        return;
    }
  });
  port.postMessage({ t: 'ready' });
}

/**
 * Bytes a message can carry as they are: the array itself when it spans its whole buffer, else an exact-size copy (a
 * message copies a view's whole underlying buffer).
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b;
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return copy;
}

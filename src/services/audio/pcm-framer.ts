import { UPSTREAM_BYTES_PER_MS } from './audio-types';

export interface PcmFramerOptions {
  /** Smallest frame, in ms (default 20 → 640 bytes at 16 kHz mono s16le). */
  minMs?: number;
  /** Largest frame, in ms (default 100 → 3200 bytes). */
  maxMs?: number;
  /** Bytes per ms of the PCM (default 32 = 16 kHz mono s16le). */
  bytesPerMs?: number;
}

/**
 * Cuts a PCM byte stream (16 kHz mono s16le by default) into upstream frames of minMs..maxMs.
 *
 * A frame is emitted as soon as at least `minMs` is buffered: everything buffered goes out at once, in frames of at
 * most `maxMs`; only a remainder shorter than `minMs` is carried until more audio arrives (or `flush()`).
 * Frames always hold whole 16-bit samples.
 */
export class PcmFramer {
  readonly minBytes: number;
  readonly maxBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    opts: PcmFramerOptions = {},
  ) {
    const minMs = opts.minMs ?? 20;
    const maxMs = opts.maxMs ?? 100;
    const bytesPerMs = opts.bytesPerMs ?? UPSTREAM_BYTES_PER_MS;
    if (!(minMs > 0) || !(maxMs >= minMs) || !Number.isFinite(maxMs)) {
      throw new RangeError(`PcmFramer: need 0 < minMs <= maxMs (got ${minMs}, ${maxMs})`);
    }
    if (!(bytesPerMs > 0) || !Number.isFinite(bytesPerMs)) throw new RangeError(`PcmFramer: bad bytesPerMs ${bytesPerMs}`);
    this.minBytes = Math.max(2, evenFloor(minMs * bytesPerMs));
    this.maxBytes = Math.max(this.minBytes, evenFloor(maxMs * bytesPerMs));
  }

  /** Bytes buffered and not yet emitted (always < minBytes between calls). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  push(pcm: Buffer): void {
    if (pcm.length === 0) return;
    this.pending.push(pcm);
    this.pendingBytes += pcm.length;
    while (this.pendingBytes >= this.minBytes) {
      this.onFrame(this.take(evenFloor(Math.min(this.pendingBytes, this.maxBytes))));
    }
  }

  /** Emits whatever is buffered (shorter than minMs) as a last frame; a dangling odd byte is dropped. */
  flush(): void {
    const n = evenFloor(this.pendingBytes);
    const frame = n > 0 ? this.take(n) : null;
    this.reset();
    if (frame) this.onFrame(frame);
  }

  /** Drops buffered audio without emitting it. */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const head = this.pending[0]!;
    if (head.length >= n) {
      out = head.subarray(0, n);
      if (head.length === n) this.pending.shift();
      else this.pending[0] = head.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const b = this.pending[0]!;
        const k = Math.min(b.length, n - off);
        b.copy(out, off, 0, k);
        off += k;
        if (k === b.length) this.pending.shift();
        else this.pending[0] = b.subarray(k);
      }
    }
    this.pendingBytes -= n;
    return out;
  }
}

function evenFloor(x: number): number {
  const n = Math.floor(x);
  return n - (n & 1);
}

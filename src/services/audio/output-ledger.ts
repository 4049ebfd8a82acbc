import { UPSTREAM_BYTES_PER_MS } from './audio-types';

/**
 * Audio a decoder has been given and not yet delivered. Each write is recorded with its duration (when known: WebM
 * spans, Ogg granules, raw sample counts); output confirms writes in order once it covers them (a write of unknown
 * duration once any output followed it). When the decoder stalls, the unconfirmed writes are fed to its replacement,
 * and the part of the first one that was already delivered is dropped from the replacement's output.
 */
export class OutputLedger {
  private readonly writes: Array<{ bytes: Buffer; ms: number | undefined; outputAtWrite: number }> = [];
  private bytes = 0;
  /** Audio delivered, ms; and of it, the part that confirmed whole writes. */
  private outputMs = 0;
  private confirmedMs = 0;

  constructor(
    /** Most bytes kept for replay (the oldest writes are given up beyond it). */
    private readonly maxBytes: number,
    /**
     * Audio a write may come short of and still count as answered (the Opus pre-skip, 6.5 ms for ffmpeg- and
     * Firefox-made streams, and the resampler's last millisecond, which ffmpeg keeps until its input ends).
     */
    private readonly slackMs = 10,
  ) {}

  /** Output is still owed for something written. */
  get owed(): boolean {
    return this.writes.length > 0;
  }

  get pending(): number {
    return this.writes.length;
  }

  /** A write of `bytes` (in the form a replacement decoder can take) holding `ms` of audio (undefined: unknown). */
  record(bytes: Buffer, ms: number | undefined): void {
    this.writes.push({ bytes, ms, outputAtWrite: this.outputMs });
    this.bytes += bytes.length;
    while (this.bytes > this.maxBytes && this.writes.length > 1) {
      const dropped = this.writes.shift()!;
      this.bytes -= dropped.bytes.length;
      this.confirmedMs += dropped.ms ?? 0;
    }
  }

  /** `bytes` of 16 kHz PCM were delivered. */
  delivered(bytes: number): void {
    this.outputMs += bytes / UPSTREAM_BYTES_PER_MS;
    for (;;) {
      const head = this.writes[0];
      if (!head) break;
      const done = head.ms !== undefined ? this.confirmedMs + head.ms <= this.outputMs + this.slackMs : this.outputMs > head.outputAtWrite;
      if (!done) break;
      this.writes.shift();
      this.bytes -= head.bytes.length;
      this.confirmedMs = head.ms !== undefined ? this.confirmedMs + head.ms : this.outputMs;
    }
  }

  /**
   * Takes the unconfirmed writes for a replacement decoder, with how many bytes of its output to drop first (what
   * of the first write was delivered already).
   */
  takeForReplay(): { writes: Array<{ bytes: Buffer; ms: number | undefined }>; discardBytes: number } {
    const writes = this.writes.splice(0).map(({ bytes, ms }) => ({ bytes, ms }));
    this.bytes = 0;
    const deliveredMs = writes[0]?.ms !== undefined ? Math.max(0, this.outputMs - this.confirmedMs) : 0;
    return { writes, discardBytes: Math.floor((deliveredMs * UPSTREAM_BYTES_PER_MS) / 2) * 2 };
  }
}

/**
 * How many decoder processes one session may start per sliding minute: a client that flips PCM parameters or
 * repeats a WebM header on every message (each one a new ffmpeg) is refused with 429 instead of costing a process
 * spawn per message.
 */
export class DecoderRestartBudget {
  private readonly starts: number[] = [];

  constructor(
    /** Starts per window (0 = unlimited). */
    private readonly limit: number,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Uses one start if the window has room; otherwise returns the seconds until it has (≥ 1). */
  take(): { ok: true } | { ok: false; retryAfterSec: number } {
    if (!(this.limit > 0)) return { ok: true };
    const t = this.now();
    while (this.starts.length && this.starts[0]! <= t - this.windowMs) this.starts.shift();
    if (this.starts.length >= this.limit) {
      return { ok: false, retryAfterSec: Math.max(1, Math.ceil((this.starts[0]! + this.windowMs - t) / 1000)) };
    }
    this.starts.push(t);
    return { ok: true };
  }
}

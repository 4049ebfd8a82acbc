/**
 * Bounds the audio decoded from a recording by what its block times allow. An Opus packet says how long it is
 * (its TOC byte: up to 120 ms in two bytes), and libopus decodes that much whatever the packet holds, so a stream
 * of tiny packets would otherwise turn a few bytes into minutes of audio. A packet is decoded only while the audio
 * decoded so far is not ahead of the latest block time by more than one longest packet (120 ms) plus 1% of the
 * elapsed time (capture clocks drift a little against the timestamps); past that it is dropped.
 *
 * Timestamps that jump forward are believed (a gap), ones that go backward do not shrink the allowance, and a lying
 * stream that keeps jumping forward gets audio, but no more than the session's pacing accepts (the owner holds the
 * output at twice real time and decoding stops with it).
 */
export const MAX_PACKET_MS = 120;
const DRIFT_ALLOWANCE = 0.01;

export class TimelineGuard {
  private firstMs: number | undefined;
  private latestMs = 0;
  private decodedMs = 0;

  /** Whether a packet stamped `timeMs` may be decoded now. */
  admits(timeMs: number): boolean {
    if (!Number.isFinite(timeMs)) return false;
    if (this.firstMs === undefined) {
      this.firstMs = timeMs;
      this.latestMs = timeMs;
    } else if (timeMs > this.latestMs) {
      this.latestMs = timeMs;
    }
    const elapsed = this.latestMs - this.firstMs;
    return this.decodedMs <= elapsed * (1 + DRIFT_ALLOWANCE) + MAX_PACKET_MS;
  }

  /** Counts audio that was decoded. */
  decoded(ms: number): void {
    this.decodedMs += ms;
  }

  /** A new recording: its own timeline. */
  reset(): void {
    this.firstMs = undefined;
    this.latestMs = 0;
    this.decodedMs = 0;
  }
}

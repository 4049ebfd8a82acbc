import { UPSTREAM_BYTES_PER_MS } from '../audio/audio-types';

/**
 * Bounded FIFO of PCM frames held while the upstream is down or rotating. When full, the OLDEST audio is
 * dropped (the newest speech matters most after a gap) and counted, never silently.
 */
export class PcmBacklog {
  private frames: Buffer[] = [];
  private bytes = 0;
  private droppedBytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(frame: Buffer): void {
    if (frame.length === 0) return;
    this.frames.push(frame);
    this.bytes += frame.length;
    this.enforceLimit();
  }

  /**
   * Puts frames back in FRONT of the queue, in their order (audio that was sent before everything queued here
   * and has to be sent again). The limit still applies: if it overflows, the oldest audio goes first.
   */
  unshift(frames: readonly Buffer[]): void {
    const kept = frames.filter((f) => f.length > 0);
    if (kept.length === 0) return;
    this.frames = [...kept, ...this.frames];
    for (const f of kept) this.bytes += f.length;
    this.enforceLimit();
  }

  /** Removes and returns every frame, oldest first. */
  drain(): Buffer[] {
    const out = this.frames;
    this.frames = [];
    this.bytes = 0;
    return out;
  }

  /** Drops everything and counts it as dropped (the link is gone for good, the audio will never be sent). */
  dropAll(): void {
    this.droppedBytes += this.bytes;
    this.frames = [];
    this.bytes = 0;
  }

  get bufferedBytes(): number {
    return this.bytes;
  }

  get bufferedMs(): number {
    return this.bytes / UPSTREAM_BYTES_PER_MS;
  }

  get droppedMs(): number {
    return this.droppedBytes / UPSTREAM_BYTES_PER_MS;
  }

  get length(): number {
    return this.frames.length;
  }

  private enforceLimit(): void {
    while (this.bytes > this.maxBytes && this.frames.length > 0) {
      const old = this.frames.shift()!;
      this.bytes -= old.length;
      this.droppedBytes += old.length;
    }
  }
}

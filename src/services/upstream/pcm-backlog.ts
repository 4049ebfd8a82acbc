import { UPSTREAM_BYTES_PER_MS } from '../audio/audio-types';

/**
 * Bounded FIFO of PCM frames held while the upstream is down or rotating. When full, the OLDEST audio is
 * dropped (the newest speech matters most after a gap) and counted.
 */
export class PcmBacklog {
  private frames: Buffer[] = [];
  private bytes = 0;
  private droppedBytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(frame: Buffer): void {
    this.frames.push(frame);
    this.bytes += frame.length;
    while (this.bytes > this.maxBytes && this.frames.length > 0) {
      const old = this.frames.shift()!;
      this.bytes -= old.length;
      this.droppedBytes += old.length;
    }
  }

  /** Removes and returns every frame, oldest first. */
  drain(): Buffer[] {
    const out = this.frames;
    this.frames = [];
    this.bytes = 0;
    return out;
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
}

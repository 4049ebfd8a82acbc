import { UPSTREAM_BYTES_PER_MS } from '../audio/audio-types';
import type { ActivityKind } from './upstream-types';

/** A manual activity marker held in its place among the frames. */
export interface HeldActivity {
  activity: ActivityKind;
}

export type BacklogItem = Buffer | HeldActivity;

export function isHeldActivity(item: BacklogItem): item is HeldActivity {
  return !Buffer.isBuffer(item);
}

/**
 * Bounded FIFO of PCM frames held while the upstream is down or rotating. When full, the OLDEST audio is
 * dropped (the newest speech matters most after a gap) and counted, never silently. Activity markers keep their
 * place between the frames and are never dropped (a lost `activityEnd` would leave the model waiting for the turn).
 */
export class PcmBacklog {
  private frames: BacklogItem[] = [];
  private bytes = 0;
  private droppedBytes = 0;

  /** `onTrim(frame, rest)`: the oldest audio was cut from the head of `frame`; `rest` replaces it. */
  constructor(
    private readonly maxBytes: number,
    private readonly onTrim?: (frame: Buffer, rest: Buffer) => void,
  ) {}

  push(frame: Buffer): void {
    if (frame.length === 0) return;
    this.frames.push(frame);
    this.bytes += frame.length;
    this.enforceLimit();
  }

  /** Holds an activity marker after the frames held so far. */
  pushActivity(activity: ActivityKind): void {
    this.frames.push({ activity });
  }

  /**
   * Puts frames back in FRONT of the queue, in their order (audio that was sent before everything queued here
   * and has to be sent again). The limit still applies: if it overflows, the oldest audio goes first.
   */
  unshift(frames: readonly BacklogItem[]): void {
    const kept = frames.filter((f) => isHeldActivity(f) || f.length > 0);
    if (kept.length === 0) return;
    this.frames = [...kept, ...this.frames];
    for (const f of kept) if (!isHeldActivity(f)) this.bytes += f.length;
    this.enforceLimit();
  }

  /** Removes and returns every frame, oldest first. */
  drain(): BacklogItem[] {
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

  /**
   * Drops the oldest audio beyond the bound: whole frames, then the head of the oldest frame left (a frame can hold
   * up to LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS, more than the backlog may keep: its newest part is what is kept).
   */
  private enforceLimit(): void {
    while (this.bytes > this.maxBytes) {
      const i = this.frames.findIndex((f) => !isHeldActivity(f));
      if (i < 0) break;
      const old = this.frames[i] as Buffer;
      const excess = this.bytes - this.maxBytes;
      const cut = excess + (excess & 1); // whole 16-bit samples
      if (cut < old.length) {
        const rest = old.subarray(cut);
        this.frames[i] = rest;
        this.onTrim?.(old, rest);
        this.bytes -= cut;
        this.droppedBytes += cut;
        break;
      }
      this.frames.splice(i, 1);
      this.bytes -= old.length;
      this.droppedBytes += old.length;
    }
  }
}

import type { ActivityKind } from '../upstream/upstream-types';

/** Audio expected from the decoder that may be missing when a marker is placed (Opus pre-skip, resampler), ms. */
export const MARKER_TOLERANCE_MS = 10;
/** With nothing decoded for this long (and nothing waiting in the decoder), the audio owed is taken as out, ms. */
export const MARKER_QUIET_MS = 400;

export interface ActivityMarkersDeps {
  /** The marker's audio is all decoded: put it behind that audio (framer, pacer, upstream), in order. */
  release(kind: ActivityKind): void;
  /** True when the decoder holds nothing back (no chunk waiting to be put in order, its output not paused). */
  decoderIdle(): boolean;
  now?: () => number;
  quietMs?: number;
  toleranceMs?: number;
}

export interface MarkerPosition {
  target: number;
  unknown: boolean;
}

interface Pending {
  kind: ActivityKind;
  /** Decoded audio (ms since the session start) after which the marker goes. */
  target: number;
  /** Input of unknown duration (Ogg, MP4, WAV, an unplaced WebM chunk) was written before it: wait for quiet. */
  unknown: boolean;
}

/**
 * Places manual activity markers (`activityStart`/`activityEnd`) in the decoded audio stream: a marker placed after
 * a chunk was written to the decoder goes out after that chunk's last PCM, although the PCM is still inside ffmpeg
 * when the marker arrives. The decoder's input is accounted in ms as it is written (`expect`: a WebM write's block
 * durations, raw PCM's byte count), its output as it comes (`decoded`); a marker waits until the output reaches the
 * input written before it (minus `toleranceMs`), or, for input of unknown length or output that falls short, until
 * the decoder has been quiet for `quietMs` with nothing waiting in it. Output beyond the expectation moves the
 * expectation along (the two never drift apart by more than one marker's wait). Markers are released in order.
 */
export class ActivityMarkers {
  private expected = 0;
  private decodedMs = 0;
  private unknown = false;
  private lastTarget = 0;
  private lastProgressAt: number;
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly quietMs: number;
  private readonly toleranceMs: number;
  private disposed = false;

  constructor(private readonly deps: ActivityMarkersDeps) {
    this.now = deps.now ?? (() => performance.now());
    this.quietMs = deps.quietMs ?? MARKER_QUIET_MS;
    this.toleranceMs = deps.toleranceMs ?? MARKER_TOLERANCE_MS;
    this.lastProgressAt = this.now();
  }

  /** Markers placed and not yet released. */
  get pending(): number {
    return this.queue.length;
  }

  /** Input was written to the decoder that will produce `ms` of audio (undefined: unknown). */
  expect(ms: number | undefined): void {
    this.lastProgressAt = this.now();
    if (ms === undefined || !Number.isFinite(ms)) this.unknown = true;
    else if (ms > 0) this.expected += ms;
  }

  /** The decoder produced `ms` of audio (already handed on). */
  decoded(ms: number): void {
    this.decodedMs += ms;
    if (this.decodedMs > this.expected) this.expected = this.decodedMs;
    this.lastProgressAt = this.now();
    this.check();
  }

  /** Where a marker placed now would go (for a marker whose place is fixed before it is queued). */
  position(): MarkerPosition {
    return { target: this.expected, unknown: this.unknown };
  }

  /**
   * A marker after every input written so far, or at `at` (taken earlier with `position()`); never before a marker
   * placed earlier.
   */
  place(kind: ActivityKind, at: MarkerPosition = this.position()): void {
    if (this.disposed) return;
    const target = Math.max(at.target, this.lastTarget);
    this.lastTarget = target;
    this.queue.push({ kind, target, unknown: at.unknown });
    this.check();
  }

  /** The decoded audio was dropped (a budget cut): nothing more is owed; the markers go now, in order. */
  drop(): void {
    this.sync();
    this.releaseWhile(() => true);
  }

  dispose(): void {
    this.disposed = true;
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private sync(): void {
    this.expected = this.decodedMs;
    this.lastTarget = Math.min(this.lastTarget, this.decodedMs);
    this.unknown = false;
  }

  private check(): void {
    this.releaseWhile((p) => !p.unknown && this.decodedMs >= p.target - this.toleranceMs);
    this.arm();
  }

  private releaseWhile(ready: (p: Pending) => boolean): void {
    while (this.queue.length && !this.disposed && ready(this.queue[0]!)) this.deps.release(this.queue.shift()!.kind);
  }

  private arm(): void {
    if (this.timer || this.disposed || this.queue.length === 0) return;
    const wait = Math.max(10, this.quietMs - (this.now() - this.lastProgressAt));
    this.timer = setTimeout(() => this.onQuietCheck(), wait);
  }

  private onQuietCheck(): void {
    this.timer = undefined;
    if (this.disposed || this.queue.length === 0) return;
    if (this.now() - this.lastProgressAt >= this.quietMs && this.deps.decoderIdle()) {
      // Everything written has come out: what was still owed never will (shorter output than its timing said).
      const upTo = this.queue.length;
      let n = 0;
      this.releaseWhile(() => n++ < upTo);
      this.sync();
    }
    this.arm();
  }
}

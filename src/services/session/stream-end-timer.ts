/**
 * When to tell the model the audio stream has ended (`audioStreamEnd`, which makes it end the user's turn at once):
 * after `gapMs` in which the microphone was not heard from, and only then. The audio sent covers the time it lasts:
 * a REST client's 1 s chunk goes upstream as one burst, and the microphone is recording the next second meanwhile,
 * so the quiet is counted from the end of the audio sent (at most `maxAheadMs` past its sending), not from the
 * burst. A chunk that comes up to `gapMs` late then never splits a sentence into two turns; a client that stops
 * sending gets its stream end `gapMs` after its audio's end.
 *
 * One timer per quiet gap, not one per frame: armed by the first frame, it looks at where the audio ends when it
 * fires, and waits for what is left of the gap when frames went on meanwhile; the gap is always the whole gap.
 */
export interface StreamEndTimerOptions {
  /** Quiet this long, ms, ends the stream; 0 never does (manual activity detection). */
  gapMs: number;
  /** The audio sent counts at most this far past the moment it was sent, ms (a client faster than real time). */
  maxAheadMs?: number;
  /** The stream went quiet for the whole gap: send `audioStreamEnd`. */
  onQuiet: () => void;
  now?: () => number;
}

/** A REST client's chunk: the page's MediaRecorder timeslice. */
export const DEFAULT_MAX_AHEAD_MS = 1000;

export class StreamEndTimer {
  private timer: NodeJS.Timeout | undefined;
  /** Where the audio sent so far ends, on the clock (the microphone was heard from until then). */
  private heardUntil = 0;
  private stopped = false;
  private readonly now: () => number;
  private readonly maxAheadMs: number;

  constructor(private readonly o: StreamEndTimerOptions) {
    this.now = o.now ?? (() => performance.now());
    this.maxAheadMs = o.maxAheadMs ?? DEFAULT_MAX_AHEAD_MS;
  }

  /** A frame of `audioMs` went upstream now. */
  frameSent(audioMs: number): void {
    if (this.stopped || this.o.gapMs <= 0) return;
    const now = this.now();
    this.heardUntil = Math.min(Math.max(this.heardUntil, now) + Math.max(0, audioMs), now + this.maxAheadMs);
    if (!this.timer) this.arm(this.o.gapMs + (this.heardUntil - now));
  }

  /** The session ended: nothing more is sent. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      const quiet = this.now() - this.heardUntil;
      // (1 ms of slack: a timer may fire a fraction of a millisecond early by the other clock.)
      if (quiet >= this.o.gapMs - 1) this.o.onQuiet();
      else this.arm(this.o.gapMs - quiet);
    }, delayMs);
  }
}

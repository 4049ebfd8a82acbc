/**
 * When to tell the model the audio stream has ended (`audioStreamEnd`, which makes it end the user's turn at once):
 * after `gapMs` in which no audio frame went upstream, and only then. One timer per quiet gap, not one per frame:
 * armed by the first frame, it looks at when the last frame went when it fires, and waits for what is left of the
 * gap when frames went on meanwhile. The gap is always measured in full from the last frame: a REST client's 1 s
 * chunks go upstream in bursts a second apart, all through a sentence, and must never look like a pause.
 */
export interface StreamEndTimerOptions {
  /** Quiet (no frame sent) this long, ms, ends the stream; 0 never does (manual activity detection). */
  gapMs: number;
  /** The stream went quiet for the whole gap: send `audioStreamEnd`. */
  onQuiet: () => void;
  now?: () => number;
}

export class StreamEndTimer {
  private timer: NodeJS.Timeout | undefined;
  private lastFrameAt = 0;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly o: StreamEndTimerOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** A frame went upstream now. */
  frameSent(): void {
    if (this.stopped || this.o.gapMs <= 0) return;
    this.lastFrameAt = this.now();
    if (!this.timer) this.arm(this.o.gapMs);
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
      const quiet = this.now() - this.lastFrameAt;
      // (1 ms of slack: a timer may fire a fraction of a millisecond early by the other clock.)
      if (quiet >= this.o.gapMs - 1) this.o.onQuiet();
      else this.arm(this.o.gapMs - quiet);
    }, delayMs);
  }
}

import type { ReplyStep, ServerMessage } from './reply-plan';

/**
 * Plays the steps of one reply: steps without a wait go out synchronously, a wait schedules the rest.
 * `cancel()` stops it for good (barge-in, close, silence after goAway); `onFinished` then never runs.
 * A stalling reply (`holdAtEnd`) stays active after its last step and never finishes.
 */
export class ReplyPlayer {
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private state: 'idle' | 'playing' | 'finished' | 'cancelled' = 'idle';

  constructor(
    private readonly steps: readonly ReplyStep[],
    private readonly send: (message: ServerMessage) => void,
    private readonly onFinished: () => void,
    private readonly holdAtEnd = false,
  ) {}

  /** True from `start()` until the last step was sent or the reply was cancelled. */
  get active(): boolean {
    return this.state === 'playing';
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'playing';
    this.run(false);
  }

  cancel(): void {
    if (this.state !== 'playing') return;
    this.state = 'cancelled';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private run(waited: boolean): void {
    while (this.state === 'playing' && this.next < this.steps.length) {
      const step = this.steps[this.next];
      if (step.waitMs > 0 && !waited) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.run(true);
        }, step.waitMs);
        return;
      }
      waited = false;
      this.next++;
      this.send(step.message);
    }
    if (this.state === 'playing' && !this.holdAtEnd) {
      this.state = 'finished';
      this.onFinished();
    }
  }
}

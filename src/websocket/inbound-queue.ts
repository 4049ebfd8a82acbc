/** Inbound flow control: stop reading the socket while this much work is queued, resume below the low mark. */
const PENDING_HIGH = 64;
const PENDING_LOW = 16;

export interface InboundQueueOptions {
  /** The socket whose reading is paused and resumed. */
  socket: { pause(): void; resume(): void };
  /** False once the connection is closing or closed: queued work is then skipped. */
  isAccepting(): boolean;
  /** True once the socket has closed: it is then never paused or resumed again. */
  isClosed(): boolean;
  /** A queued handler failed (the connection turns this into an `error` message). */
  onError(err: unknown): void;
}

/**
 * The inbound side of one WebSocket: runs message handlers one at a time in arrival order, and stops reading
 * from the client while too much inbound work is waiting (queued messages plus audio waiting for the decoder).
 */
export class InboundQueue {
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private inflight = 0;
  private readingPaused = false;

  constructor(private readonly o: InboundQueueOptions) {}

  /** Runs `fn` after everything queued before it; a failure goes to `onError`. */
  enqueue(fn: () => unknown): void {
    this.pending++;
    this.updateFlow();
    this.chain = this.chain.then(async () => {
      try {
        if (!this.o.isAccepting()) return;
        await fn();
      } catch (err) {
        this.o.onError(err);
      } finally {
        this.pending--;
        this.updateFlow();
      }
    });
  }

  /**
   * Starts work that goes on after its handler returned (audio handed to the decoder) and counts it as inbound
   * load until it settles. `start` must not reject.
   */
  track(start: () => Promise<unknown>): void {
    this.inflight++;
    this.updateFlow();
    start().finally(() => {
      this.inflight--;
      this.updateFlow();
    });
  }

  private updateFlow(): void {
    const load = this.pending + this.inflight;
    if (!this.readingPaused && load > PENDING_HIGH && !this.o.isClosed()) {
      this.readingPaused = true;
      this.o.socket.pause();
    } else if (this.readingPaused && load <= PENDING_LOW) {
      this.readingPaused = false;
      if (!this.o.isClosed()) this.o.socket.resume();
    }
  }
}

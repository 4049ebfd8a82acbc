/**
 * The outbound side of one WebSocket: messages go out in call order (one `ws.send` each, never reordered).
 * Backpressure: while the socket's `bufferedAmount` is at or above the cap, droppable messages (reply audio)
 * are dropped; text and control messages are always sent. If the buffer stays above the cap for `stallMs`,
 * `onStall` is called once (the socket is then closed with 1013).
 */

/** The part of a `ws` WebSocket the sender uses. */
export interface SenderSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
}

const OPEN = 1;

export type MessageClass = 'control' | 'droppable';

export interface SocketSenderOptions {
  /** Cap on `bufferedAmount`. */
  maxBufferedBytes: number;
  /** How long the buffer may stay above the cap before `onStall`. */
  stallMs: number;
  onStall: (bufferedAmount: number) => void;
  /** How often the buffer is re-checked while above the cap. Default: stallMs / 5, between 10 and 250 ms. */
  checkIntervalMs?: number;
  now?: () => number;
}

export interface SenderStats {
  sentMessages: number;
  sentBytes: number;
  droppedMessages: number;
  /** Sum of the `payloadBytes` the callers gave for dropped messages (e.g. PCM bytes of reply audio). */
  droppedBytes: number;
  /** Highest `bufferedAmount` seen right after a send. */
  maxBufferedAmount: number;
  /** Number of times the buffer went above the cap. */
  overCapEpisodes: number;
}

export class SocketSender {
  private stopped = false;
  private overSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stalled = false;
  private readonly now: () => number;
  private readonly checkMs: number;
  readonly stats: SenderStats = {
    sentMessages: 0,
    sentBytes: 0,
    droppedMessages: 0,
    droppedBytes: 0,
    maxBufferedAmount: 0,
    overCapEpisodes: 0,
  };

  constructor(
    private readonly ws: SenderSocket,
    private readonly o: SocketSenderOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.checkMs = o.checkIntervalMs ?? Math.min(250, Math.max(10, Math.floor(o.stallMs / 5)));
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** True while the outbound buffer is above the cap. */
  get congested(): boolean {
    return this.overSince !== undefined;
  }

  /**
   * Sends one message (JSON-encoded here; pass a function to build it only if it is sent). Returns false when it
   * was not sent: the sender is stopped, the socket is not open, or the message is droppable and the buffer is
   * full (then `payloadBytes` is added to `stats.droppedBytes`).
   */
  send(message: object | (() => object), cls: MessageClass = 'control', payloadBytes = 0): boolean {
    if (this.stopped || this.ws.readyState !== OPEN) return false;
    if (cls === 'droppable' && this.ws.bufferedAmount >= this.o.maxBufferedBytes) {
      this.stats.droppedMessages++;
      this.stats.droppedBytes += payloadBytes;
      this.noteOverCap();
      return false;
    }
    const data = JSON.stringify(typeof message === 'function' ? message() : message);
    try {
      this.ws.send(data);
    } catch {
      return false;
    }
    this.stats.sentMessages++;
    this.stats.sentBytes += data.length;
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.stats.maxBufferedAmount) this.stats.maxBufferedAmount = buffered;
    if (buffered >= this.o.maxBufferedBytes) this.noteOverCap();
    return true;
  }

  private noteOverCap(): void {
    if (this.overSince !== undefined || this.stalled || this.stopped) return;
    this.overSince = this.now();
    this.stats.overCapEpisodes++;
    this.timer = setInterval(() => this.check(), this.checkMs);
    this.timer.unref?.();
  }

  private check(): void {
    if (this.stopped || this.overSince === undefined) return this.clearWatch();
    const buffered = this.ws.bufferedAmount;
    if (buffered < this.o.maxBufferedBytes || this.ws.readyState !== OPEN) return this.clearWatch();
    if (this.now() - this.overSince >= this.o.stallMs) {
      this.clearWatch();
      this.stalled = true;
      this.o.onStall(buffered);
    }
  }

  private clearWatch(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.overSince = undefined;
  }

  /** Sends nothing more (after a close was decided) and stops the watch timer. */
  stop(): void {
    this.stopped = true;
    this.clearWatch();
  }
}

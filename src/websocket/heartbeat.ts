/**
 * Protocol-level keep-alive for one socket: a ping every `intervalMs`; after `maxMissed` pings in a row without
 * a pong (or any other frame from the client) the socket is declared dead. Browsers answer pings by themselves,
 * so the JSON protocol is unchanged.
 */

/** The part of a `ws` WebSocket the heartbeat uses. */
export interface PingableSocket {
  ping(): void;
  on(event: 'pong', listener: () => void): unknown;
  off(event: 'pong', listener: () => void): unknown;
}

export interface HeartbeatOptions {
  intervalMs: number;
  maxMissed: number;
  onDead: (missed: number) => void;
}

export class Heartbeat {
  private missed = 0;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  private readonly onPong = () => this.alive();

  constructor(
    private readonly ws: PingableSocket,
    private readonly o: HeartbeatOptions,
  ) {
    ws.on('pong', this.onPong);
    this.timer = setInterval(() => this.tick(), o.intervalMs);
    this.timer.unref?.();
  }

  /** Evidence the peer is alive (a pong, or any message). */
  alive(): void {
    this.missed = 0;
  }

  /** Pings sent since the last sign of life. */
  get missedPongs(): number {
    return this.missed;
  }

  private tick(): void {
    if (this.stopped) return;
    if (this.missed >= this.o.maxMissed) {
      this.stop();
      this.o.onDead(this.missed);
      return;
    }
    this.missed++;
    try {
      this.ws.ping();
    } catch {
      /* not open any more: the close handler stops us */
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.ws.off('pong', this.onPong);
  }
}

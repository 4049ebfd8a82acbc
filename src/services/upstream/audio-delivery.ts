import type { Logger } from '../../util/logger';
import { UPSTREAM_BYTES_PER_MS } from '../audio/audio-types';
import { isHeldActivity, PcmBacklog } from './pcm-backlog';
import type { ResilienceOptions, UpstreamStats } from './resilience-types';
import type { ActivityKind, UpstreamConnection } from './upstream-types';

/** The audio one connection was handed, as far as a resend after its loss needs to know. */
export class ConnectionAudio {
  /** Audio bytes handed to this connection. */
  private sentBytes = 0;
  /** Frames sent within the last `replayMs` and not yet confirmed by the transport (`at`: send time). */
  private inflight: { frame: Buffer; end: number; at: number }[] = [];

  constructor(
    readonly conn: UpstreamConnection,
    readonly connectionNo: number,
    private readonly replayMs: number,
  ) {}

  /** `n` bytes of `frame` were handed to the socket. */
  record(frame: Buffer, n: number): void {
    this.sentBytes += n;
    if (this.replayMs > 0) {
      this.inflight.push({ frame, end: this.sentBytes, at: Date.now() });
      this.trim();
    }
  }

  /** Removes and returns (oldest first) the frames still unconfirmed that were sent within `replayMs` before `lostAt`. */
  takeUnconfirmed(lostAt: number): Buffer[] {
    this.trim(lostAt);
    const frames = this.inflight.map((f) => f.frame);
    this.inflight = [];
    return frames;
  }

  /** Forgets frames the server confirmed, and frames sent before the replay window (ending at `until`). */
  private trim(until = Date.now()): void {
    const acked = this.conn.ackedAudioBytes ?? 0;
    const oldest = until - this.replayMs;
    const q = this.inflight;
    let drop = 0;
    while (drop < q.length && (q[drop].end <= acked || q[drop].at < oldest)) drop++;
    if (drop > 0) q.splice(0, drop);
  }
}

/**
 * The client's audio on its way to the model, across connections: sent at once while a connection is ready,
 * otherwise held in a bounded backlog and flushed in order; audio a dead connection may have lost in flight is put
 * back in front of the backlog (`requeueUnconfirmed`). Counts what was sent, resent and dropped.
 */
export class AudioDelivery {
  private readonly backlog: PcmBacklog;
  /** Frames queued again for a resend: sent a second time without counting (or charging) them twice. */
  private readonly resends = new WeakSet<Buffer>();
  private sentBytes = 0;
  private replayedBytes = 0;

  constructor(
    private readonly opts: Pick<ResilienceOptions, 'backlogMs' | 'replayMs'>,
    /** PCM handed to a socket for the first time (bytes). */
    private readonly onFirstSend: (bytes: number) => void,
    private readonly log: Logger,
  ) {
    // A resent frame cut to fit keeps its mark (its rest is not counted or charged a second time).
    this.backlog = new PcmBacklog(opts.backlogMs * UPSTREAM_BYTES_PER_MS, (frame, rest) => {
      if (this.resends.has(frame)) this.resends.add(rest);
    });
  }

  /** Starts tracking the audio handed to a new connection. */
  attach(conn: UpstreamConnection, connectionNo: number): ConnectionAudio {
    return new ConnectionAudio(conn, connectionNo, this.opts.replayMs);
  }

  /** Audio is waiting: newer audio (and a stream end) must queue behind it to keep the order. */
  get waiting(): boolean {
    return this.backlog.length > 0;
  }

  /** Hands one frame to the connection's socket; false when the socket took nothing. */
  send(target: ConnectionAudio, frame: Buffer): boolean {
    const n = target.conn.sendAudio(frame);
    if (n === 0) return false;
    target.record(frame, n);
    if (this.resends.has(frame)) return true; // already counted when it was first sent
    this.sentBytes += n;
    this.onFirstSend(n);
    return true;
  }

  /** Holds a frame until a connection is ready (`flush`). */
  hold(frame: Buffer): void {
    this.backlog.push(frame);
  }

  /** Holds an activity marker behind the audio held so far (it goes out in its place at `flush`). */
  holdActivity(kind: ActivityKind): void {
    this.backlog.pushActivity(kind);
  }

  /** Sends everything held, in order. False when the socket died midway (the rest is held again). */
  flush(target: ConnectionAudio): boolean {
    const frames = this.backlog.drain();
    for (let i = 0; i < frames.length; i++) {
      const item = frames[i]!;
      if (isHeldActivity(item)) {
        if (!target.conn.isOpen) {
          this.backlog.unshift(frames.slice(i));
          return false;
        }
        target.conn.sendActivity(item.activity);
        continue;
      }
      if (!this.send(target, item)) {
        // The new socket died while flushing: keep the rest, in order, for the next connection.
        this.backlog.unshift(frames.slice(i));
        return false;
      }
    }
    return true;
  }

  /**
   * A connection ended in a way that may have lost audio in flight: put the frames the server had not confirmed
   * back in front of the backlog, to be sent first on the next connection.
   *
   * The Gemini Developer API acknowledges no audio (`transparent` resumption, which reports the last consumed
   * message, is Vertex-only), so the relay weighs loss against duplication. It resends only audio the transport
   * did not confirm (a WebSocket ping sent after it whose pong came back proves the server read it), and only what
   * was sent in the last `replayMs` before the close was noticed: a dropped TCP connection is noticed within about a
   * round trip, so that is the audio that can have been written into an already-dead socket (a whole decoded chunk
   * can go out in one burst, so the window is in send time, not audio length). Against a server that answers pings
   * at once (the emulator, a healthy link) this resends exactly what was lost: nothing lost, nothing doubled.
   * Against a server whose pongs lag, the audio sent in the last `replayMs` may be doubled; a dead link that went
   * unnoticed for longer than `replayMs` still loses what came before the window. A confirmed close of our own
   * (rotation) resends nothing.
   *
   * `lostAt`: when the connection stopped taking audio (the close was noticed, or our rotation began).
   */
  requeueUnconfirmed(lost: ConnectionAudio, lostAt = Date.now()): void {
    if (this.opts.replayMs <= 0) return;
    const frames = lost.takeUnconfirmed(lostAt);
    if (frames.length === 0) return;
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    for (const f of frames) this.resends.add(f);
    this.replayedBytes += bytes;
    this.backlog.unshift(frames);
    this.log.info(
      { connectionNo: lost.connectionNo, resendMs: Math.round(bytes / UPSTREAM_BYTES_PER_MS) },
      'upstream audio not confirmed before the close; resending it',
    );
  }

  /** The link is gone for good: everything held counts as dropped. */
  dropAll(): void {
    this.backlog.dropAll();
  }

  stats(): Pick<UpstreamStats, 'droppedAudioMs' | 'bufferedAudioMs' | 'sentAudioMs' | 'replayedAudioMs'> {
    return {
      droppedAudioMs: Math.round(this.backlog.droppedMs),
      bufferedAudioMs: Math.round(this.backlog.bufferedMs),
      sentAudioMs: Math.round(this.sentBytes / UPSTREAM_BYTES_PER_MS),
      replayedAudioMs: Math.round(this.replayedBytes / UPSTREAM_BYTES_PER_MS),
    };
  }
}

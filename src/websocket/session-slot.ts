import type { LiveSession } from '../services/session/live-session';
import type { LiveAudioService } from '../services/live-audio-service';
import { AppError } from '../util/app-error';
import type { Logger } from '../util/logger';
import { ServerMessages } from './server-messages';
import { SessionBinding, type BindingOutput } from './session-binding';
import type { SessionHolder, SessionHolders } from './session-holders';

export interface SessionSlotOptions<H extends SessionHolder> {
  /** The connection, as recorded in `holders`. */
  holder: H;
  holders: SessionHolders<H>;
  /** The door to sessions: ending the relayed one, listening to its events. */
  service: Pick<LiveAudioService, 'endLiveSession' | 'subscribe'>;
  out: BindingOutput;
  log: Logger;
}

/**
 * The one session a connection relays (at most one): binding and unbinding it, handing it over when another
 * connection resumes it, and what becomes of it when the socket closes (`keep_alive_on_close`).
 */
export class SessionSlot<H extends SessionHolder = SessionHolder> {
  private binding: SessionBinding | undefined;

  constructor(private readonly o: SessionSlotOptions<H>) {}

  get current(): SessionBinding | undefined {
    return this.binding;
  }

  /** The bound session's binding; a client error when there is none. */
  require(): SessionBinding {
    const b = this.binding;
    if (!b) throw new AppError(400, 'NO_ACTIVE_SESSION', 'No active session. Please start a session first.');
    return b;
  }

  /** Relays `session` on this connection; a connection that relayed it before is detached. */
  bind(session: LiveSession, keepAliveOnClose: boolean): void {
    const b = new SessionBinding(session, keepAliveOnClose, this.o.out, (ended) => this.unbind(ended), this.o.service);
    this.binding = b;
    this.o.holders.take(session, this.o.holder);
    b.catchUpEnded();
  }

  /** Stops relaying the binding's session (no more messages for it on this socket). Idempotent. */
  unbind(b: SessionBinding): void {
    if (!b.release()) return;
    this.o.holders.release(b.session, this.o.holder);
    if (this.binding === b) this.binding = undefined;
  }

  /** Another connection resumed this session: let go of it and tell the client. */
  detach(session: LiveSession): void {
    const b = this.binding;
    if (!b || b.session !== session) return;
    this.unbind(b);
    this.o.out.sender.send(ServerMessages.sessionDetached(session.id));
  }

  /** Server shutdown: ends the relayed session (its binding sends `session_ended`). */
  endForShutdown(): void {
    const b = this.binding;
    if (b && !b.session.handingOver) this.o.service.endLiveSession(b.session, 'server_shutdown', 'Server is shutting down');
  }

  /** The socket closed: stops relaying, and ends the session unless it is kept for the client to resume. */
  releaseOnClose(): void {
    const b = this.binding;
    if (!b) return;
    this.unbind(b);
    if ((b.keepAliveOnClose || b.session.handingOver) && !b.session.ended) {
      // (A session being handed over goes on on another instance: the client closed this socket to reconnect.)
      this.o.log.info({ sessionId: b.session.id }, 'socket closed; session kept for reconnection');
    } else {
      this.o.service.endLiveSession(b.session, 'socket_closed', 'WebSocket closed');
    }
  }
}

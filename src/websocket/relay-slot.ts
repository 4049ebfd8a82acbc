import type { LiveSession } from '../services/session/live-session';
import type { LiveAudioService } from '../services/live-audio-service';
import { AppError } from '../util/app-error';
import type { Logger } from '../util/logger';
import { ServerMessages } from './server-messages';
import { SessionRelay, type RelayOutput } from './session-relay';
import type { SessionRelays } from './session-relays';

export interface RelaySlotOptions {
  /** Which slot relays each session (shared by the endpoint's connections). */
  relays: SessionRelays<RelaySlot>;
  /** The door to sessions: ending the relayed one, listening to its events. */
  service: Pick<LiveAudioService, 'endLiveSession' | 'subscribe'>;
  out: RelayOutput;
  log: Logger;
}

/**
 * A connection's place for the one session it relays (at most one): binding and unbinding it, handing it over
 * when another connection resumes it, and what becomes of it when the socket closes (`keep_alive_on_close`).
 */
export class RelaySlot {
  private relay: SessionRelay | undefined;

  constructor(private readonly o: RelaySlotOptions) {}

  get current(): SessionRelay | undefined {
    return this.relay;
  }

  /** The bound session's relay; a client error when there is none. */
  require(): SessionRelay {
    const b = this.relay;
    if (!b) throw new AppError(400, 'NO_ACTIVE_SESSION', 'No active session. Please start a session first.');
    return b;
  }

  /** Relays `session` on this connection; a connection that relayed it before is detached. */
  bind(session: LiveSession, keepAliveOnClose: boolean): void {
    const b = new SessionRelay(session, keepAliveOnClose, this.o.out, (ended) => this.unbind(ended), this.o.service);
    this.relay = b;
    this.o.relays.take(session, this);
    b.catchUpEnded();
  }

  /** Stops relaying the relay's session (no more messages for it on this socket). Idempotent. */
  unbind(b: SessionRelay): void {
    if (!b.release()) return;
    this.o.relays.release(b.session, this);
    if (this.relay === b) this.relay = undefined;
  }

  /** Another connection resumed this session: let go of it and tell the client. */
  detach(session: LiveSession): void {
    const b = this.relay;
    if (!b || b.session !== session) return;
    this.unbind(b);
    this.o.out.sender.send(ServerMessages.sessionDetached(session.id));
  }

  /** Server shutdown: ends the relayed session (its relay sends `session_ended`). */
  endForShutdown(): void {
    const b = this.relay;
    if (b && !b.session.handingOver) this.o.service.endLiveSession(b.session, 'server_shutdown', 'Server is shutting down');
  }

  /** The socket closed: stops relaying, and ends the session unless it is kept for the client to resume. */
  releaseOnClose(): void {
    const b = this.relay;
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

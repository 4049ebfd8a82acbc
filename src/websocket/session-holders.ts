import type { LiveSession } from '../services/session/live-session';

/** Something that receives a session's events (a WebSocket connection) and can be asked to let go of it. */
export interface SessionHolder {
  /** Stop relaying this session's events (another connection took it over). */
  detachSession(session: LiveSession): void;
}

/**
 * Which connection currently relays each live session: at most one. A session is in no entry while no socket
 * holds it (a REST session, or a `keep_alive_on_close` session waiting for its client to reconnect).
 */
export class SessionHolders<H extends SessionHolder = SessionHolder> {
  private readonly map = new Map<LiveSession, H>();

  /** Makes `holder` the session's holder; a previous holder is detached first. */
  take(session: LiveSession, holder: H): void {
    const prev = this.map.get(session);
    if (prev && prev !== holder) prev.detachSession(session);
    this.map.set(session, holder);
  }

  release(session: LiveSession, holder: H): void {
    if (this.map.get(session) === holder) this.map.delete(session);
  }

  get size(): number {
    return this.map.size;
  }
}

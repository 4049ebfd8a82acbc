import type { LiveSession } from '../services/session/live-session';

/** What the table needs of a connection's relay slot: to let go of a session another connection took. */
interface Detachable {
  /** Stop relaying this session's events (another connection took it over). */
  detach(session: LiveSession): void;
}

/**
 * Which connection's relay slot currently relays each live session: at most one. A session is in no entry while
 * no socket relays it (a REST session, or a `keep_alive_on_close` session waiting for its client to reconnect).
 */
export class SessionRelays<S extends Detachable = Detachable> {
  private readonly map = new Map<LiveSession, S>();

  /** Makes `slot` the session's relay; a previous slot is detached first. */
  take(session: LiveSession, slot: S): void {
    const prev = this.map.get(session);
    if (prev && prev !== slot) prev.detach(session);
    this.map.set(session, slot);
  }

  release(session: LiveSession, slot: S): void {
    if (this.map.get(session) === slot) this.map.delete(session);
  }

  get size(): number {
    return this.map.size;
  }
}

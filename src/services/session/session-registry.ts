import type { Principal } from '../auth/principal';
import { Errors } from '../../util/app-error';
import { endedSessionError } from './ended-session-error';
import type { Logger } from '../../util/logger';
import { TypedEmitter } from '../../util/typed-emitter';
import type { LiveSession, SessionEndInfo, SessionEndReason } from './live-session';
import type { ConversationUsage } from '../conversation/session-conversation';
import { compactEcho, type SetupEcho } from '../session-setup/effective-setup';
import { ValueInterner } from '../../util/value-interner';
import { FairRetention, type EvictionCounts } from '../../util/fair-retention';

export const SESSION_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

export interface RegistryLimits {
  maxPerUser: number;
  maxGlobal: number;
  /** How long ended sessions are remembered (so a client learns "expired" instead of "unknown"). */
  tombstoneMs: number;
  /**
   * Tombstones held at most (`LIVE_AUDIO_SESSION_TOMBSTONE_MAX`, default 10,000): beyond it the oldest of the owner
   * holding the most goes first (one owner alone may fill it; see `FairRetention`).
   */
  maxTombstones?: number;
}

/** What is kept of an ended session for a while (its status answers `ended`/`expired`, not `not_found`). */
export interface Tombstone {
  info: SessionEndInfo;
  startTime: string;
  model: string;
  responseModality: string;
  transport: 'rest' | 'ws';
  /** The effective setup the session ran with (null when it kept no conversation record); frozen, shared by equal setups. */
  setup: Readonly<SetupEcho> | null;
  /** Its usage at the end: tokens, audio seconds, turns. */
  usage: ConversationUsage | null;
  at: number;
}

export interface RegistryEvents {
  started: (s: LiveSession) => void;
  ended: (s: LiveSession, info: SessionEndInfo) => void;
}

/** Result of looking a session up for its owner. */
export type Lookup =
  | { kind: 'live'; session: LiveSession }
  | { kind: 'ended'; tombstone: Tombstone }
  | { kind: 'unknown' };

/**
 * All live sessions of this process, keyed by (owner, client-chosen id): nobody can see, end or overwrite
 * another owner's session, and a foreign id is indistinguishable from an unknown one.
 */
export class SessionRegistry extends TypedEmitter<RegistryEvents> {
  private readonly sessions = new Map<string, LiveSession>();
  /** Slots held by starts that are still connecting upstream (counted against the caps). */
  private readonly reserved = new Map<string, number>();
  private reservedTotal = 0;
  /** Ended sessions' tombstones, bounded and fair between owners (one key's flood of ended sessions evicts its own). */
  private readonly tombstones: FairRetention<Tombstone>;
  /** Ended sessions of one deployment share a few setups: their tombstones share one copy of each. */
  private readonly setups = new ValueInterner<SetupEcho>();
  private draining = false;

  constructor(
    private readonly limits: RegistryLimits,
    private readonly log: Logger,
  ) {
    super();
    this.tombstones = new FairRetention<Tombstone>({ maxRecords: limits.maxTombstones ?? 10_000 });
  }

  static key(ownerId: string, sessionId: string): string {
    return `${ownerId}\u0000${sessionId}`;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Ended sessions remembered now (bounded by `maxTombstones`; a gauge of /metrics). */
  get tombstoneCount(): number {
    this.tombstones.expire();
    return this.tombstones.size;
  }

  /** Tombstones dropped before their time to stay within `maxTombstones`, by reason (a counter of /metrics). */
  tombstoneEvictions(): EvictionCounts {
    return this.tombstones.evictions();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Stops accepting new sessions (graceful shutdown). */
  startDraining(): void {
    this.draining = true;
  }

  countFor(ownerId: string): number {
    let n = this.reserved.get(ownerId) ?? 0;
    for (const s of this.sessions.values()) if (s.ownerId === ownerId) n++;
    return n;
  }

  listFor(ownerId: string): LiveSession[] {
    return [...this.sessions.values()].filter((s) => s.ownerId === ownerId);
  }

  all(): LiveSession[] {
    return [...this.sessions.values()];
  }

  lookup(owner: Principal, sessionId: string): Lookup {
    const key = SessionRegistry.key(owner.id, sessionId);
    const s = this.sessions.get(key);
    if (s) return { kind: 'live', session: s };
    const t = this.tombstones.get(key);
    if (t) return { kind: 'ended', tombstone: t };
    return { kind: 'unknown' };
  }

  /** The live session or a 404 AppError (expired vs unknown). */
  require(owner: Principal, sessionId: string): LiveSession {
    const l = this.lookup(owner, sessionId);
    if (l.kind === 'live') return l.session;
    if (l.kind === 'ended' && l.tombstone.info.reason === 'server_shutdown') throw Errors.shuttingDown();
    if (l.kind === 'ended') throw endedSessionError(l.tombstone.info.reason, l.tombstone.info.message) ?? Errors.sessionExpired();
    throw Errors.sessionNotFound();
  }

  /**
   * Starts a session: ends the owner's session with the same id first, checks the caps (429 with
   * Retry-After), holds a slot while `create` connects upstream, then registers the result.
   *
   * `replacing` (a WebSocket's `start_session` on a socket that relays a session): that session is ended only once
   * the new one has started, and not counted against the caps it frees; if the start fails (a cap, the upstream)
   * it goes on untouched. Either the new session starts and the old one ends, or the old one stays.
   */
  async start(owner: Principal, sessionId: string, create: () => Promise<LiveSession>, opts: { replacing?: LiveSession } = {}): Promise<LiveSession> {
    if (this.draining) throw Errors.shuttingDown();
    const key = SessionRegistry.key(owner.id, sessionId);
    const replacing = opts.replacing && !opts.replacing.ended && this.sessions.get(SessionRegistry.key(owner.id, opts.replacing.id)) === opts.replacing ? opts.replacing : undefined;
    const existing = this.sessions.get(key);
    if (existing && existing !== replacing) this.endSession(existing, 'replaced', 'Replaced by a new session with the same id');

    const freed = replacing ? 1 : 0;
    if (this.countFor(owner.id) - freed >= this.limits.maxPerUser) {
      throw Errors.tooManySessions('user', this.retryAfterSec(this.listFor(owner.id)));
    }
    if (this.sessions.size - freed + this.reservedTotal >= this.limits.maxGlobal) {
      throw Errors.tooManySessions('global', this.retryAfterSec(this.all()));
    }
    this.reserved.set(owner.id, (this.reserved.get(owner.id) ?? 0) + 1);
    this.reservedTotal++;
    let session: LiveSession;
    try {
      session = await create();
    } finally {
      const n = (this.reserved.get(owner.id) ?? 1) - 1;
      if (n <= 0) this.reserved.delete(owner.id);
      else this.reserved.set(owner.id, n);
      this.reservedTotal--;
    }
    if (this.draining) {
      session.end('server_shutdown', 'Server is shutting down');
      throw Errors.shuttingDown();
    }
    // The new session is up: the one it replaces ends now (its client sees session_ended, then the new start).
    if (replacing && !replacing.ended) this.endSession(replacing, 'replaced', 'Replaced by a new session on this connection');
    // A concurrent start with the same id may have won the race while we connected: it is replaced.
    const raced = this.sessions.get(key);
    if (raced) this.endSession(raced, 'replaced', 'Replaced by a new session with the same id');
    this.sessions.set(key, session);
    this.tombstones.delete(key);
    session.once('ended', (info) => this.onEnded(key, session, info));
    this.emit('started', session);
    return session;
  }

  /** Ends a session of this owner; returns what happened (idempotent). */
  end(owner: Principal, sessionId: string, reason: SessionEndReason = 'client_end'): Lookup {
    const l = this.lookup(owner, sessionId);
    if (l.kind === 'live') this.endSession(l.session, reason, 'Ended by the client');
    return l;
  }

  endSession(session: LiveSession, reason: SessionEndReason, message?: string): SessionEndInfo {
    return session.end(reason, message);
  }

  private onEnded(key: string, session: LiveSession, info: SessionEndInfo): void {
    if (this.sessions.get(key) === session) this.sessions.delete(key);
    const at = Date.now();
    const tombstone: Tombstone = {
      info,
      startTime: session.startTime.toISOString(),
      model: session.params.model,
      responseModality: session.params.responseModality,
      transport: session.params.transport,
      // (The conversation closed its books before `ended` was emitted: the usage is final.)
      setup: session.conversation ? this.setups.intern(compactEcho(session.conversation.echo)) : null,
      usage: session.conversation?.usage() ?? null,
      at,
    };
    this.tombstones.set(key, session.ownerId, tombstone, { expiresAt: at + this.limits.tombstoneMs });
    this.emit('ended', session, info);
  }

  /** Seconds until one of these sessions frees its slot at the latest (idle timeout or max age). */
  private retryAfterSec(sessions: LiveSession[]): number {
    const now = Date.now();
    let soonest = Infinity;
    for (const s of sessions) {
      const t = Math.min(s.idleExpiresAt.getTime(), s.expiresAt.getTime());
      soonest = Math.min(soonest, t - now);
    }
    if (!Number.isFinite(soonest)) return 5;
    return Math.max(1, Math.ceil(soonest / 1000));
  }

  /** Ends every session (shutdown), returning how many were ended. */
  endAll(reason: SessionEndReason, message: string): number {
    const list = this.all();
    for (const s of list) this.endSession(s, reason, message);
    return list.length;
  }

  /** Throws if the id is not acceptable. */
  static validateId(id: unknown): string {
    if (id === undefined || id === null || id === '') throw Errors.missingField('session_id');
    if (typeof id !== 'string' || !SESSION_ID_RE.test(id)) {
      throw Errors.invalidSessionId();
    }
    return id;
  }
}

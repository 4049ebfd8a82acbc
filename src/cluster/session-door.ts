import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { SESSION_ID_RE } from '../services/session/session-registry';
import type { LiveAudioService } from '../services/live-audio-service';
import type { Logger } from '../util/logger';
import { isForwarded } from './cluster-guard';
import { ClusterUnavailableError, PeerUnavailableError, SessionMovedError } from './cluster-errors';
import { SESSION_MOVED_HEADER } from './cluster-headers';
import type { Principal } from '../services/auth/principal';
import { NEVER_SESSIONS, type ClusterSessions } from './cluster-sessions';
import type { SessionRecord } from './session-records';
import { Errors } from '../util/app-error';
import { endedStatusOf, endedViewOf, liveStatusOf } from './record-views';


/** Which call the door guards: where its session id is, and whether a dead owner's session is taken over for it. */
export type DoorRoute = 'start' | 'transcribe' | 'end' | 'status' | 'transcript';

/** Where a route's session id is, when not where ours keep it (`session_id` in the body, `:session_id` in the path). */
export interface DoorSessionId {
  /** The JSON body field naming the session (e.g. a client dialect's `sessionId`). */
  bodyField?: string;
  /** How long the owner's answer may take to begin, when the route waits longer than the forward timeout. */
  answerWithinMs?: number;
}

export interface SessionDoorOptions {
  sessions: ClusterSessions;
  /** The one door to this instance's sessions (issue 12): the door looks sessions up through it. */
  service: LiveAudioService;
  logger: Logger;
  /** Per forwarded call: ms from the door to the owner's whole answer (metrics). */
  onForward?: (ms: number, outcome: 'answered' | 'aborted') => void;
}

/**
 * The cluster's door in front of the session routes (after authentication and body parsing, before the
 * controller): a session served here goes on at once; one whose record names another live instance is forwarded
 * there and the owner's answer (status, headers, body, its bounded wait included) is the caller's; one whose owner
 * is dead (or that was handed over) is taken over here first. Anything else (unknown, ended, another key's) goes
 * to the local controller, which answers exactly as for an unknown id. While Redis cannot answer, calls that need
 * it get 503 `CLUSTER_UNAVAILABLE` (sessions served here keep going without Redis).
 *
 * A forwarded request is never forwarded again: it is answered here (taking over if its owner just died). A
 * draining instance forwards calls for released sessions to a live peer, which takes them over.
 */
export function createSessionDoor(o: SessionDoorOptions): (route: DoorRoute, where?: DoorSessionId) => RequestHandler {
  const node = o.sessions.node;
  const log = o.logger.child({ component: 'session-door' });

  const sessionIdOf = (req: Request, route: DoorRoute, where: DoorSessionId): string | undefined => {
    const body = req.body as Record<string, unknown> | undefined;
    const raw: unknown = where.bodyField ? body?.[where.bodyField] : route === 'status' || route === 'transcript' ? req.params.session_id : body?.session_id;
    return typeof raw === 'string' && SESSION_ID_RE.test(raw) ? raw : undefined;
  };

  const forward = async (req: Request, res: Response, target: string, answerWithinMs?: number): Promise<void> => {
    const t0 = performance.now();
    const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.from(JSON.stringify(req.body ?? {}));
    const r = await node.forwarder.forward(target, { incoming: req, body, clientIp: req.ip, responseTimeoutMs: answerWithinMs }, res);
    o.onForward?.(performance.now() - t0, r.outcome);
  };

  /** What the controller answers for a session it remembers as ended (its tombstone), from the record. */
  const answerEnded = (res: Response, route: DoorRoute, rec: SessionRecord): void => {
    if (route === 'transcribe') throw (rec.endReason ?? 'ended') === 'server_shutdown' ? Errors.shuttingDown() : Errors.sessionExpired();
    res.json({ success: true, data: route === 'end' ? { ...endedViewOf(rec), alreadyEnded: true } : endedStatusOf(rec) });
  };

  /**
   * The status of a live session whose owner is dead, from its record (no takeover, no upstream): see
   * `liveStatusOf`.
   */
  const answerFromRecord = (res: Response, rec: SessionRecord): void => {
    res.json({ success: true, data: liveStatusOf(rec) });
  };

  /** To a peer's call for a session that left this (draining) instance: 503 marked "moved", consumed by the peer. */
  const movedAnswer = (res: Response): void => {
    res.status(503).setHeader(SESSION_MOVED_HEADER, '1');
    res.json({ success: false, error: 'The session moved; look it up again', code: 'SESSION_MOVED' });
  };

  /** Polls the registry until `id`'s heartbeat has expired (true) or it proves alive past the dead-after bound. */
  const waitUntilDead = async (id: string): Promise<boolean> => {
    const deadline = Date.now() + node.registry.deadAfterMs + 1000;
    while (Date.now() < deadline) {
      if (!(await node.registry.isAlive(id))) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };

  /** One pass: follow the record (forward, take over, or let the local controller answer). */
  const route1 = async (
    req: Request,
    res: Response,
    next: NextFunction,
    owner: Principal,
    sessionId: string,
    route: DoorRoute,
    answerWithinMs: number | undefined,
  ): Promise<void> => {
    const rec = await node.records.get({ principal: owner.id, sessionId });
    if (!rec) return next();
    // A transcript is read from its live owner (forwarded); otherwise (ended, dead owner) from the copy stored
    // beside the record, which the controller reads: nothing is taken over for a read.
    if (route === 'transcript') {
      const remote = rec.status === 'live' && rec.owner !== '' && rec.owner !== node.id && !isForwarded(req) && (await node.registry.isAlive(rec.owner));
      if (!remote) return next();
      try {
        await forward(req, res, rec.owner);
      } catch (err) {
        if (!(err instanceof PeerUnavailableError)) throw err;
        next(); // died on the way: its stored copy
      }
      return;
    }
    if (rec.status !== 'live') {
      // Ended on another instance: answered as that instance would (this one has no tombstone of it).
      // (A start that failed, or a record nobody could resume, never was a session: unknown, as on one instance.)
      // The status of an ended session is the record's on every instance, the last owner's included (its local
      // tombstone would date the session from its takeover).
      if (route === 'start' || NEVER_SESSIONS.has(rec.endReason ?? '')) return next();
      if (route !== 'status' && o.service.lookupSession(owner, sessionId).kind !== 'unknown') return next();
      return answerEnded(res, route, rec);
    }
    const self = node.id;
    if (rec.owner === self) return route === 'start' ? next() : bringHereThenNext();

    let alive = rec.owner !== '' && (await node.registry.isAlive(rec.owner));
    if (alive && !isForwarded(req)) {
      try {
        await forward(req, res, rec.owner, answerWithinMs);
        return;
      } catch (err) {
        // Unreachable before its answer began (nothing was written to the client): a killed instance's heartbeat
        // outlives it by up to `deadAfterMs`; once it has expired, the session is taken over below.
        if (!(err instanceof PeerUnavailableError) || !(await waitUntilDead(rec.owner))) throw err;
        alive = false;
      }
    }
    // A peer forwarded a call for a session a live third instance serves (a draining instance read the record
    // released and sent it here while another instance took it over): never forwarded twice, and not ours to
    // answer (no such session here: the client would see 404). "Moved": the forwarding instance looks again.
    if (alive && isForwarded(req)) return movedAnswer(res);
    if (route === 'start') return next(); // the start replaces it (the claim takes the dead owner's record)
    // A status read of a dead owner's session answers from the record: reading it must not open an upstream.
    if (route === 'status' && !alive) return answerFromRecord(res, rec);
    // Ending it neither: it is ended from its record (tombstone, usage kept, transcript archived, webhook).
    if (route === 'end' && !alive && !o.service.draining) {
      const r = await o.sessions.endFromRecord(owner, sessionId);
      if (r.kind === 'ended') {
        const view = { sessionId, status: r.info.reason === 'expired' ? 'expired' : 'ended', reason: r.info.reason, message: r.info.message, endTime: r.info.endTime, duration: r.info.durationMs };
        res.json({ success: true, data: r.alreadyEnded ? { ...view, alreadyEnded: true } : view });
        return;
      }
      if (r.kind === 'alive' && !isForwarded(req)) return forward(req, res, r.owner);
      return next();
    }
    if (o.service.draining) {
      // Going away: a live peer takes it over instead (a peer's call is sent back to it: "look again").
      if (isForwarded(req)) return movedAnswer(res);
      const peer = node.registry.peers()[0];
      if (peer) return forward(req, res, peer.id, answerWithinMs);
    }
    return bringHereThenNext();

    async function bringHereThenNext(): Promise<void> {
      const r = await o.sessions.bringHere(owner, sessionId);
      if (r.aliveOwner) return isForwarded(req) ? movedAnswer(res) : forward(req, res, r.aliveOwner, answerWithinMs);
      next();
    }
  };

  return (route, where = {}) => (req: Request, res: Response, next: NextFunction) => {
    const owner = req.principal;
    const sessionId = sessionIdOf(req, route, where);
    if (!owner || !sessionId) return next();
    const local = o.service.lookupSession(owner, sessionId);
    if (route !== 'start' && local.kind === 'live' && !local.session.handingOver) return next();
    void (async () => {
      // Being handed over (rolling deploy): wait until it is released, then follow the record like anyone else.
      if (local.kind === 'live' && local.session.handingOver && !local.session.ended) {
        await new Promise<void>((r) => local.session.once('ended', () => r()));
      }
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await route1(req, res, next, owner, sessionId, route, where.answerWithinMs);
          return;
        } catch (err) {
          // The owner let the session go while the call travelled to it: look it up again.
          if (!(err instanceof SessionMovedError)) throw err;
        }
      }
      throw new ClusterUnavailableError(1, 'session kept moving');
    })().catch((err: unknown) => {
      if (res.headersSent) {
        log.warn({ err: (err as Error).message }, 'cluster door failed after the answer began');
        res.destroy();
        return;
      }
      next(err);
    });
  };
}

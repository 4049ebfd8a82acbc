import { Router, type RequestHandler } from 'express';
import type { LiveAudioService } from '../services/live-audio-service';
import { SESSION_ID_RE } from '../services/session/session-registry';
import { AppError } from '../util/app-error';
import { forwardedBy, isForwarded } from './cluster-guard';
import type { Forwarder } from './forwarder';
import type { SessionRef } from './session-records';

/** What one instance may read or ask of the live owner of a session for a WebSocket call it received. */
export type OwnerQuery = 'end' | 'transcript' | 'status';
/** `release`: hand the session over (the client resumed it on the calling instance). */
export type OwnerCall = OwnerQuery | 'release';

const CALLS: readonly OwnerCall[] = ['release', 'end', 'transcript', 'status'];

/** Where instances answer each other's owner calls (internal: refused without the cluster secret). */
export const OWNER_CALL_PATH = '/cluster/v1/owner-calls';

/** An owner's answer: done (with its data), or the session is not live there any more (read the record again). */
export type OwnerAnswer = { kind: 'answered'; data: unknown } | { kind: 'not_here' };

/** The body of an owner call: whose session (the principal id the calling instance authenticated) and which. */
interface OwnerCallBody {
  principal: string;
  sessionId: string;
}

/** Principal ids as `Principal.id` makes them (`key:<name>`, `user:<id>`), bounded. */
const PRINCIPAL_RE = /^(key|user):[^\s]{1,200}$/;

/**
 * The calling side of owner calls (`OwnerCalls.ask`): a JSON POST to the owner's internal route with the cluster
 * secret, through the forwarder's keep-alive agents and timeouts. Only the calling instance's own knowledge goes
 * out: the principal id it authenticated and the session id, never a client credential.
 */
export class OwnerCalls {
  constructor(private readonly forwarder: Pick<Forwarder, 'call'>) {}

  /**
   * Asks live peer `owner` about `principal`'s session. Rejects with `PeerUnavailableError` when the owner cannot
   * be reached, and with the owner's own refusal (an `AppError` with its status and code) otherwise.
   */
  async ask(owner: string, call: OwnerCall, principal: string, sessionId: string): Promise<OwnerAnswer> {
    const body: OwnerCallBody = { principal, sessionId };
    // A release waits for the owner's audio to reach its upstream (bounded there by the settle time).
    const r = await this.forwarder.call(owner, `${OWNER_CALL_PATH}/${call}`, body, call === 'release' ? 15_000 : undefined);
    const b = (r.body ?? {}) as { success?: boolean; data?: unknown; code?: unknown; error?: unknown; retryAfter?: unknown };
    if (r.status === 200 && b.success === true) return { kind: 'answered', data: b.data };
    if (r.status === 409 && b.code === 'SESSION_NOT_HERE') return { kind: 'not_here' };
    const retry = typeof b.retryAfter === 'number' ? { retryAfterSec: b.retryAfter } : {};
    throw new AppError(r.status >= 400 && r.status < 600 ? r.status : 502, typeof b.code === 'string' ? b.code : 'CLUSTER_UNAVAILABLE', typeof b.error === 'string' ? b.error : 'The session owner failed', retry);
  }
}

/** What the owner side needs: its live sessions' hand-over, and the one door to its sessions. */
export interface OwnerCallDeps {
  sessions: { releaseLive(ref: SessionRef, to: string): Promise<'released' | 'not_here'> };
  service: Pick<LiveAudioService, 'lookupSession' | 'endSession' | 'transcriptOf' | 'sessionStatus'>;
  /** The JSON body parser of the control routes (caps, budget). */
  body: RequestHandler;
}

/**
 * The owner side: `POST /cluster/v1/owner-calls/:call` for calls from peers only (the cluster guard has checked
 * the secret; a request without it is 401 `CLUSTER_AUTH_REQUIRED` before its body is read). Each call is answered
 * only for a session live on this instance under that principal: anything else (unknown, another key's, ended,
 * moved) is 409 `SESSION_NOT_HERE`, and the caller reads the record again.
 */
export function createOwnerCallRouter(d: OwnerCallDeps): Router {
  const r = Router();
  const peersOnly: RequestHandler = (req, res, next) => {
    if (isForwarded(req)) return next();
    res.status(401).json({ success: false, error: 'Instance credentials required', code: 'CLUSTER_AUTH_REQUIRED' });
  };
  r.post(`${OWNER_CALL_PATH}/:call`, peersOnly, d.body, (req, res, next) => {
    const call = req.params.call as OwnerCall;
    const b = (req.body ?? {}) as Partial<Record<keyof OwnerCallBody, unknown>>;
    if (!CALLS.includes(call) || typeof b.principal !== 'string' || !PRINCIPAL_RE.test(b.principal) || typeof b.sessionId !== 'string' || !SESSION_ID_RE.test(b.sessionId)) {
      res.status(400).json({ success: false, error: 'Invalid owner call', code: 'INVALID_BODY' });
      return;
    }
    const ref = { principal: b.principal, sessionId: b.sessionId };
    const notHere = () => res.status(409).json({ success: false, error: 'The session is not live here', code: 'SESSION_NOT_HERE' });
    void (async () => {
      // (Sessions are looked up by the principal id only.)
      const l = d.service.lookupSession({ id: ref.principal, userId: '', username: '', authMethod: 'api_key' }, ref.sessionId);
      if (l.kind !== 'live' || l.session.ended || l.session.handingOver) return notHere();
      const owner = l.session.params.owner;
      switch (call) {
        case 'release':
          // Released to the calling instance (verified by the cluster guard), which takes it over at once.
          return (await d.sessions.releaseLive(ref, forwardedBy(req)!)) === 'released' ? res.json({ success: true, data: { released: true } }) : notHere();
        case 'end':
          return res.json({ success: true, data: d.service.endSession(owner, ref.sessionId) });
        case 'transcript':
          return res.json({ success: true, data: await d.service.transcriptOf(owner, ref.sessionId) });
        case 'status':
          return res.json({ success: true, data: d.service.sessionStatus(owner, ref.sessionId) });
      }
    })().catch(next);
  });
  return r;
}

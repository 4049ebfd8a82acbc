import { createSecretKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Logger } from '../../util/logger';
import { silentLogger } from '../../util/logger';
import type { Principal } from './principal';

/** Same rule as the old backend: shorter secrets are refused (here: JWT auth is disabled). */
export const MIN_JWT_SECRET_LENGTH = 32;
/** Longer bearer tokens are rejected without parsing. */
export const MAX_JWT_LENGTH = 8192;

export interface JwtVerifierOptions {
  /** `JWT_SECRET`. Absent or shorter than 32 characters: JWT auth is disabled and every bearer token is invalid. */
  secret?: string | null;
  log?: Logger;
  /** Allowed clock skew for `exp`/`nbf`, in seconds. Default 0. */
  clockToleranceSec?: number;
}

export type JwtCheck =
  | { ok: true; userId: string | number; username: string }
  | { ok: false; reason: 'disabled' | 'malformed' | 'expired' | 'invalid' | 'wrong_type' | 'bad_payload' };

/**
 * Verifies access tokens issued by the Sculptor AI backend: HS256 only (any other `alg`, including `none`, is
 * rejected), payload `{ userId, username, type: 'access' }`, `exp` honoured.
 */
export class JwtVerifier {
  readonly enabled: boolean;
  private readonly key: KeyObject | null;
  private readonly clockTolerance: number;
  private readonly log: Logger;

  constructor(opts: JwtVerifierOptions = {}) {
    const secret = opts.secret ?? '';
    this.enabled = typeof secret === 'string' && secret.length >= MIN_JWT_SECRET_LENGTH;
    // A KeyObject of type 'secret' pins the key type: it can never be mistaken for a public key.
    this.key = this.enabled ? createSecretKey(Buffer.from(secret, 'utf8')) : null;
    this.clockTolerance = Math.max(0, opts.clockToleranceSec ?? 0);
    this.log = (opts.log ?? silentLogger).child({ component: 'auth' });
  }

  check(token: unknown): JwtCheck {
    if (!this.key) return { ok: false, reason: 'disabled' };
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_JWT_LENGTH) {
      return { ok: false, reason: 'malformed' };
    }
    let decoded: unknown;
    try {
      decoded = jwt.verify(token, this.key, {
        algorithms: ['HS256'],
        clockTolerance: this.clockTolerance,
        complete: false,
      });
    } catch (e) {
      const name = (e as Error)?.name;
      if (name === 'TokenExpiredError') return { ok: false, reason: 'expired' };
      return { ok: false, reason: 'invalid' };
    }
    if (!decoded || typeof decoded !== 'object') return { ok: false, reason: 'bad_payload' };
    const p = decoded as Record<string, unknown>;
    if (p.type !== 'access') return { ok: false, reason: 'wrong_type' };
    const userId = p.userId;
    const validId =
      (typeof userId === 'number' && Number.isFinite(userId)) ||
      (typeof userId === 'string' && userId.length > 0 && userId.length <= 256);
    if (!validId) return { ok: false, reason: 'bad_payload' };
    const username =
      typeof p.username === 'string' && p.username.length > 0 ? p.username.slice(0, 256) : String(userId);
    return { ok: true, userId: userId as string | number, username };
  }

  /** The JWT user's principal, or null for any invalid token. Never throws. */
  verify(token: unknown): Principal | null {
    const r = this.check(token);
    if (!r.ok) {
      this.log.debug({ authMethod: 'jwt', reason: r.reason }, 'bearer token rejected');
      return null;
    }
    return { id: `user:${r.userId}`, userId: r.userId, username: r.username, authMethod: 'jwt' };
  }
}

import type { IncomingMessage } from 'node:http';
import { AuthErrors } from '../services/auth/auth-errors';
import { detectCredentialKind, extractHeaderCredential } from '../services/auth/authenticator';
import type { Authenticator, Credential, Principal } from '../services/auth/principal';
import type { AppError } from '../util/app-error';

/**
 * WebSocket authentication (README "WebSocket API", fixed): credentials on the upgrade request (`X-API-Key`,
 * `Authorization: Bearer`, or `?token=` with optional `auth_type`/`token_type`) are verified before the
 * upgrade completes; otherwise the client authenticates with its first message.
 */

/** Where a socket's credential came from (logged, never the credential itself). */
export type AuthSource = 'header' | 'query' | 'message';

export interface UpgradeCredential {
  credential: Credential;
  source: 'header' | 'query';
}

/**
 * The credential carried by an upgrade request, with the old backend's precedence: `X-API-Key`, then
 * `Authorization: Bearer`, then the `token` query parameter (`ak_…` is an API key, anything else a JWT, unless
 * `auth_type`/`token_type` says otherwise). Null when there is none.
 */
export function upgradeCredential(req: IncomingMessage, url: URL): UpgradeCredential | null {
  const header = extractHeaderCredential(req.headers);
  if (header) return { credential: header, source: 'header' };
  const token = url.searchParams.get('token')?.trim();
  if (token) {
    const hint = url.searchParams.get('auth_type') ?? url.searchParams.get('token_type');
    return { credential: { kind: detectCredentialKind(token, hint), token }, source: 'query' };
  }
  return null;
}

/** The credential of an `auth` message, or of the legacy `{type:'api_key'|'bearer', token}` form. */
export function messageCredential(msg: { type: string; token: string; auth_type?: string | null; token_type?: string | null }): Credential {
  if (msg.type === 'api_key' || msg.type === 'bearer') return { kind: msg.type, token: msg.token.trim() };
  return { kind: detectCredentialKind(msg.token.trim(), msg.auth_type ?? msg.token_type ?? null), token: msg.token.trim() };
}

export type AuthOutcome = { ok: true; principal: Principal } | { ok: false; error: AppError };

/**
 * Verifies a credential. Failures carry the REST 401 answer for the credential's kind (`Invalid API key` /
 * `Invalid token`), so an upgrade is refused with exactly the REST bodies. Never throws.
 */
export async function verifyCredential(authenticator: Authenticator, credential: Credential): Promise<AuthOutcome> {
  let principal: Principal | null = null;
  try {
    principal = await authenticator.authenticate(credential);
  } catch {
    principal = null;
  }
  if (principal) return { ok: true, principal };
  return { ok: false, error: credential.kind === 'api_key' ? AuthErrors.invalidApiKey() : AuthErrors.invalidToken() };
}

import type { Request, RequestHandler, Response } from 'express';
import type { AppError } from '../util/app-error';
import { AuthErrors } from '../services/auth/auth-errors';
import type { Logger } from '../util/logger';
import { redactText, silentLogger } from '../util/logger';
import { extractHeaderCredential } from '../services/auth/authenticator';
import type { Authenticator, Principal } from '../services/auth/principal';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- Express's Request type is augmented through its global namespace
  namespace Express {
    interface Request {
      /** Set by `requireAuth` once the request is authenticated. */
      principal?: Principal;
    }
  }
}

export interface RequireAuthOptions {
  log?: Logger;
  /**
   * Called before a 401 is sent (pre-auth per-IP budget): returning an error (429) sends that instead.
   * Authenticated requests never reach it, so authenticated users are never limited by address.
   */
  onFailure?: (req: Request) => Promise<AppError | undefined>;
}

function reject(res: Response, err: AppError): void {
  if (res.headersSent) return;
  res.status(err.status).json({ success: false, error: err.message, code: err.code });
}

/**
 * Express middleware: `X-API-Key` first (present but invalid → 401 INVALID_API_KEY, no fallback to the bearer
 * token), else `Authorization: Bearer` (invalid → 401 INVALID_TOKEN), else 401 AUTH_REQUIRED. On success sets
 * `req.principal`. Any exception while authenticating becomes 401 INVALID_TOKEN, never a 500; credentials are
 * never logged or echoed.
 */
export function requireAuth(authenticator: Authenticator, opts: RequireAuthOptions = {}): RequestHandler {
  const log = (opts.log ?? silentLogger).child({ component: 'auth' });
  const fail = async (req: Request, res: Response, next: (err?: unknown) => void, err: AppError): Promise<void> => {
    let instead: AppError | undefined;
    try {
      instead = await opts.onFailure?.(req);
    } catch {
      instead = undefined;
    }
    if (instead) next(instead);
    else reject(res, err);
  };
  return async (req, res, next) => {
    let principal: Principal | null;
    try {
      const cred = extractHeaderCredential(req.headers);
      if (!cred) {
        await fail(req, res, next, AuthErrors.authRequired());
        return;
      }
      principal = await authenticator.authenticate(cred);
      if (!principal) {
        log.debug({ authMethod: cred.kind === 'api_key' ? 'api_key' : 'jwt', path: req.path }, 'request rejected: invalid credential');
        await fail(req, res, next, cred.kind === 'api_key' ? AuthErrors.invalidApiKey() : AuthErrors.invalidToken());
        return;
      }
    } catch (e) {
      log.warn({ errMessage: redactText(String((e as Error)?.message ?? e)) }, 'authentication error');
      await fail(req, res, next, AuthErrors.invalidToken());
      return;
    }
    req.principal = principal;
    // Outside the try: errors of later handlers are theirs to report, not a 401.
    next();
  };
}

/** The authenticated principal of a request behind `requireAuth`; throws 401 AUTH_REQUIRED if there is none. */
export function getPrincipal(req: Request): Principal {
  if (!req.principal) throw AuthErrors.authRequired();
  return req.principal;
}

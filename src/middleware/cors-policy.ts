import cors from 'cors';
import type { RequestHandler } from 'express';
import { AppError } from '../util/app-error';

export interface CorsPolicyOptions {
  /** Allowed origins; `*` allows any. */
  origins: string[];
  /** Outside production, `http://localhost:*` and `http://127.0.0.1:*` are allowed too. */
  allowLocalhost: boolean;
}

const LOCAL_RE = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;

/** Decides whether a browser origin may call the API. Same-origin requests are always allowed. */
export function makeOriginCheck(opts: CorsPolicyOptions): (origin: string, host: string | undefined) => boolean {
  const set = new Set(opts.origins.map((o) => o.replace(/\/$/, '')));
  const any = set.has('*');
  return (origin, host) => {
    if (any || set.has(origin)) return true;
    if (opts.allowLocalhost && LOCAL_RE.test(origin)) return true;
    if (host) {
      try {
        if (new URL(origin).host === host) return true;
      } catch {
        return false;
      }
    }
    return false;
  };
}

/**
 * CORS with an allowlist. The preflight allows `X-API-Key` (the old backend forgot it, so the browser could
 * never call the API). A refused origin gets 403 in the common error shape.
 */
export function corsPolicy(opts: CorsPolicyOptions): RequestHandler {
  const allowed = makeOriginCheck(opts);
  const handler = cors({
    origin: true,
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'X-API-Key', 'Authorization', 'X-Request-Id'],
    exposedHeaders: ['Retry-After', 'X-Request-Id', 'RateLimit', 'RateLimit-Policy'],
    maxAge: 600,
  });
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin && !allowed(origin, req.headers.host)) {
      next(new AppError(403, 'CORS_ORIGIN_DENIED', 'Origin not allowed'));
      return;
    }
    handler(req, res, next);
  };
}

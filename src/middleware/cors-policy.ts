import cors from 'cors';
import type { RequestHandler } from 'express';
import { AppError } from '../util/app-error';
import { makeOriginCheck, type CorsPolicyOptions } from '../services/policy/origin-policy';



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

import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import { rateLimitError, type LimitKind } from '../services/limits/limit-errors';
import type { LimitStore } from '../services/limits/limit-store';
import type { Logger } from '../util/logger';
import { LimitStoreForRateLimit } from './limit-store-for-rate-limit';

/** Per-user HTTP budgets per minute (0 = unlimited). */
export interface HttpLimitSettings {
  maxRequestsPerMinute: number;
  maxTranscriptionsPerMinute: number;
  maxSessionCreatesPerMinute: number;
  windowMs?: number;
}

export interface HttpLimitsDeps {
  settings: HttpLimitSettings;
  /** The store every budget lives in (the one `Limits` uses). */
  store: LimitStore;
  logger: Logger;
  onRefused?: (kind: LimitKind) => void;
  /** Requests not counted here (cluster mode: calls a peer forwarded, already counted by the instance they came to). */
  skip?: (req: Request) => boolean;
}

/** The middleware chains the live-audio router mounts (see `createLiveAudioRouter`'s `extra`). */
export interface HttpLimits {
  afterAuth: RequestHandler[];
  sessionStartLimit: RequestHandler[];
  /** Counts `/transcribe` requests; runs before the body is read. */
  transcribe: RequestHandler[];
}

const keyOf = (req: Request): string => req.principal?.id ?? `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;

/**
 * The HTTP request counts: express-rate-limit instances keyed by the authenticated principal (they run after
 * `requireAuth`), counting in the shared `LimitStore`, with refusals in the common shape (429, `code`,
 * `retryAfter`, `Retry-After`). Audio is admitted by the service (one rule for every transport), not here.
 */
export function createHttpLimits(deps: HttpLimitsDeps): HttpLimits {
  const windowMs = deps.settings.windowMs ?? 60_000;
  const log = deps.logger.child({ component: 'rate-limit' });
  const mk = (kind: LimitKind, limit: number): RequestHandler[] => {
    if (!(limit > 0)) return [];
    const store = new LimitStoreForRateLimit(deps.store, kind);
    return [
      rateLimit({
        windowMs,
        limit,
        store,
        ...(deps.skip ? { skip: deps.skip } : {}),
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        identifier: kind,
        keyGenerator: keyOf,
        // X-Forwarded-For is ignored on purpose unless TRUST_PROXY says otherwise.
        validate: { xForwardedForHeader: false },
        logger: { error: (err, msg) => log.error({ err }, msg ?? 'rate limiter error'), warn: (err, msg) => log.warn({ err }, msg ?? 'rate limiter warning') },
        handler: (req, _res, next) => {
          const info = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit;
          const resetMs = info?.resetTime ? info.resetTime.getTime() - Date.now() : windowMs;
          deps.onRefused?.(kind);
          next(rateLimitError(kind, limit, Math.ceil(resetMs / 1000)));
        },
      }),
    ];
  };

  return {
    afterAuth: mk('requests', deps.settings.maxRequestsPerMinute),
    sessionStartLimit: mk('session_starts', deps.settings.maxSessionCreatesPerMinute),
    transcribe: mk('transcriptions', deps.settings.maxTranscriptionsPerMinute),
  };
}

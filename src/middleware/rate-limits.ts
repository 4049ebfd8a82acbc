import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, MemoryStore, rateLimit, type Store } from 'express-rate-limit';
import type { LiveAudioService } from '../services/live-audio-service';
import { rateLimitError, type LimitKind } from '../services/limits/limit-errors';
import type { Limits } from '../services/limits/limits';
import { isAppError } from '../util/app-error';
import type { Logger } from '../util/logger';

/** Per-user HTTP budgets per minute (0 = unlimited). */
export interface HttpLimitSettings {
  requestsPerMinute: number;
  transcriptionsPerMinute: number;
  sessionStartsPerMinute: number;
  windowMs?: number;
}

export interface HttpLimitsDeps {
  settings: HttpLimitSettings;
  limits: Limits;
  service: LiveAudioService;
  logger: Logger;
  onRefused?: (kind: LimitKind) => void;
  /**
   * Cluster mode: the request counters' store per limiter (shared by every instance, in Redis). While it cannot
   * answer, requests are let through (the outage must not stop sessions served here).
   */
  storeFor?: (kind: LimitKind) => Store;
  /** Requests not counted here (cluster mode: calls a peer forwarded, already counted by the instance they came to). */
  skip?: (req: Request) => boolean;
}

/** The middleware chains the live-audio router mounts (see `createLiveAudioRouter`'s `extra`). */
export interface HttpLimits {
  afterAuth: RequestHandler[];
  sessionStartLimit: RequestHandler[];
  /** Counts `/transcribe` requests; runs before the body is read. */
  transcribe: RequestHandler[];
  /** Admits the parsed chunk's audio; runs after the body is read. */
  audioAdmission: RequestHandler[];
  /** Stops the stores' timers. */
  close(): void;
}

const keyOf = (req: Request): string => req.principal?.id ?? `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;

/**
 * express-rate-limit instances keyed by the authenticated principal (they run after `requireAuth`), with
 * refusals in the common shape (429, `code`, `retryAfter`, `Retry-After`), plus the audio admission of
 * `/transcribe` (audio seconds and bytes per user, shared with the WebSocket through `Limits`).
 */
export function createHttpLimits(deps: HttpLimitsDeps): HttpLimits {
  const stores: MemoryStore[] = [];
  const windowMs = deps.settings.windowMs ?? 60_000;
  const log = deps.logger.child({ component: 'rate-limit' });
  const mk = (kind: LimitKind, limit: number): RequestHandler[] => {
    if (!(limit > 0)) return [];
    const shared = deps.storeFor?.(kind);
    const store = shared ?? new MemoryStore();
    if (!shared) stores.push(store as MemoryStore);
    return [
      rateLimit({
        windowMs,
        limit,
        store,
        passOnStoreError: !!shared,
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

  const audioAdmission: RequestHandler = (req, res, next) => {
    const owner = req.principal;
    const b = req.body as Record<string, unknown> | undefined;
    if (deps.skip?.(req)) return next();
    if (!owner || !b || typeof b !== 'object' || Array.isArray(b)) return next();
    let parsed;
    try {
      parsed = deps.service.parseAudio({ audioData: b.audio_data, format: b.format, sampleRate: b.sample_rate, channels: b.channels });
    } catch (err) {
      // Invalid input: the controller answers it with the same 4xx.
      return isAppError(err) ? next() : next(err);
    }
    const a = deps.limits.admitAudio(owner.id, parsed.chunk, parsed.desc);
    if (!a.ok) return next(a.error);
    // The controller reuses the decoded chunk instead of decoding the base64 a second time.
    res.locals.parsedAudio = parsed;
    next();
  };

  return {
    afterAuth: mk('requests', deps.settings.requestsPerMinute),
    sessionStartLimit: mk('session_starts', deps.settings.sessionStartsPerMinute),
    transcribe: mk('transcriptions', deps.settings.transcriptionsPerMinute),
    audioAdmission: [audioAdmission],
    close() {
      for (const s of stores) s.shutdown();
    },
  };
}

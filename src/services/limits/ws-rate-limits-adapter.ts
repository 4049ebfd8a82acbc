import type { Limits } from './limits';

/** A WebSocket message admitted or refused (with when to come back). */
export type WsRateDecision = { ok: true } | { ok: false; retryAfterSec: number };

/** A user's budgets as `session_status` and `rate_limit_status` show them. */
export interface WsRateLimitStatus {
  messages: { count: number; limit: number; remaining: number; resetTime: string };
  audioBytes: { totalBytes: number; limit: number; remaining: number; resetTime: string };
  audioSeconds: { seconds: number; limit: number; remaining: number; resetTime: string };
}

/** What the WebSocket endpoint needs of the limits: messages per user, and the user's budgets to show. */
export interface WsRateLimits {
  consumeMessage(userKey: string): WsRateDecision;
  status(userKey: string): WsRateLimitStatus;
}

/**
 * The WebSocket endpoint's view of the shared `Limits`: messages per user, and the status of the same per-user
 * audio seconds and bytes that every transport's audio is admitted against (by the service).
 */
export function wsRateLimitsFrom(limits: Limits): WsRateLimits {
  const round = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : n);
  return {
    consumeMessage(userKey) {
      const a = limits.consume(userKey, 'ws_messages');
      return a.ok ? { ok: true } : { ok: false, retryAfterSec: a.retryAfterSec };
    },
    status(userKey) {
      const m = limits.status(userKey, 'ws_messages');
      const b = limits.status(userKey, 'audio_bytes');
      const s = limits.status(userKey, 'audio_seconds');
      return {
        messages: { count: m.used, limit: m.limit, remaining: m.remaining, resetTime: m.resetTime },
        audioBytes: { totalBytes: b.used, limit: b.limit, remaining: b.remaining, resetTime: b.resetTime },
        audioSeconds: { seconds: round(s.used), limit: s.limit, remaining: round(s.remaining), resetTime: s.resetTime },
      };
    },
  };
}

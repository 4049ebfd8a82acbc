import type { Limits } from './limits';

/** Shapes of the WebSocket endpoint's `WsRateLimits` seam (src/websocket/ws-rate-limiter.ts), structurally. */
export type WsRateDecision = { ok: true } | { ok: false; retryAfterSec: number };

export interface WsRateStatus {
  messages: { count: number; limit: number; remaining: number; resetTime: string };
  audioBytes: { totalBytes: number; limit: number; remaining: number; resetTime: string };
  audioSeconds: { seconds: number; limit: number; remaining: number; resetTime: string };
}

export interface WsRateLimitsLike {
  consumeMessage(userKey: string): WsRateDecision;
  consumeAudio(userKey: string, bytes: number): WsRateDecision;
  status(userKey: string): WsRateStatus;
}

/**
 * The WebSocket endpoint's rate-limit seam on top of the shared `Limits`: messages per user, and audio
 * admitted against the same per-user audio seconds and bytes as REST `/transcribe`.
 */
export function wsRateLimitsFrom(limits: Limits): WsRateLimitsLike {
  const decision = (a: { ok: boolean; retryAfterSec: number }): WsRateDecision => (a.ok ? { ok: true } : { ok: false, retryAfterSec: a.retryAfterSec });
  const round = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : n);
  return {
    consumeMessage: (userKey) => decision(limits.consume(userKey, 'ws_messages')),
    consumeAudio: (userKey, bytes) => decision(limits.admitAudioBytes(userKey, bytes)),
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

import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures: `X-Live-Audio-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` with
 * `X-Live-Audio-Timestamp: <unix seconds>`. The timestamp is inside the signed text, so an old delivery cannot be
 * replayed with a fresh timestamp; a receiver refuses timestamps older than its tolerance (5 minutes) and drops
 * a `X-Live-Audio-Delivery` id it has seen (retries of one delivery share it).
 */
export const SIGNATURE_HEADER = 'x-live-audio-signature';
export const TIMESTAMP_HEADER = 'x-live-audio-timestamp';
export const DELIVERY_HEADER = 'x-live-audio-delivery';
export const EVENT_HEADER = 'x-live-audio-event';
export const DEFAULT_TOLERANCE_SEC = 300;

export function signWebhook(secret: string, timestampSec: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampSec}.${body}`).digest('hex')}`;
}

export type WebhookVerification = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

/** What a receiver does (and what our tests' receiver does): constant-time compare, bounded clock skew. */
export function verifyWebhook(input: {
  secret: string;
  body: string;
  signature: string | undefined;
  timestamp: string | undefined;
  nowSec?: number;
  toleranceSec?: number;
}): WebhookVerification {
  if (!input.signature || !input.timestamp) return { ok: false, reason: 'missing' };
  if (!/^\d{1,12}$/.test(input.timestamp) || !/^v1=[0-9a-f]{64}$/.test(input.signature)) return { ok: false, reason: 'malformed' };
  const ts = Number(input.timestamp);
  const now = input.nowSec ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - ts) > (input.toleranceSec ?? DEFAULT_TOLERANCE_SEC)) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(signWebhook(input.secret, ts, input.body));
  const got = Buffer.from(input.signature);
  return expected.length === got.length && timingSafeEqual(expected, got) ? { ok: true } : { ok: false, reason: 'mismatch' };
}

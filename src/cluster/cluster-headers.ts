/** Headers of instance-to-instance calls. Incoming copies from clients are never trusted and never passed on. */
export const CLUSTER_SECRET_HEADER = 'x-live-audio-cluster-secret';
/** The instance that forwarded the request. */
export const FORWARDED_BY_HEADER = 'x-live-audio-forwarded-by';
/** The original client's address as the forwarding instance resolved it. */
export const FORWARDED_CLIENT_IP_HEADER = 'x-live-audio-client-ip';

/**
 * On an answer to a forwarded call only: "the session is no longer here (handed over while the call travelled);
 * look it up again". The forwarding instance consumes it; it never reaches a client.
 */
export const SESSION_MOVED_HEADER = 'x-live-audio-session-moved';

export const CLUSTER_HEADERS = [CLUSTER_SECRET_HEADER, FORWARDED_BY_HEADER, FORWARDED_CLIENT_IP_HEADER] as const;

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus ones we set ourselves. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);

/** `headers` without hop-by-hop ones (including those the Connection header names) and without `drop`. */
export function endToEndHeaders(
  headers: Record<string, string | string[] | number | undefined>,
  drop: readonly string[] = [],
): Record<string, string | string[]> {
  const named = new Set<string>(drop.map((h) => h.toLowerCase()));
  const conn = headers.connection;
  for (const v of Array.isArray(conn) ? conn : conn !== undefined ? [String(conn)] : []) {
    for (const token of v.split(',')) named.add(token.trim().toLowerCase());
  }
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    const lk = k.toLowerCase();
    if (v === undefined || HOP_BY_HOP.has(lk) || named.has(lk)) continue;
    out[lk] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}

import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import proxyaddr from 'proxy-addr';

/**
 * Which proxies may set `X-Forwarded-For`: `false` (none: the socket address is the client; the default),
 * a number of hops in front of the server, or a list of addresses/subnets (and the names `loopback`,
 * `linklocal`, `uniquelocal`). Express's `trust proxy` takes the same values, so REST and WebSocket agree.
 */
export type TrustProxy = false | number | string[];

const NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Parses `TRUST_PROXY`. Returns an error text for values that would trust any client (`true`, `*`). */
export function parseTrustProxy(raw: string | undefined): { value: TrustProxy } | { error: string } {
  const v = (raw ?? '').trim();
  if (v === '' || /^(false|no|off|0)$/i.test(v)) return { value: false };
  if (/^\d+$/.test(v)) return { value: Number(v) };
  if (/^(true|yes|on|\*)$/i.test(v)) {
    return { error: 'must be a hop count or a list of proxy addresses/subnets; "true" would let any client spoof X-Forwarded-For' };
  }
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (NAMES.has(item)) continue;
    const [addr, bits, extra] = item.split('/');
    const fam = isIP(addr);
    const okBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (fam === 6 ? 128 : 32));
    if (!fam || !okBits || extra !== undefined) return { error: `"${item}" is not an IP address, subnet or one of ${[...NAMES].join(', ')}` };
  }
  return { value: items };
}

/** The client address of a raw request (WebSocket upgrades), honouring the same trust as Express's `req.ip`. */
export function createClientIpResolver(trust: TrustProxy): (req: IncomingMessage) => string {
  // The same trust functions Express compiles for `trust proxy`.
  const fn: (addr: string, i: number) => boolean =
    trust === false ? () => false : typeof trust === 'number' ? (_a, i) => i < trust : proxyaddr.compile(trust);
  return (req) => {
    try {
      return proxyaddr(req, fn);
    } catch {
      return req.socket?.remoteAddress ?? 'unknown';
    }
  };
}

/**
 * Whether a socket peer is one of the proxies `TRUST_PROXY` names (a hop count trusts every peer: it is the
 * proxy in front). Per-address limits on raw connections skip them: a proxy carries many clients.
 */
export function createTrustedProxyCheck(trust: TrustProxy): (address: string) => boolean {
  if (trust === false) return () => false;
  if (typeof trust === 'number') return () => trust > 0;
  const fn = proxyaddr.compile(trust);
  return (address) => {
    try {
      return fn(address, 0);
    } catch {
      return false;
    }
  };
}

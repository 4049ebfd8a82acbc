import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../util/logger';
import { CLUSTER_HEADERS, CLUSTER_SECRET_HEADER, FORWARDED_BY_HEADER, FORWARDED_CLIENT_IP_HEADER } from './cluster-headers';

/** `none`: an ordinary client request. `forwarded`: a peer's, with the right secret. `refused`: claims to be a peer's, is not. */
export type ClusterCallCheck = 'none' | 'forwarded' | 'refused';

interface ForwardMark {
  by: string;
  clientIp?: string;
}

const marks = new WeakMap<IncomingMessage, ForwardMark>();

/** True for a request a peer forwarded to us with the right secret: it is answered here, never forwarded again. */
export function isForwarded(req: IncomingMessage): boolean {
  return marks.has(req);
}

/** The instance that forwarded `req` (verified), if any. */
export function forwardedBy(req: IncomingMessage): string | undefined {
  return marks.get(req)?.by;
}

/** The original client's address as the (verified) forwarding instance saw it. */
export function forwardedClientIp(req: IncomingMessage): string | undefined {
  return marks.get(req)?.clientIp;
}

export const MIN_CLUSTER_SECRET_LENGTH = 32;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/**
 * The receiving side of instance-to-instance calls (`LIVE_AUDIO_CLUSTER_SECRET`). A request that carries any
 * cluster header must carry the right secret: compared as SHA-256 digests with `timingSafeEqual` (constant time,
 * whatever the length or prefix of the guess). A verified request is marked forwarded (`isForwarded`) and its
 * cluster headers are removed, so the secret is in no later log line, error body or onward request.
 */
export class ClusterGuard {
  private readonly expected: Buffer;

  constructor(
    secret: string,
    private readonly logger?: Logger,
  ) {
    if (typeof secret !== 'string' || secret.length < MIN_CLUSTER_SECRET_LENGTH) {
      throw new Error(`LIVE_AUDIO_CLUSTER_SECRET must be at least ${MIN_CLUSTER_SECRET_LENGTH} characters`);
    }
    this.expected = digest(secret);
  }

  /** Checks `req` (and marks it when verified). Always removes the cluster headers. */
  check(req: IncomingMessage): ClusterCallCheck {
    const h = req.headers;
    const claimed = CLUSTER_HEADERS.some((name) => h[name] !== undefined);
    const secret = first(h[CLUSTER_SECRET_HEADER]);
    const by = first(h[FORWARDED_BY_HEADER]);
    const clientIp = first(h[FORWARDED_CLIENT_IP_HEADER]);
    for (const name of CLUSTER_HEADERS) delete h[name];
    for (let i = req.rawHeaders.length - 2; i >= 0; i -= 2) {
      if ((CLUSTER_HEADERS as readonly string[]).includes(req.rawHeaders[i].toLowerCase())) req.rawHeaders.splice(i, 2);
    }
    if (!claimed) return 'none';
    const ok = typeof secret === 'string' && timingSafeEqual(digest(secret), this.expected);
    if (!ok || !by || !/^[A-Za-z0-9_.-]{1,64}$/.test(by)) {
      this.logger?.warn({ component: 'cluster-guard', remote: req.socket.remoteAddress, path: (req.url ?? '').slice(0, 200) }, 'refused a cluster call without the right secret');
      return 'refused';
    }
    marks.set(req, { by, ...(clientIp && clientIp.length <= 64 ? { clientIp } : {}) });
    return 'forwarded';
  }

  /**
   * Connect-style middleware: refuses a request that claims to be a peer's without the right secret (403
   * `CLUSTER_FORBIDDEN`), and with `required` (internal-only routes) also one that does not claim it (401
   * `CLUSTER_AUTH_REQUIRED`); the route's handler is not run.
   */
  middleware(opts: { required?: boolean } = {}): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return (req, res, next) => {
      const r = this.check(req);
      if (r === 'forwarded') {
        // The owner sees the original client's address (the forwarder's view), not the peer's: every per-IP rule
        // (the unauthenticated budget, body budgets, access logs) reads `req.ip`. Only on a call with the secret.
        const ip = forwardedClientIp(req);
        if (ip && isIP(ip)) Object.defineProperty(req, 'ip', { value: ip, configurable: true, enumerable: true });
        return next();
      }
      if (r === 'none' && !opts.required) return next();
      const [status, code, error] = r === 'refused' ? [403, 'CLUSTER_FORBIDDEN', 'Forbidden'] : [401, 'CLUSTER_AUTH_REQUIRED', 'Instance credentials required'];
      const body = JSON.stringify({ success: false, error, code });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
    };
  }
}

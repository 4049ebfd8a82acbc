import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../util/logger';
import { AppError, Errors } from '../util/app-error';
import { PeerUnavailableError, SessionMovedError } from './cluster-errors';
import { isForwarded, MIN_CLUSTER_SECRET_LENGTH } from './cluster-guard';
import { CLUSTER_HEADERS, CLUSTER_SECRET_HEADER, endToEndHeaders, FORWARDED_BY_HEADER, FORWARDED_CLIENT_IP_HEADER, SESSION_MOVED_HEADER } from './cluster-headers';

/** Where live peers are: only instances registered in Redis (and alive) are ever dialled. */
export interface PeerDirectory {
  /** The advertise origin of live peer `instanceId`, or undefined (unknown, dead, this instance). */
  urlOf(instanceId: string): Promise<string | undefined>;
}

/** The request being forwarded: the incoming one, with its body already read (and checked) by this instance. */
export interface ForwardRequest {
  /** The incoming request (method, URL, headers); must not itself be a forwarded one. */
  incoming: http.IncomingMessage;
  /** Path and query to call on the peer (default: the incoming `originalUrl`/`url`). */
  path?: string;
  /** The body bytes already read. */
  body?: Buffer;
  /** The client's address as this instance resolved it (trusted proxies applied). */
  clientIp?: string;
  /** This call's bound until the owner's answer begins, when its route waits longer than `responseTimeoutMs`. */
  responseTimeoutMs?: number;
}

export type ForwardResult =
  /** The peer's answer went to the client whole. */
  | { outcome: 'answered'; status: number; bytes: number }
  /** The peer died or stalled after its answer began: the client's response was cut (destroyed). */
  | { outcome: 'aborted'; status: number; bytes: number; reason: string };

export interface ForwarderOptions {
  /** This instance's id (sent as `X-Live-Audio-Forwarded-By`). */
  selfId: string;
  /** `LIVE_AUDIO_CLUSTER_SECRET` (at least 32 characters). */
  secret: string;
  peers: PeerDirectory;
  /** Bound on connecting to the peer (default 1000 ms). */
  connectTimeoutMs?: number;
  /** Bound from sending the request to the peer's status line; covers the owner's bounded wait (default 10 s). */
  responseTimeoutMs?: number;
  /** Longest silence while the answer streams (default 10 s). */
  idleTimeoutMs?: number;
  /** Largest body forwarded (default 8 MiB); larger is 413 before any peer is dialled. */
  maxBodyBytes?: number;
  /** Keep-alive sockets per peer (default 32). */
  maxSocketsPerPeer?: number;
  logger?: Logger;
}

/** The whole body of a peer's answer (at most `maxBytes`, no silence longer than `idleMs`). */
function readWhole(r: http.IncomingMessage, maxBytes: number, idleMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let idle = setTimeout(() => fail('idle timeout'), idleMs);
    const fail = (reason: string) => {
      clearTimeout(idle);
      r.destroy();
      reject(new ForwardFailure(reason));
    };
    r.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) return fail('answer too large');
      parts.push(c);
      clearTimeout(idle);
      idle = setTimeout(() => fail('idle timeout'), idleMs);
    });
    r.once('end', () => {
      clearTimeout(idle);
      if (!r.complete) return reject(new ForwardFailure('peer closed mid-answer'));
      resolve(Buffer.concat(parts).toString('utf8'));
    });
    r.once('aborted', () => fail('peer closed mid-answer'));
    r.once('error', () => fail('peer connection error'));
  });
}

class ForwardFailure extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/**
 * Instance-to-instance forwarding of a REST call to the instance that owns its session: the same method, path,
 * end-to-end headers and body bytes, plus the cluster secret; the peer's answer (status, headers, body) is
 * streamed back unchanged, however long the peer's own bounded wait takes (within `responseTimeoutMs`).
 * Failures before the answer begins reject with `PeerUnavailableError` (the caller may take the session over or
 * answer 503 `CLUSTER_UNAVAILABLE`); a peer that dies mid-answer cuts the client's response.
 */
export class Forwarder {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly connectTimeoutMs: number;
  private readonly responseTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  readonly maxBodyBytes: number;

  constructor(private readonly o: ForwarderOptions) {
    if (typeof o.secret !== 'string' || o.secret.length < MIN_CLUSTER_SECRET_LENGTH) {
      throw new Error(`LIVE_AUDIO_CLUSTER_SECRET must be at least ${MIN_CLUSTER_SECRET_LENGTH} characters`);
    }
    this.connectTimeoutMs = o.connectTimeoutMs ?? 1000;
    this.responseTimeoutMs = o.responseTimeoutMs ?? 10_000;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 10_000;
    this.maxBodyBytes = o.maxBodyBytes ?? 8 * 1024 * 1024;
    const agentOpts = { keepAlive: true, keepAliveMsecs: 1000, maxSockets: o.maxSocketsPerPeer ?? 32, maxFreeSockets: 8, scheduling: 'lifo' as const };
    this.httpAgent = new http.Agent(agentOpts);
    this.httpsAgent = new https.Agent(agentOpts);
  }

  /**
   * Forwards `req` to live peer `target` and streams its answer into `res`. Rejects (with nothing written to `res`)
   * when the request must not or cannot be forwarded: a forwarded request (never forwarded twice), a body over
   * `maxBodyBytes` (413), an unknown or dead peer, a connection or response timeout (503 `CLUSTER_UNAVAILABLE`).
   */
  async forward(target: string, req: ForwardRequest, res: http.ServerResponse): Promise<ForwardResult> {
    if (isForwarded(req.incoming)) throw new AppError(508, 'FORWARD_LOOP', 'Request was already forwarded once');
    const body = req.body ?? Buffer.alloc(0);
    if (body.length > this.maxBodyBytes) throw Errors.tooLarge('Forwarded body', this.maxBodyBytes);
    const path = req.path ?? (req.incoming as http.IncomingMessage & { originalUrl?: string }).originalUrl ?? req.incoming.url ?? '/';
    if (!path.startsWith('/') || path.startsWith('//')) throw new AppError(400, 'INVALID_PATH', 'Invalid request path');
    const origin = await this.o.peers.urlOf(target);
    if (!origin) throw new PeerUnavailableError(target, 'not a live registered peer');
    const base = new URL(origin);
    const headers: Record<string, string | string[]> = {
      ...endToEndHeaders(req.incoming.headers, ['host', 'content-length', 'expect', ...CLUSTER_HEADERS]),
      host: base.host,
      'content-length': String(body.length),
      [CLUSTER_SECRET_HEADER]: this.o.secret,
      [FORWARDED_BY_HEADER]: this.o.selfId,
    };
    if (req.clientIp) headers[FORWARDED_CLIENT_IP_HEADER] = req.clientIp;

    let upstream: http.IncomingMessage;
    try {
      upstream = await this.send(base, req.incoming.method ?? 'GET', path, headers, body, Math.max(this.responseTimeoutMs, req.responseTimeoutMs ?? 0));
    } catch (err) {
      const reason = err instanceof ForwardFailure ? err.reason : (err as Error).message;
      throw new PeerUnavailableError(target, reason);
    }
    if (upstream.headers[SESSION_MOVED_HEADER] === '1') {
      // Nothing was written to the client: the caller looks the session up again.
      upstream.resume();
      throw new SessionMovedError(target);
    }
    return this.relay(target, upstream, res);
  }

  /**
   * An instance-to-instance call of this instance's own (not a client's request): POSTs `body` as JSON to `path`
   * on live peer `target` with the cluster secret and resolves with the peer's status and parsed JSON answer.
   * Rejects with `PeerUnavailableError` when the peer is not a live registered one, cannot be reached, or does not
   * answer (whole) within `responseTimeoutMs`.
   */
  async call(target: string, path: string, body: object, responseTimeoutMs?: number): Promise<{ status: number; body: unknown }> {
    const origin = await this.o.peers.urlOf(target);
    if (!origin) throw new PeerUnavailableError(target, 'not a live registered peer');
    const base = new URL(origin);
    const bytes = Buffer.from(JSON.stringify(body));
    const headers = {
      host: base.host,
      'content-type': 'application/json',
      'content-length': String(bytes.length),
      [CLUSTER_SECRET_HEADER]: this.o.secret,
      [FORWARDED_BY_HEADER]: this.o.selfId,
    };
    try {
      const answer = await this.send(base, 'POST', path, headers, bytes, responseTimeoutMs ?? this.responseTimeoutMs);
      const text = await readWhole(answer, 4 * 1024 * 1024, this.idleTimeoutMs);
      return { status: answer.statusCode ?? 502, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
    } catch (err) {
      const reason = err instanceof ForwardFailure ? err.reason : (err as Error).message;
      throw new PeerUnavailableError(target, reason);
    }
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private send(base: URL, method: string, path: string, headers: Record<string, string | string[]>, body: Buffer, responseTimeoutMs: number): Promise<http.IncomingMessage> {
    const isHttps = base.protocol === 'https:';
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
        out.destroy();
        reject(new ForwardFailure(reason));
      };
      const out = (isHttps ? https : http).request({
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || (isHttps ? 443 : 80),
        method,
        path,
        headers,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
      });
      const connectTimer = setTimeout(() => fail('connect timeout'), this.connectTimeoutMs);
      const responseTimer = setTimeout(() => fail('response timeout'), responseTimeoutMs);
      out.once('socket', (s) => {
        // A reused keep-alive socket is connected already.
        if (!s.connecting) clearTimeout(connectTimer);
        else s.once('connect', () => clearTimeout(connectTimer));
      });
      out.once('response', (r) => {
        if (settled) {
          r.destroy();
          return;
        }
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(responseTimer);
        resolve(r);
      });
      out.once('error', (err) => fail((err as NodeJS.ErrnoException).code ?? err.message));
      out.end(body);
    });
  }

  private relay(target: string, upstream: http.IncomingMessage, res: http.ServerResponse): Promise<ForwardResult> {
    const status = upstream.statusCode ?? 502;
    return new Promise((resolve) => {
      let bytes = 0;
      let done = false;
      const finish = (r: ForwardResult) => {
        if (done) return;
        done = true;
        clearTimeout(idle);
        resolve(r);
      };
      const cut = (reason: string) => {
        if (done) return;
        this.o.logger?.warn({ component: 'forwarder', peer: target, status, bytes, reason }, 'peer answer cut off');
        upstream.destroy();
        res.destroy();
        finish({ outcome: 'aborted', status, bytes, reason });
      };
      let idle = setTimeout(() => cut('idle timeout'), this.idleTimeoutMs);
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => cut('idle timeout'), this.idleTimeoutMs);
      };
      res.writeHead(status, upstream.statusMessage, endToEndHeaders(upstream.headers));
      upstream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        touch();
        if (!res.write(chunk)) {
          upstream.pause();
          res.once('drain', () => upstream.resume());
        }
      });
      upstream.once('end', () => {
        // complete() is false when the peer closed before its declared length: a cut answer, not a whole one.
        if (!upstream.complete) return cut('peer closed mid-answer');
        res.end(() => finish({ outcome: 'answered', status, bytes }));
      });
      upstream.once('aborted', () => cut('peer closed mid-answer'));
      upstream.once('error', () => cut('peer connection error'));
      res.once('close', () => {
        if (!res.writableFinished) {
          // The client went away: stop reading from the peer.
          upstream.destroy();
          finish({ outcome: 'aborted', status, bytes, reason: 'client closed' });
        }
      });
    });
  }
}

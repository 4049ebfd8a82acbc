/**
 * Forwarder + ClusterGuard with real HTTP servers and a real Redis-backed peer directory: instance A (a plain
 * http.createServer front) forwards everything to B (another server, guarded); a third "peer" is a separate
 * process killed with SIGKILL mid-answer. Attacker: missing/wrong secrets (nothing executed), a spoofed client IP,
 * a huge body (413 before any peer is dialled), unregistered or oddly registered peers (never dialled), loops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isClusterUnavailable } from '../../src/cluster/cluster-errors';
import { ClusterGuard, forwardedBy, forwardedClientIp, isForwarded } from '../../src/cluster/cluster-guard';
import { Forwarder } from '../../src/cluster/forwarder';
import { InstanceRegistry } from '../../src/cluster/instance-registry';
import { RedisConnection } from '../../src/cluster/redis-connection';
import { isAppError } from '../../src/util/app-error';
import { createLogger } from '../../src/util/logger';
import { processAlive } from '../ops/helpers';
import { LogCapture } from '../helpers/log-capture';
import { startRedis, type RedisServer } from '../helpers/redis-server';
import { freePort, waitForPort } from '../helpers/system-binary';

const ROOT = path.resolve(__dirname, '../..');
const SECRET = 'cluster-secret-0123456789abcdef-0123456789';

let redis: RedisServer;
let conn: RedisConnection;
let registryA: InstanceRegistry;
const registries: InstanceRegistry[] = [];

/** B: the owner. Counts connections and handler runs; its handlers run only after the guard. */
const bLogs = new LogCapture();
const guardB = new ClusterGuard(SECRET, createLogger({ level: 'debug', pretty: false, destination: bLogs }));
let bConnections = 0;
let bHandled = 0;
const b = http.createServer((req, res) => {
  guardB.middleware({ required: req.url?.startsWith('/internal') })(req, res, () => {
    bHandled++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url?.startsWith('/slow')) {
        setTimeout(() => {
          res.writeHead(429, { 'retry-after': '7', 'x-owner': 'b', 'content-type': 'application/json' });
          res.end(JSON.stringify({ success: false, error: 'Too many', code: 'RATE_LIMITED', retryAfter: 7 }));
        }, 800);
        return;
      }
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const t = setInterval(() => {
          res.write(`part${i}\n`);
          if (++i === 3) {
            clearInterval(t);
            res.end();
          }
        }, 150);
        return;
      }
      if (req.url === '/hang') return; // never answers
      res.writeHead(201, { 'content-type': 'application/json', 'x-owner': 'b', 'set-cookie': ['a=1', 'b=2'] });
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          bodyLength: body.length,
          bodySha: createHash('sha256').update(body).digest('hex'),
          forwarded: isForwarded(req),
          by: forwardedBy(req) ?? null,
          clientIp: forwardedClientIp(req) ?? null,
          ip: (req as { ip?: string }).ip ?? null,
        }),
      );
    });
  });
});
b.on('connection', () => bConnections++);

/** A: the front. Reads the body (its own cap), forwards to the target named in `x-target`, answers 503/413 itself. */
let forwarder: Forwarder;
let lastResult: unknown;
const guardA = new ClusterGuard(SECRET);
const a = http.createServer((req, res) => {
  guardA.middleware()(req, res, () => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      const target = String(req.headers['x-target'] ?? 'b');
      forwarder
        .forward(target, { incoming: req, body: Buffer.concat(chunks), clientIp: '203.0.113.9' }, res)
        .then((r) => (lastResult = r))
        .catch((err: unknown) => {
          lastResult = err;
          const status = isAppError(err) ? err.status : 500;
          const code = isAppError(err) ? err.code : 'INTERNAL';
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (isAppError(err) && err.extra.retryAfterSec) headers['retry-after'] = String(err.extra.retryAfterSec);
          res.writeHead(status, headers);
          res.end(JSON.stringify({ success: false, error: 'x', code }));
        });
    });
  });
});

/** A server that must never be dialled. */
let trapConnections = 0;
const trap = http.createServer((_req, res) => res.end('trap'));
trap.on('connection', () => trapConnections++);

const listen = (s: http.Server) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
let aUrl = '';
let bPort = 0;
let trapPort = 0;

async function register(id: string, port: number): Promise<InstanceRegistry> {
  const r = new InstanceRegistry({ connection: conn, instanceId: id, advertiseUrl: `http://127.0.0.1:${port}`, heartbeatIntervalMs: 500 });
  registries.push(r);
  await r.start();
  return r;
}

beforeAll(async () => {
  redis = await startRedis();
  conn = new RedisConnection({ url: redis.url, keyPrefix: 'fwd:' });
  conn.start();
  await conn.waitUntilConnected(5000);
  const aPort = await listen(a);
  aUrl = `http://127.0.0.1:${aPort}`;
  bPort = await listen(b);
  trapPort = await listen(trap);
  registryA = await register('a', aPort);
  await register('b', bPort);
  forwarder = new Forwarder({ selfId: 'a', secret: SECRET, peers: registryA, connectTimeoutMs: 500, responseTimeoutMs: 2000, idleTimeoutMs: 2000, maxBodyBytes: 1024 * 1024 });
});

afterAll(async () => {
  forwarder?.close();
  for (const r of registries) await r.stop();
  await conn?.close();
  for (const s of [a, b, trap]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await redis?.close();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
  error?: string;
  firstChunkMs?: number;
}

function call(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let firstChunkMs: number | undefined;
      res.on('data', (c: Buffer) => {
        firstChunkMs ??= performance.now() - t0;
        chunks.push(c);
      });
      const done = (error?: string) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - t0, error, firstChunkMs });
      res.on('end', () => done(res.complete ? undefined : 'incomplete'));
      res.on('error', (e) => done(e.message));
    });
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), ms: performance.now() - t0, error: e.message }));
    req.end(opts.body);
  });
}

describe('forwarding', () => {
  it('passes method, path and query, end-to-end headers and the body bytes; returns status, headers and body unchanged', async () => {
    const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
    const r = await call(`${aUrl}/api/v1/live-audio/transcribe?x=1&y=%20`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-api-key': 'ak_client', 'x-request-id': 'rid-1', 'keep-alive': 'timeout=5', connection: 'keep-alive, x-hop', 'x-hop': 'drop me' },
    });
    expect(r.status).toBe(201);
    expect(r.headers['x-owner']).toBe('b');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    const seen = JSON.parse(r.body.toString()) as { method: string; url: string; headers: Record<string, string>; bodyLength: number; bodySha: string; forwarded: boolean; by: string; clientIp: string };
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/api/v1/live-audio/transcribe?x=1&y=%20');
    expect(seen.bodyLength).toBe(body.length);
    expect(seen.bodySha).toBe(createHash('sha256').update(body).digest('hex'));
    expect(seen.headers['x-api-key']).toBe('ak_client'); // the owner authenticates the caller itself
    expect(seen.headers['x-request-id']).toBe('rid-1');
    expect(seen.headers['content-type']).toBe('application/json');
    expect(seen.headers['x-hop']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expect(seen.headers.host).toBe(`127.0.0.1:${bPort}`);
    expect(seen).toMatchObject({ forwarded: true, by: 'a', clientIp: '203.0.113.9' });
    // the guard removed the secret before the handler saw the headers
    expect(JSON.stringify(seen.headers)).not.toContain(SECRET);
    expect(lastResult).toEqual({ outcome: 'answered', status: 201, bytes: r.body.length });
  });

  it("the owner's bounded wait is the caller's: a 429 after 800 ms comes back as it is, Retry-After included", async () => {
    const r = await call(`${aUrl}/slow`, { method: 'POST', body: Buffer.from('{}') });
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('7');
    expect(JSON.parse(r.body.toString())).toEqual({ success: false, error: 'Too many', code: 'RATE_LIMITED', retryAfter: 7 });
    expect(r.ms).toBeGreaterThanOrEqual(790);
  });

  it('streams: the first part arrives before the peer has written the last', async () => {
    const r = await call(`${aUrl}/stream`);
    expect(r.body.toString()).toBe('part0\npart1\npart2\n');
    expect(r.firstChunkMs!).toBeLessThan(r.ms - 200);
  });

  it('reuses keep-alive connections to a peer', async () => {
    const before = bConnections;
    for (let i = 0; i < 10; i++) expect((await call(`${aUrl}/echo${i}`)).status).toBe(201);
    expect(bConnections - before).toBeLessThanOrEqual(1);
  });
});

describe("an instance's own calls (Forwarder.call)", () => {
  it('POSTs JSON with the secret (marked forwarded by A at B) and resolves with the status and parsed answer', async () => {
    const r = await forwarder.call('b', '/internal/owner?x=1', { principal: 'key:alice', sessionId: 's1' });
    expect(r.status).toBe(201);
    const seen = r.body as { method: string; url: string; forwarded: boolean; by: string; headers: Record<string, string>; bodySha: string };
    expect(seen).toMatchObject({ method: 'POST', url: '/internal/owner?x=1', forwarded: true, by: 'a' });
    expect(seen.bodySha).toBe(createHash('sha256').update(JSON.stringify({ principal: 'key:alice', sessionId: 's1' })).digest('hex'));
    // The secret went to B's guard only: stripped before the handler saw the headers.
    expect(JSON.stringify(seen.headers)).not.toContain(SECRET);
  });

  it("the peer's refusal comes back as it is (status and body); only a failure to answer rejects", async () => {
    const r = await forwarder.call('b', '/slow', {});
    expect(r).toEqual({ status: 429, body: { success: false, error: 'Too many', code: 'RATE_LIMITED', retryAfter: 7 } });
  });

  it('an unknown peer is never dialled, a silent one times out: PeerUnavailableError (503 CLUSTER_UNAVAILABLE)', async () => {
    const before = trapConnections;
    const unknown = await forwarder.call('nobody', '/x', {}).catch((e: unknown) => e);
    expect(isClusterUnavailable(unknown)).toBe(true);
    const t0 = performance.now();
    const hang = await forwarder.call('b', '/hang', {}, 600).catch((e: unknown) => e);
    expect(isClusterUnavailable(hang)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(trapConnections).toBe(before);
  });
});

describe('peers that fail', () => {
  it('a registered peer whose port is closed: 503 CLUSTER_UNAVAILABLE with Retry-After, at once', async () => {
    const port = await freePort();
    const r0 = await register('closed', port);
    const r = await call(`${aUrl}/x`, { headers: { 'x-target': 'closed' } });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(JSON.parse(r.body.toString()).code).toBe('CLUSTER_UNAVAILABLE');
    expect(r.ms).toBeLessThan(1000);
    await r0.stop();
  });

  it('a peer that never answers: 503 after the response timeout, not a hang', async () => {
    const r = await call(`${aUrl}/hang`);
    expect(r.status).toBe(503);
    expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(r.ms).toBeLessThan(2000 + 1500);
    expect(isClusterUnavailable(lastResult)).toBe(true);
  });

  it('a peer process killed (SIGKILL) mid-answer: the client gets the started answer cut, A keeps serving', async () => {
    const port = await freePort();
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'test/cluster/fixtures/peer-child.ts'], { cwd: ROOT, env: { PATH: process.env.PATH, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (/mid-answer/.test(out) && processAlive(child.pid!)) child.kill('SIGKILL');
      });
      await waitForPort(port, 20_000, 'peer-child', () => child.exitCode === null);
      const reg = await register('dying', port);
      const r = await call(`${aUrl}/partial`, { headers: { 'x-target': 'dying' } });
      expect(r.status).toBe(200); // the answer had begun
      expect(r.body.length).toBeGreaterThanOrEqual(1000);
      expect(r.body.length).toBeLessThan(100_000);
      expect(r.error).toBeDefined(); // cut, not complete
      expect(lastResult).toMatchObject({ outcome: 'aborted', status: 200 });
      await reg.stop();
      // A is fine and still forwards to B
      expect((await call(`${aUrl}/after`)).status).toBe(201);
    } finally {
      if (processAlive(child.pid!)) child.kill('SIGKILL');
    }
  });
});

describe('attacker', () => {
  it('a call claiming to be forwarded without the secret, or with a wrong one, is refused and nothing runs', async () => {
    const bUrl = `http://127.0.0.1:${bPort}`;
    const before = bHandled;
    const attempts: Record<string, string>[] = [
      { 'x-live-audio-forwarded-by': 'a' },
      { 'x-live-audio-forwarded-by': 'a', 'x-live-audio-cluster-secret': '' },
      { 'x-live-audio-forwarded-by': 'a', 'x-live-audio-cluster-secret': SECRET.slice(0, -1) + 'X' }, // right length, last char wrong
      { 'x-live-audio-forwarded-by': 'a', 'x-live-audio-cluster-secret': SECRET + 'X' },
      { 'x-live-audio-forwarded-by': 'a', 'x-live-audio-cluster-secret': 'short' },
      { 'x-live-audio-cluster-secret': SECRET.toUpperCase(), 'x-live-audio-forwarded-by': 'a' },
      { 'x-live-audio-client-ip': '10.0.0.1' }, // a spoofed client address alone
      { 'x-live-audio-cluster-secret': SECRET, 'x-live-audio-forwarded-by': '../evil' }, // right secret, bad instance id
    ];
    for (const headers of attempts) {
      const r = await call(`${bUrl}/api/v1/live-audio/session/end`, { method: 'POST', headers, body: Buffer.from('{"session_id":"s"}') });
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body.toString())).toEqual({ success: false, error: 'Forbidden', code: 'CLUSTER_FORBIDDEN' });
    }
    const internal = await call(`${bUrl}/internal/cluster/adopt`, { method: 'POST' });
    expect(internal.status).toBe(401);
    expect(JSON.parse(internal.body.toString()).code).toBe('CLUSTER_AUTH_REQUIRED');
    expect(bHandled).toBe(before);
    // the right secret is let through (B is not broken), and neither secret ever reaches B's log lines
    const ok = await call(`${bUrl}/internal/cluster/adopt`, { method: 'POST', headers: { 'x-live-audio-cluster-secret': SECRET, 'x-live-audio-forwarded-by': 'a' } });
    expect(ok.status).toBe(201);
    expect(bLogs.text).toContain('refused a cluster call');
    expect(bLogs.text).not.toContain(SECRET);
    expect(bLogs.text).not.toContain(SECRET.slice(0, 16));
  });

  it('a client cannot smuggle cluster headers through A to B: they are stripped and replaced', async () => {
    const r = await call(`${aUrl}/x`, { headers: { 'x-live-audio-client-ip': '10.6.6.6' } });
    expect(r.status).toBe(403); // A's own guard refuses the spoofed claim first
    const r2 = await call(`${aUrl}/x`);
    const seen = JSON.parse(r2.body.toString()) as { clientIp: string; by: string; ip: string };
    // B's per-IP rules read req.ip: the original client's address, set only on a call with the secret.
    expect(seen).toMatchObject({ clientIp: '203.0.113.9', by: 'a', ip: '203.0.113.9' });
  });

  it('a huge body is refused (413) before any peer is dialled', async () => {
    const before = bConnections;
    const beforeHandled = bHandled;
    forwarder.close(); // no pooled socket: a dial would show as a new connection
    const r = await call(`${aUrl}/big`, { method: 'POST', body: Buffer.alloc(1024 * 1024 + 1) });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body.toString()).code).toBe('PAYLOAD_TOO_LARGE');
    expect(bConnections).toBe(before);
    expect(bHandled).toBe(beforeHandled);
  });

  it('only registered live peers are dialled: an unknown id, a planted odd URL, this instance itself', async () => {
    await conn.run((r) => r.set(conn.key('instance', 'planted'), JSON.stringify({ id: 'planted', advertiseUrl: `http://127.0.0.1:${trapPort}/admin` }), 'PX', 60_000));
    await conn.run((r) => r.set(conn.key('instance', 'planted2'), JSON.stringify({ id: 'planted2', advertiseUrl: `file:///etc/passwd` }), 'PX', 60_000));
    for (const target of ['nobody', 'planted', 'planted2', 'a', `127.0.0.1:${trapPort}`, `http://127.0.0.1:${trapPort}`]) {
      const r = await call(`${aUrl}/x`, { headers: { 'x-target': target } });
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body.toString()).code).toBe('CLUSTER_UNAVAILABLE');
    }
    expect(trapConnections).toBe(0);
  });

  it('a forwarded request is never forwarded again', async () => {
    const before = bHandled;
    const r = await call(`${aUrl}/x`, { headers: { 'x-live-audio-cluster-secret': SECRET, 'x-live-audio-forwarded-by': 'b' } });
    expect(r.status).toBe(508);
    expect(JSON.parse(r.body.toString()).code).toBe('FORWARD_LOOP');
    expect(bHandled).toBe(before);
  });

  it('refuses to start with a short secret', () => {
    expect(() => new ClusterGuard('too-short')).toThrow(/at least 32/);
    expect(() => new Forwarder({ selfId: 'a', secret: 'x'.repeat(31), peers: registryA })).toThrow(/at least 32/);
  });
});

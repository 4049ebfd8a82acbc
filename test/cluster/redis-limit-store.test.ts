/**
 * Shared limits against a real redis-server: RedisLimitStore's atomic consume holds a key's budget across two
 * instances' clients under concurrency (refused attempts use nothing), windows expire, fractional amounts, the
 * decrement/get semantics of the in-memory store; rate-limit-redis (ClusterRequestCounterStore) under
 * express-rate-limit holds one request budget across two express apps, answers 503 CLUSTER_UNAVAILABLE with
 * Retry-After while Redis is down (also when it was down at start) and recovers by itself.
 */
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import { ClusterUnavailableError } from '../../src/cluster/cluster-errors';
import { ClusterRequestCounterStore } from '../../src/cluster/rate-limit-redis-store';
import { RedisConnection } from '../../src/cluster/redis-connection';
import { RedisLimitStore } from '../../src/cluster/redis-limit-store';
import { errorHandler } from '../../src/middleware/error-handler';
import { silentLogger } from '../../src/util/logger';
import { prng } from '../ops/helpers';
import { startRedis, type RedisServer } from '../helpers/redis-server';

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
let redis: RedisServer;
const conns: RedisConnection[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});
afterEach(async () => {
  await Promise.all(conns.splice(0).map((c) => c.close()));
});

async function conn(prefix: string, wait = true): Promise<RedisConnection> {
  const c = new RedisConnection({ url: redis.url, keyPrefix: prefix, downAfterMs: 500, reconnectBackoffMaxMs: 150 });
  conns.push(c);
  c.start();
  if (wait) expect(await c.waitUntilConnected(5000)).toBe(true);
  return c;
}

describe('RedisLimitStore', () => {
  it(`a key's budget holds across two instances: 40 concurrent consumes, limit 10 → exactly 10 (seed ${SEED})`, async () => {
    const prefix = `ls${++n}:`;
    const a = new RedisLimitStore(await conn(prefix));
    const b = new RedisLimitStore(await conn(prefix));
    const rand = prng(SEED);
    const results = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 5)));
        return (i % 2 ? a : b).consume('transcriptions:key:alice', 1, 10, 60_000);
      }),
    );
    const ok = results.filter((r) => r.ok);
    if (ok.length !== 10) throw new Error(`${ok.length} admitted (seed ${SEED})`);
    expect((await a.get('transcriptions:key:alice'))!.count).toBe(10); // refused attempts used nothing
    expect((await b.get('transcriptions:key:alice'))!.resetAt).toBeGreaterThan(Date.now() + 55_000);
    // another key has its own budget
    expect((await b.consume('transcriptions:key:bob', 1, 10, 60_000)).ok).toBe(true);
  });

  it('fractional amounts (audio seconds), refusal without use, and the window reopening after it ends', async () => {
    const s = new RedisLimitStore(await conn(`ls${++n}:`));
    for (let i = 0; i < 4; i++) expect((await s.consume('audio', 0.5, 2, 300)).ok).toBe(true);
    const refused = await s.consume('audio', 0.25, 2, 300);
    expect(refused).toMatchObject({ ok: false, count: 2 });
    expect(refused.resetAt - Date.now()).toBeLessThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 350));
    expect(await s.get('audio')).toBeUndefined();
    expect(await s.consume('audio', 1.5, 2, 300)).toMatchObject({ ok: true, count: 1.5 });
  });

  it('increment / decrement / get behave like the in-memory store (decrement never opens a window or goes below 0)', async () => {
    const c = await conn(`ls${++n}:`);
    const s = new RedisLimitStore(c);
    expect(await s.get('k')).toBeUndefined();
    await s.decrement('k', 3);
    expect(await s.get('k')).toBeUndefined();
    expect(await c.run((r) => r.exists(c.key('limit', 'k')))).toBe(0); // no key without an expiry
    expect((await s.increment('k', 5, 60_000)).count).toBe(5);
    expect((await s.increment('k', 100, 60_000)).count).toBe(105); // increment records, never refuses
    await s.decrement('k', 200);
    expect((await s.get('k'))!.count).toBe(0);
    expect(await c.run((r) => r.pttl(c.key('limit', 'k')))).toBeGreaterThan(50_000);
  });

  it('Redis down: consume fails at once with ClusterUnavailableError', async () => {
    const s = new RedisLimitStore(await conn(`ls${++n}:`));
    await redis.stop();
    try {
      const t0 = performance.now();
      await expect(s.consume('k', 1, 10, 60_000)).rejects.toBeInstanceOf(ClusterUnavailableError);
      expect(performance.now() - t0).toBeLessThan(200);
    } finally {
      await redis.restart();
    }
  });
});

describe('rate-limit-redis under express-rate-limit (ClusterRequestCounterStore)', () => {
  const limiterErrors: string[] = [];
  async function app(c: RedisConnection, limit: number): Promise<{ url: string; close: () => Promise<void> }> {
    const a = express();
    a.use(
      rateLimit({
        windowMs: 60_000,
        limit,
        store: new ClusterRequestCounterStore(c, 'requests'),
        keyGenerator: (req) => String(req.headers['x-user']),
        validate: false,
        logger: { error: (_err: unknown, msg?: string) => void limiterErrors.push(String(msg)), warn: () => undefined },
        handler: (_req, res) => void res.status(429).json({ success: false, error: 'Too many requests', code: 'RATE_LIMITED' }),
      }),
    );
    a.get('/x', (_req, res) => void res.json({ success: true }));
    a.use(errorHandler(silentLogger));
    const server = http.createServer(a);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise((r) => server.close(() => r())),
    };
  }

  it('one budget across two instances: limit 5, 8 calls alternating → 5 × 200, then 429', async () => {
    const prefix = `rl${++n}:`;
    const a = await app(await conn(prefix), 5);
    const b = await app(await conn(prefix), 5);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await fetch(`${i % 2 ? a.url : b.url}/x`, { headers: { 'x-user': 'alice' } })).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
      expect((await fetch(`${a.url}/x`, { headers: { 'x-user': 'bob' } })).status).toBe(200);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('Redis down (even when the limiter was created during the outage): 503 CLUSTER_UNAVAILABLE + Retry-After; recovers by itself', async () => {
    const prefix = `rl${++n}:`;
    await redis.stop();
    const c = await conn(prefix, false);
    const a = await app(c, 3);
    try {
      const r = await fetch(`${a.url}/x`, { headers: { 'x-user': 'alice' } });
      expect(limiterErrors.join()).toMatch(/store initialization/);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('2');
      expect(await r.json()).toMatchObject({ success: false, code: 'CLUSTER_UNAVAILABLE' });
      await redis.restart();
      expect(await c.waitUntilConnected(5000)).toBe(true);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await fetch(`${a.url}/x`, { headers: { 'x-user': 'alice' } })).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
    } finally {
      await a.close();
      if (!redis.pid) await redis.restart();
    }
  });
});

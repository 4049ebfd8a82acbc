/**
 * RedisConnection against a real redis-server (Debian's, started on a free port): state events for /ready, key
 * prefix, and the outage paths: Redis stopped (calls fail at once with 503 CLUSTER_UNAVAILABLE, never hang), Redis
 * hung (SIGSTOP: each call bounded by the command timeout, then the socket is dropped so later calls fail at once),
 * Redis back on the same port (reconnects), a password never reaching errors or logs.
 */
import { ClusterUnavailableError } from '../../src/cluster/cluster-errors';
import { RedisConnection, type RedisState } from '../../src/cluster/redis-connection';
import { createLogger } from '../../src/util/logger';
import { LogCapture } from '../helpers/log-capture';
import { startRedis, type RedisServer } from '../helpers/redis-server';
import { freePort } from '../helpers/system-binary';

let redis: RedisServer;
const open: RedisConnection[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function connect(url = redis.url, extra: Partial<ConstructorParameters<typeof RedisConnection>[0]> = {}): RedisConnection {
  const c = new RedisConnection({ url, downAfterMs: 600, commandTimeoutMs: 400, reconnectBackoffMaxMs: 200, ...extra });
  open.push(c);
  return c;
}

function statesOf(c: RedisConnection): RedisState[] {
  const seen: RedisState[] = [];
  c.on('state', (s) => seen.push(s));
  return seen;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

it('connects, reports connected, prefixes keys, and answers commands', async () => {
  const c = connect(redis.url, { keyPrefix: 'test-a:' });
  const seen = statesOf(c);
  expect(c.state).toBe('down');
  c.start();
  expect(await c.waitUntilConnected(5000)).toBe(true);
  expect(seen).toEqual(['connected']);
  expect(c.key('instance', 'i1')).toBe('test-a:instance:i1');
  await c.run((r) => r.set(c.key('k'), 'v'));
  expect(await c.run((r) => r.get('test-a:k'))).toBe('v');
  expect(c.readiness()).toEqual({ state: 'connected', since: expect.any(Number) });
});

it('a Redis reply error (a wrong command) passes through; it is not an outage', async () => {
  const c = connect();
  c.start();
  await c.waitUntilConnected(5000);
  await c.run((r) => r.set(c.key('text'), 'not a number'));
  const r = await timed(c.run((cl) => cl.incr(c.key('text'))));
  expect(r.error).toBeInstanceOf(Error);
  expect(r.error).not.toBeInstanceOf(ClusterUnavailableError);
  expect(c.state).toBe('connected');
});

it('Redis stopped: reconnecting at once, calls fail fast with 503 CLUSTER_UNAVAILABLE, down after the bound, back when Redis is', async () => {
  const c = connect();
  const seen = statesOf(c);
  c.start();
  await c.waitUntilConnected(5000);
  await c.run((r) => r.set(c.key('before'), '1'));

  await redis.stop();
  const noticedMs = await until(() => c.state !== 'connected', 2000, 'the connection noticed Redis stopped');
  expect(c.state).toBe('reconnecting');

  const r = await timed(c.run((cl) => cl.get(c.key('before'))));
  expect(r.error).toBeInstanceOf(ClusterUnavailableError);
  const e = r.error as ClusterUnavailableError;
  expect(e.status).toBe(503);
  expect(e.code).toBe('CLUSTER_UNAVAILABLE');
  expect(e.extra.retryAfterSec).toBeGreaterThanOrEqual(1);
  // "Fails fast": no network round trip, no queue; the bound leaves room for a loaded 2-core machine.
  expect(r.ms).toBeLessThan(100);

  await until(() => c.state === 'down', 3000, 'down after downAfterMs');
  const again = await timed(c.run((cl) => cl.get(c.key('before'))));
  expect(again.error).toBeInstanceOf(ClusterUnavailableError);
  expect(again.ms).toBeLessThan(100);

  await redis.restart();
  const backMs = await until(() => c.state === 'connected', 5000, 'reconnected after the restart');
  expect(await c.run((cl) => cl.get(c.key('before')))).toBeNull(); // a fresh Redis: no persistence
  expect(seen).toEqual(['connected', 'reconnecting', 'down', 'connected']);
  console.log(`redis stop noticed in ${noticedMs} ms; a call meanwhile failed in ${r.ms.toFixed(1)} ms; reconnected ${backMs} ms after the restart`);
});

it('Redis hung (SIGSTOP): each call ends at the command timeout, then the socket is dropped and calls fail at once', async () => {
  const c = connect(redis.url, { commandTimeoutMs: 300, timeoutsBeforeReconnect: 2 });
  c.start();
  await c.waitUntilConnected(5000);
  redis.pause();
  try {
    const first = await timed(c.run((cl) => cl.get(c.key('x'))));
    const second = await timed(c.run((cl) => cl.get(c.key('x'))));
    for (const r of [first, second]) {
      expect(r.error).toBeInstanceOf(ClusterUnavailableError);
      expect(r.ms).toBeGreaterThanOrEqual(250);
      expect(r.ms).toBeLessThan(300 + 1000);
    }
    await until(() => c.state !== 'connected', 2000, 'the hung connection was dropped');
    const third = await timed(c.run((cl) => cl.get(c.key('x'))));
    expect(third.error).toBeInstanceOf(ClusterUnavailableError);
    expect(third.ms).toBeLessThan(100);
    console.log(`hung redis: calls ended after ${first.ms.toFixed(0)} and ${second.ms.toFixed(0)} ms (timeout 300), then in ${third.ms.toFixed(1)} ms`);
  } finally {
    redis.resume();
  }
  await until(() => c.state === 'connected', 5000, 'reconnected after SIGCONT');
  expect(await c.run((cl) => cl.ping())).toBe('PONG');
});

it('nothing listening: start() does not throw, the state stays down, calls fail at once', async () => {
  const port = await freePort();
  const c = connect(`redis://127.0.0.1:${port}`);
  c.start();
  expect(await c.waitUntilConnected(500)).toBe(false);
  expect(c.state).toBe('down');
  const r = await timed(c.run((cl) => cl.ping()));
  expect(r.error).toBeInstanceOf(ClusterUnavailableError);
  expect(r.ms).toBeLessThan(100);
  expect(c.readiness().lastError).toMatch(/ECONNREFUSED/);
});

it('the password in REDIS_URL never reaches errors, readiness or logs', async () => {
  const secured = await startRedis({ args: ['--requirepass', 'right-Pa55word'] });
  try {
    const logs = new LogCapture();
    const logger = createLogger({ level: 'debug', pretty: false, destination: logs });
    const wrong = connect(`redis://:wrong-Pa55word-xyz@127.0.0.1:${secured.port}`, { logger });
    wrong.start();
    expect(await wrong.waitUntilConnected(800)).toBe(false);
    const r = await timed(wrong.run((cl) => cl.ping()));
    expect(r.error).toBeInstanceOf(ClusterUnavailableError);
    expect(wrong.safeUrl).toBe(`redis://:***@127.0.0.1:${secured.port}`);

    const right = connect(`redis://:right-Pa55word@127.0.0.1:${secured.port}`, { logger });
    right.start();
    expect(await right.waitUntilConnected(5000)).toBe(true);
    await secured.stop();
    await until(() => right.state !== 'connected', 2000, 'noticed the stop');
    const r2 = await timed(right.run((cl) => cl.ping()));

    const everything = [
      logs.text,
      JSON.stringify(wrong.readiness()),
      JSON.stringify(right.readiness()),
      String((r.error as Error).message),
      String((r.error as ClusterUnavailableError).reason),
      String((r2.error as ClusterUnavailableError).reason),
    ].join('\n');
    expect(everything).not.toContain('wrong-Pa55word-xyz');
    expect(everything).not.toContain('right-Pa55word');
    expect(logs.text).toContain('redis connected');
  } finally {
    await secured.close();
  }
});

it('close() is idempotent and ends in down', async () => {
  const c = connect();
  c.start();
  await c.waitUntilConnected(5000);
  await c.close();
  await c.close();
  expect(c.state).toBe('down');
  await expect(c.run((cl) => cl.ping())).rejects.toBeInstanceOf(ClusterUnavailableError);
});

it('an exception of the caller inside run() is rethrown as it is, not turned into an outage', async () => {
  const c = connect();
  c.start();
  await c.waitUntilConnected(5000);
  await expect(c.run(async () => { throw new RangeError('caller bug'); })).rejects.toThrow(RangeError);
});

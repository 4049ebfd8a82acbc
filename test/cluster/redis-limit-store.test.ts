/**
 * Shared limits against a real redis-server: RedisLimitStore's atomic consume holds a key's budget across two
 * instances' clients under concurrency (refused attempts use nothing), windows expire, fractional amounts, the
 * decrement/get semantics of the in-memory store.
 */
import { ClusterUnavailableError } from '../../src/cluster/cluster-errors';
import { RedisConnection } from '../../src/cluster/redis-connection';
import { RedisLimitStore } from '../../src/cluster/redis-limit-store';
import { prng } from '../ops/helpers';
import { redisForFile } from '../helpers/redis-server';

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
const file = redisForFile();
let n = 0;

async function conn(prefix: string, wait = true): Promise<RedisConnection> {
  const c = new RedisConnection({ url: file.server.url, keyPrefix: prefix, downAfterMs: 500, reconnectBackoffMaxMs: 150 });
  file.cleanup(() => c.close());
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
    await file.server.stop();
    try {
      const t0 = performance.now();
      await expect(s.consume('k', 1, 10, 60_000)).rejects.toBeInstanceOf(ClusterUnavailableError);
      expect(performance.now() - t0).toBeLessThan(200);
    } finally {
      await file.server.restart();
    }
  });
});

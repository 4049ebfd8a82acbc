/**
 * The synchronous limits store seam over the shared Redis counters (`ReconciledLimitStore`), against a real
 * redis-server: two instances' stores adopt each other's usage at each reconcile; two `Limits` (as two instances
 * run them) admit a key's budget once, not twice (exceeded by at most one interval's worth); while Redis is down
 * each counts alone, and its usage reaches the shared counter once Redis is back.
 */
import { ReconciledLimitStore } from '../../src/cluster/reconciled-limit-store';
import { RedisConnection } from '../../src/cluster/redis-connection';
import { RedisLimitStore } from '../../src/cluster/redis-limit-store';
import { Limits } from '../../src/services/limits/limits';
import { redisForFile } from '../helpers/redis-server';
import { prng } from '../ops/helpers';

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
const file = redisForFile();

let n = 0;
async function instance(prefix: string): Promise<ReconciledLimitStore> {
  const c = new RedisConnection({ url: file.server.url, keyPrefix: prefix, downAfterMs: 500, reconnectBackoffMaxMs: 150 });
  c.start();
  expect(await c.waitUntilConnected(5000)).toBe(true);
  const store = new ReconciledLimitStore({ shared: new RedisLimitStore(c), intervalMs: 60_000 });
  file.cleanup(() => c.close(), () => store.close());
  return store;
}

it('two instances adopt each other’s usage at each reconcile', async () => {
  const prefix = `rls${++n}:`;
  const [a, b] = [await instance(prefix), await instance(prefix)];
  for (let i = 0; i < 5; i++) a.increment('k', 1, 60_000);
  for (let i = 0; i < 3; i++) b.increment('k', 2, 60_000);
  b.decrement('k', 2); // a refund
  expect(a.get('k')!.count).toBe(5);
  expect(b.get('k')!.count).toBe(4);
  await a.flush();
  await b.flush();
  await a.flush(); // nothing pending: a keeps its view until its next use
  expect(b.get('k')!.count).toBe(9);
  a.increment('k', 1, 60_000);
  await a.flush();
  expect(a.get('k')!.count).toBe(10);
  expect(a.get('k')!.resetAt).toBeGreaterThan(Date.now() + 50_000);
});

it(`two Limits share a key's budget: admitted once across the instances, not once per instance (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const prefix = `rls${++n}:`;
  const mk = async () => new Limits({ store: await instance(prefix), wsMessagesPerMinute: 20, audioSecondsPerMinute: 0, audioBytesPerMinute: 0, unauthenticatedPerIpPerMinute: 0, wsConnectsPerIpPerMinute: 0 });
  const [a, b] = [await mk(), await mk()];
  file.cleanup(() => a.close(), () => b.close());
  const stores = (a as unknown as { store: ReconciledLimitStore }).store;
  const storesB = (b as unknown as { store: ReconciledLimitStore }).store;
  let admitted = 0;
  for (let i = 0; i < 60; i++) {
    const l = rnd() < 0.5 ? a : b;
    if (l.consume('key:alice', 'ws_messages').ok) admitted++;
    // The reconcile interval: every 4 messages (which instance gets each one is random).
    if (i % 4 === 3) await Promise.all([stores.flush(), storesB.flush()]);
  }
  console.log(`seed ${SEED}: 60 messages over two instances, limit 20 per minute: ${admitted} admitted`);
  expect(admitted).toBeGreaterThanOrEqual(20);
  // One budget: exceeded by at most what arrives within one interval (4 here); alone, each would admit 20 (40).
  expect(admitted).toBeLessThanOrEqual(24);
});

it('while Redis is down each instance counts alone; its usage reaches the shared counter when Redis is back', async () => {
  const prefix = `rls${++n}:`;
  const a = await instance(prefix);
  await file.server.stop();
  for (let i = 0; i < 4; i++) a.increment('k', 1, 60_000);
  await a.flush(); // fails quietly, keeps the usage pending
  expect(a.get('k')!.count).toBe(4);
  await file.server.restart();
  const c = new RedisConnection({ url: file.server.url, keyPrefix: prefix });
  c.start();
  file.cleanup(() => c.close());
  expect(await c.waitUntilConnected(5000)).toBe(true);
  const shared = new RedisLimitStore(c);
  const deadline = Date.now() + 5000;
  let seen = 0;
  while (Date.now() < deadline) {
    await a.flush(); // fails until a's own connection is back
    seen = (await shared.get('k'))?.count ?? 0;
    if (seen >= 4) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(seen).toBe(4);
});

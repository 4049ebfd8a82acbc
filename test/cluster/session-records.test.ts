/**
 * SessionRecordStore against a real redis-server: records round-trip (binary WebM header included), ids are
 * namespaced per principal (a foreign id is exactly an unknown one), the per-principal cap holds across instances,
 * takeover of a dead owner's session is won by exactly one of several concurrent takers (separate connections,
 * seeded random timing), fencing keeps a deposed owner from writing, hand-over/release, tombstones and TTLs,
 * expiry, restore after a Redis restart, and a fast 503 while Redis is down.
 */
import { ClusterUnavailableError } from '../../src/cluster/cluster-errors';
import { RedisConnection } from '../../src/cluster/redis-connection';
import { SessionRecordStore, type SessionRef } from '../../src/cluster/session-records';
import { prng } from '../ops/helpers';
import { redisForFile } from '../helpers/redis-server';

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
const file = redisForFile();
let n = 0;

async function conn(prefix: string): Promise<RedisConnection> {
  const c = new RedisConnection({ url: file.server.url, keyPrefix: prefix, downAfterMs: 500, reconnectBackoffMaxMs: 200 });
  file.cleanup(() => c.close());
  c.start();
  expect(await c.waitUntilConnected(5000)).toBe(true);
  return c;
}

async function store(prefix: string, opts: Partial<ConstructorParameters<typeof SessionRecordStore>[0]> = {}): Promise<{ s: SessionRecordStore; c: RedisConnection }> {
  const c = await conn(prefix);
  const s = new SessionRecordStore({ connection: c, liveness: { heartbeatKey: (id) => c.key('instance', id) }, tombstoneMs: 60_000, ...opts });
  return { s, c };
}

const ALL_BYTES = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
const alice = (sessionId: string): SessionRef => ({ principal: 'key:alice', sessionId });

it('a record round-trips: owner, epoch 1, setup, turn, handle, binary WebM header, timestamps; TTL = max age + tombstone', async () => {
  const { s, c } = await store(`sr${++n}:`);
  const before = Date.now();
  const r = await s.create({ ...alice('s1'), owner: 'inst-a', setup: { model: 'm', modality: 'audio' }, turn: { id: 0 }, webmHeader: ALL_BYTES, maxAgeMs: 900_000 });
  expect(r).toEqual({ created: true, ownership: { owner: 'inst-a', epoch: 1 } });
  const rec = await s.get(alice('s1'));
  expect(rec).toMatchObject({ principal: 'key:alice', sessionId: 's1', status: 'live', owner: 'inst-a', epoch: 1, setup: { model: 'm', modality: 'audio' }, turn: { id: 0 }, takeovers: 0 });
  expect(rec!.webmHeader!.equals(ALL_BYTES)).toBe(true);
  expect(rec!.resumptionHandle).toBeUndefined();
  expect(rec!.expiresAt - rec!.createdAt).toBe(900_000);
  expect(rec!.createdAt).toBeGreaterThanOrEqual(before);
  const keys = await c.run((cl) => cl.keys(`sr${n}:session:*`));
  expect(keys).toHaveLength(1);
  const pttl = await c.run((cl) => cl.pttl(keys[0]));
  expect(pttl).toBeGreaterThan(900_000 + 60_000 - 5_000);
  expect(pttl).toBeLessThanOrEqual(900_000 + 60_000);

  const resume = { pending: Buffer.from([0xa3]), midBody: false, inCluster: true };
  expect(await s.update(alice('s1'), { owner: 'inst-a', epoch: 1 }, { resumptionHandle: 'handle-1', turn: { id: 1, state: 'model' }, webmResume: resume })).toBe('ok');
  const after = await s.get(alice('s1'));
  expect(after).toMatchObject({ resumptionHandle: 'handle-1', turn: { id: 1, state: 'model' }, webmResume: resume });
  expect(after!.webmHeader!.equals(ALL_BYTES)).toBe(true);
});

it('ids are namespaced per principal: a foreign id looks exactly like one nobody used', async () => {
  const { s } = await store(`sr${++n}:`);
  await s.create({ ...alice('shared-id'), owner: 'inst-a', setup: {}, maxAgeMs: 60_000 });
  const foreign = await s.get({ principal: 'key:bob', sessionId: 'shared-id' });
  const unknown = await s.get({ principal: 'key:bob', sessionId: 'never-used' });
  expect(foreign).toBeUndefined();
  expect(foreign).toEqual(unknown);
  expect(await s.listByPrincipal('key:bob')).toEqual([]);
  // bob may use the same id; it is his own session
  expect((await s.create({ principal: 'key:bob', sessionId: 'shared-id', owner: 'inst-b', setup: {}, maxAgeMs: 60_000 })).created).toBe(true);
  expect((await s.get(alice('shared-id')))!.owner).toBe('inst-a');
  // principals that would collide if joined with a separator do not
  await s.create({ principal: 'a/b', sessionId: 'x', owner: 'inst-a', setup: 1, maxAgeMs: 60_000 });
  expect(await s.get({ principal: 'a', sessionId: 'x' })).toBeUndefined();
  expect(await s.listOwnedBy('inst-a')).toEqual(expect.arrayContaining([alice('shared-id'), { principal: 'a/b', sessionId: 'x' }]));
  // invalid ids are unknown, not errors
  expect(await s.get({ principal: 'key:alice', sessionId: '../../x' })).toBeUndefined();
  expect(await s.get({ principal: 'key:alice', sessionId: 'a'.repeat(129) })).toBeUndefined();
});

it('creating a live id again says who holds it; after end it can be created again', async () => {
  const { s } = await store(`sr${++n}:`);
  await s.create({ ...alice('dup'), owner: 'inst-a', setup: {}, maxAgeMs: 60_000 });
  expect(await s.create({ ...alice('dup'), owner: 'inst-b', setup: {}, maxAgeMs: 60_000 })).toEqual({ created: false, reason: 'exists', ownership: { owner: 'inst-a', epoch: 1 } });
  expect(await s.end(alice('dup'), { owner: 'inst-a', epoch: 1 }, 'client')).toBe('ok');
  expect((await s.create({ ...alice('dup'), owner: 'inst-b', setup: {}, maxAgeMs: 60_000 })).created).toBe(true);
});

it('the per-principal cap holds across instances: 12 concurrent creates from two connections, cap 3 → exactly 3', async () => {
  const prefix = `sr${++n}:`;
  const a = await store(prefix, { maxSessionsPerPrincipal: 3 });
  const b = await store(prefix, { maxSessionsPerPrincipal: 3 });
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) => (i % 2 ? a.s : b.s).create({ ...alice(`cap${i}`), owner: i % 2 ? 'inst-a' : 'inst-b', setup: {}, maxAgeMs: 60_000 })),
  );
  expect(results.filter((r) => r.created)).toHaveLength(3);
  expect(results.filter((r) => !r.created && r.reason === 'cap')).toHaveLength(9);
  expect(await a.s.listByPrincipal('key:alice')).toHaveLength(3);
  // ending one frees a slot, for any instance
  const live = await b.s.listByPrincipal('key:alice');
  await a.s.end(live[0], live[0], 'client');
  expect((await b.s.create({ ...alice('cap-next'), owner: 'inst-b', setup: {}, maxAgeMs: 60_000 })).created).toBe(true);
  expect((await a.s.create({ ...alice('cap-over'), owner: 'inst-a', setup: {}, maxAgeMs: 60_000 })).created).toBe(false);
});

it(`takeover race: of 8 takers on 8 connections, exactly one wins each round (seed ${SEED})`, async () => {
  const prefix = `sr${++n}:`;
  const takers = await Promise.all(Array.from({ length: 8 }, () => store(prefix)));
  const rand = prng(SEED);
  const ROUNDS = 25;
  for (let round = 0; round < ROUNDS; round++) {
    const ref = alice(`race${round}`);
    // the owner 'dead-x' has no heartbeat key: it is dead
    await takers[0].s.create({ ...ref, owner: 'dead-x', setup: { round }, maxAgeMs: 60_000 });
    const delays = takers.map(() => Math.floor(rand() * 4));
    const results = await Promise.all(
      takers.map(async (t, i) => {
        if (delays[i]) await new Promise((r) => setTimeout(r, delays[i]));
        return { i, r: await t.s.takeOver(ref, 'dead-x', `taker-${i}`) };
      }),
    );
    const winners = results.filter((x) => x.r.taken);
    if (winners.length !== 1) throw new Error(`round ${round}: ${winners.length} winners (seed ${SEED}, delays ${delays.join(',')})`);
    const w = winners[0];
    expect(w.r).toEqual({ taken: true, ownership: { owner: `taker-${w.i}`, epoch: 2 } });
    for (const l of results.filter((x) => !x.r.taken)) expect(l.r).toEqual({ taken: false, reason: 'owner_changed', ownership: { owner: `taker-${w.i}`, epoch: 2 } });
    const rec = await takers[0].s.get(ref);
    expect(rec).toMatchObject({ owner: `taker-${w.i}`, epoch: 2, takeovers: 1, setup: { round } });
  }
  const owned = (await Promise.all(takers.map((t, i) => t.s.listOwnedBy(`taker-${i}`)))).flat();
  expect(owned).toHaveLength(ROUNDS);
  expect(await takers[0].s.listOwnedBy('dead-x')).toEqual([]);
});

it('takeover is refused while the owner heartbeats; a deposed owner cannot write (fencing)', async () => {
  const { s, c } = await store(`sr${++n}:`);
  const ref = alice('fenced');
  await s.create({ ...ref, owner: 'inst-a', setup: {}, maxAgeMs: 60_000 });
  await c.run((cl) => cl.set(c.key('instance', 'inst-a'), '{}', 'PX', 60_000));
  expect(await s.takeOver(ref, 'inst-a', 'inst-b')).toEqual({ taken: false, reason: 'owner_alive', ownership: { owner: 'inst-a', epoch: 1 } });
  await c.run((cl) => cl.del(c.key('instance', 'inst-a'))); // inst-a stops heartbeating (paused, partitioned…)
  expect(await s.takeOver(ref, 'inst-a', 'inst-b')).toEqual({ taken: true, ownership: { owner: 'inst-b', epoch: 2 } });
  // inst-a comes back and still believes it owns the session with epoch 1
  expect(await s.update(ref, { owner: 'inst-a', epoch: 1 }, { resumptionHandle: 'stale' })).toBe('not_owner');
  expect(await s.end(ref, { owner: 'inst-a', epoch: 1 }, 'client')).toBe('not_owner');
  expect(await s.transfer(ref, { owner: 'inst-a', epoch: 1 }, 'inst-c')).toEqual({ ok: false, reason: 'not_owner' });
  expect(await s.update(ref, { owner: 'inst-b', epoch: 2 }, { resumptionHandle: 'fresh' })).toBe('ok');
  expect((await s.get(ref))!.resumptionHandle).toBe('fresh');
});

it('hand-over: the owner transfers to a peer, or releases it and exactly one instance adopts it', async () => {
  const { s } = await store(`sr${++n}:`);
  const ref = alice('handover');
  await s.create({ ...ref, owner: 'inst-a', setup: {}, maxAgeMs: 60_000 });
  expect(await s.transfer(ref, { owner: 'inst-a', epoch: 1 }, 'inst-b')).toEqual({ ok: true, ownership: { owner: 'inst-b', epoch: 2 } });
  expect(await s.listOwnedBy('inst-b')).toEqual([ref]);
  expect(await s.transfer(ref, { owner: 'inst-b', epoch: 2 }, '')).toEqual({ ok: true, ownership: { owner: '', epoch: 3 } });
  expect(await s.listOwnedBy('')).toEqual([ref]);
  const [x, y] = await Promise.all([s.takeOver(ref, '', 'inst-c'), s.takeOver(ref, '', 'inst-d')]);
  expect([x.taken, y.taken].filter(Boolean)).toHaveLength(1);
  expect(await s.listOwnedBy('')).toEqual([]);
});

it('end leaves a tombstone without header, handle or setup, kept for the tombstone time, out of every list', async () => {
  const { s, c } = await store(`sr${++n}:`, { tombstoneMs: 30_000 });
  const ref = alice('ended');
  await s.create({ ...ref, owner: 'inst-a', setup: { secret: 'x' }, webmHeader: ALL_BYTES, resumptionHandle: 'h', maxAgeMs: 600_000 });
  expect(await s.end(ref, { owner: 'inst-a', epoch: 1 }, 'client')).toBe('ok');
  const t = await s.get(ref);
  expect(t).toMatchObject({ status: 'ended', endReason: 'client', owner: 'inst-a' });
  expect(t!.webmHeader).toBeUndefined();
  expect(t!.resumptionHandle).toBeUndefined();
  expect(t!.setup).toBeUndefined();
  const pttl = await c.run((cl) => cl.pttl(c.key('session', Buffer.from('key:alice').toString('base64url'), 'ended')));
  expect(pttl).toBeGreaterThan(25_000);
  expect(pttl).toBeLessThanOrEqual(30_000);
  expect(await s.listByPrincipal('key:alice')).toEqual([]);
  expect(await s.listOwnedBy('inst-a')).toEqual([]);
  expect(await s.end(ref, { owner: 'inst-a', epoch: 1 }, 'client')).toBe('gone');
  expect(await s.takeOver(ref, 'inst-a', 'inst-b')).toEqual({ taken: false, reason: 'gone' });
});

it('past its max age a record reads expired: not listed, not counted against the cap, not taken over', async () => {
  const { s } = await store(`sr${++n}:`, { maxSessionsPerPrincipal: 1 });
  const ref = alice('short');
  await s.create({ ...ref, owner: 'dead-y', setup: {}, maxAgeMs: 150 });
  await new Promise((r) => setTimeout(r, 200));
  expect((await s.get(ref))!.status).toBe('expired');
  expect(await s.listByPrincipal('key:alice')).toEqual([]);
  expect(await s.takeOver(ref, 'dead-y', 'inst-b')).toEqual({ taken: false, reason: 'expired' });
  expect(await s.update(ref, { owner: 'dead-y', epoch: 1 }, { turn: 1 })).toBe('gone');
  expect((await s.create({ ...alice('next'), owner: 'inst-b', setup: {}, maxAgeMs: 60_000 })).created).toBe(true);
});

it('Redis restarted (data gone): the owner restores its records; a record someone else holds is not overwritten', async () => {
  const prefix = `sr${++n}:`;
  const { s, c } = await store(prefix);
  const ref = alice('survivor');
  await s.create({ ...ref, owner: 'inst-a', setup: { v: 1 }, webmHeader: ALL_BYTES, resumptionHandle: 'h1', maxAgeMs: 600_000 });
  const held = (await s.get(ref))!; // what the owner keeps in memory
  await file.server.restart();
  expect(await c.waitUntilConnected(5000)).toBe(true);
  expect(await s.get(ref)).toBeUndefined();
  expect(await s.restore(held)).toBe('restored');
  const back = await s.get(ref);
  expect(back).toMatchObject({ owner: 'inst-a', epoch: 1, setup: { v: 1 }, resumptionHandle: 'h1', status: 'live' });
  expect(back!.webmHeader!.equals(ALL_BYTES)).toBe(true);
  expect(await s.listByPrincipal('key:alice')).toHaveLength(1);
  expect(await s.listOwnedBy('inst-a')).toEqual([ref]);
  expect(await s.restore(held)).toBe('present');
  await s.transfer(ref, { owner: 'inst-a', epoch: 1 }, 'inst-b');
  expect(await s.restore(held)).toBe('conflict');
});

it('Redis down: calls fail at once with 503 CLUSTER_UNAVAILABLE (never a wrong "not found")', async () => {
  const { s } = await store(`sr${++n}:`);
  await s.create({ ...alice('x'), owner: 'inst-a', setup: {}, maxAgeMs: 60_000 });
  await file.server.stop();
  try {
    const t0 = performance.now();
    await expect(s.get(alice('x'))).rejects.toBeInstanceOf(ClusterUnavailableError);
    await expect(s.create({ ...alice('y'), owner: 'inst-a', setup: {}, maxAgeMs: 60_000 })).rejects.toBeInstanceOf(ClusterUnavailableError);
    await expect(s.takeOver(alice('x'), 'inst-a', 'inst-b')).rejects.toBeInstanceOf(ClusterUnavailableError);
    expect(performance.now() - t0).toBeLessThan(300);
  } finally {
    await file.server.restart();
  }
});

it('attacker: invalid ids, owners and oversized headers or setups are refused before Redis', async () => {
  const { s } = await store(`sr${++n}:`);
  await expect(s.create({ ...alice('bad id!'), owner: 'inst-a', setup: {}, maxAgeMs: 1000 })).rejects.toThrow('invalid session reference');
  await expect(s.create({ ...alice('ok'), owner: 'bad owner/..', setup: {}, maxAgeMs: 1000 })).rejects.toThrow('invalid owner');
  await expect(s.create({ ...alice('ok'), owner: 'inst-a', setup: {}, webmHeader: Buffer.alloc(256 * 1024 + 1), maxAgeMs: 1000 })).rejects.toThrow('too large');
  await expect(s.create({ ...alice('ok'), owner: 'inst-a', setup: { big: 'x'.repeat(70_000) }, maxAgeMs: 1000 })).rejects.toThrow('too large');
  expect(await s.get(alice('ok'))).toBeUndefined();
});

/**
 * The orphan sweep's claim-and-end script (`SessionRecordStore.endAbandoned`) and one sweep pass
 * (`OrphanSweeper`), against a real redis-server. The script ends a session once, and only when its owner is dead
 * (no heartbeat key) or it was released, nothing wrote its record since it was read, and its deadline (read from
 * the record: last client activity + idle timeout, or max age) has passed. Racing sweepers (separate connections,
 * seeded random timing) end it exactly once; a sweeper racing a client's takeover never ends the session the
 * client took. Attacker: a key holder's 2,000 abandoned sessions cost bounded passes (timed, printed), and other
 * keys' records are untouched.
 */
import { Writable } from 'node:stream';
import { RedisConnection } from '../../src/cluster/redis-connection';
import { SessionRecordStore, type SessionRef } from '../../src/cluster/session-records';
import { OrphanSweeper, type OrphanSweeperOptions } from '../../src/cluster/orphan-sweeper';
import { createLogger } from '../../src/util/logger';
import { emptyUsage as usage0 } from '../../src/services/usage/usage-figures';
import { prng } from '../ops/helpers';
import { redisForFile } from '../helpers/redis-server';

jest.setTimeout(60_000);

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
const file = redisForFile();
let n = 0;
const IDLE = 200;
const quiet = createLogger({ level: 'warn', pretty: false, destination: new Writable({ write: (_c, _e, cb) => cb() }) });

async function store(prefix: string): Promise<{ s: SessionRecordStore; c: RedisConnection }> {
  const c = new RedisConnection({ url: file.server.url, keyPrefix: prefix, downAfterMs: 500, reconnectBackoffMaxMs: 200 });
  file.cleanup(() => c.close());
  c.start();
  expect(await c.waitUntilConnected(5000)).toBe(true);
  const s = new SessionRecordStore({ connection: c, liveness: { heartbeatKey: (id) => c.key('instance', id) }, tombstoneMs: 60_000 });
  return { s, c };
}

const ref = (principal: string, sessionId: string): SessionRef => ({ principal, sessionId });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A live record owned by `owner`, whose client was last active `agoMs` ago. */
async function abandoned(s: SessionRecordStore, r: SessionRef, owner: string, agoMs: number, maxAgeMs = 600_000): Promise<void> {
  const created = await s.create({ ...r, owner, setup: { model: 'm' }, turn: { turnId: 1, lastActivityAt: Date.now() - agoMs }, maxAgeMs });
  expect(created.created).toBe(true);
}

async function read(s: SessionRecordStore, r: SessionRef) {
  const rec = await s.get(r);
  if (!rec) throw new Error(`no record for ${r.sessionId}`);
  return rec;
}

it(`ends a dead owner's session past its idle deadline once: tombstone with the reason, transcript kept, out of every set (seed ${SEED})`, async () => {
  const { s, c } = await store(`os${++n}:`);
  const r = ref('key:alice', 'idle1');
  await abandoned(s, r, 'dead-a', IDLE + 50);
  await s.update(r, { owner: 'dead-a', epoch: 1 }, { transcript: { sessionId: 'idle1', owner: 'key:alice', startedAt: 1, endedAt: null, endReason: null, turns: [], usage: usage0(), overheadUsage: usage0(), droppedTurns: 0 } });
  const rec = await read(s, r);
  const closed = { sessionId: 'idle1', owner: 'key:alice', startedAt: 1, endedAt: Date.now(), endReason: 'idle_timeout', turns: [], usage: usage0(), overheadUsage: usage0(), droppedTurns: 0 };
  expect(await s.endAbandoned(rec, { sweeper: 'sw-1', reason: 'idle_timeout', idleTimeoutMs: IDLE, summary: { model: 'm' }, transcript: closed })).toBe('ended');
  const tomb = await read(s, r);
  expect(tomb).toMatchObject({ status: 'ended', endReason: 'idle_timeout', owner: 'sw-1', epoch: 2, summary: { model: 'm' } });
  expect(tomb.setup).toBeUndefined();
  expect((await s.getTranscript(r))?.endReason).toBe('idle_timeout');
  expect(await s.listByPrincipal('key:alice')).toEqual([]);
  expect(await s.listOwnedBy('dead-a')).toEqual([]);
  // Once: a second end of the same read answers `gone`.
  expect(await s.endAbandoned(rec, { sweeper: 'sw-2', reason: 'idle_timeout', idleTimeoutMs: IDLE })).toBe('gone');
  expect(await c.run((cl) => cl.pttl(c.key('session', Buffer.from('key:alice').toString('base64url'), 'idle1')))).toBeLessThanOrEqual(60_000);
});

it('leaves alone: a deadline not passed (its client may resume), a live owner, a wrong reason, a record written since the read', async () => {
  const { s, c } = await store(`os${++n}:`);
  const fresh = ref('key:alice', 'fresh');
  await abandoned(s, fresh, 'dead-a', 0);
  expect(await s.endAbandoned(await read(s, fresh), { sweeper: 'sw', reason: 'idle_timeout', idleTimeoutMs: IDLE })).toBe('not_due');
  // The sweeper's own clock cannot talk the script into it: the deadline is read from the record.
  expect(await s.endAbandoned(await read(s, fresh), { sweeper: 'sw', reason: 'expired', idleTimeoutMs: IDLE })).toBe('not_due');
  expect((await read(s, fresh)).status).toBe('live');

  const alive = ref('key:alice', 'alive');
  await abandoned(s, alive, 'inst-live', IDLE * 5);
  await c.run((cl) => cl.set(c.key('instance', 'inst-live'), '{}', 'PX', 60_000));
  expect(await s.endAbandoned(await read(s, alive), { sweeper: 'sw', reason: 'idle_timeout', idleTimeoutMs: IDLE })).toBe('owner_alive');

  // A paused owner's late write (same epoch) after the sweeper's read: refused, read again next pass.
  const late = ref('key:alice', 'late');
  await abandoned(s, late, 'dead-b', IDLE * 5);
  const before = await read(s, late);
  await sleep(5);
  expect(await s.update(late, { owner: 'dead-b', epoch: 1 }, { turn: { turnId: 2, lastActivityAt: Date.now() } })).toBe('ok');
  expect(await s.endAbandoned(before, { sweeper: 'sw', reason: 'idle_timeout', idleTimeoutMs: IDLE })).toBe('changed');
  // ...and on the fresh read its new activity keeps it.
  expect(await s.endAbandoned(await read(s, late), { sweeper: 'sw', reason: 'idle_timeout', idleTimeoutMs: IDLE })).toBe('not_due');
  expect((await read(s, late)).status).toBe('live');
});

it('a released session (SIGTERM hand-over, client gone) and one past its max age are ended, with their reasons', async () => {
  const { s } = await store(`os${++n}:`);
  const rel = ref('key:alice', 'released');
  await abandoned(s, rel, 'inst-a', IDLE + 50);
  expect((await s.transfer(rel, { owner: 'inst-a', epoch: 1 }, '')).ok).toBe(true);
  expect(await s.endAbandoned(await read(s, rel), { sweeper: 'sw', reason: 'idle_timeout', idleTimeoutMs: IDLE })).toBe('ended');
  expect(await s.listOwnedBy('')).toEqual([]);

  const old = ref('key:alice', 'old');
  await abandoned(s, old, 'dead-a', 0, 100);
  await sleep(150);
  const rec = await read(s, old);
  expect(rec.status).toBe('expired'); // live in Redis, past its max age
  expect(await s.endAbandoned(rec, { sweeper: 'sw', reason: 'idle_timeout', idleTimeoutMs: 600_000 })).toBe('not_due');
  expect(await s.endAbandoned(rec, { sweeper: 'sw', reason: 'expired', idleTimeoutMs: 600_000 })).toBe('ended');
  expect(await read(s, old)).toMatchObject({ status: 'ended', endReason: 'expired' });
});

it(`racing sweepers end a session exactly once; a sweeper racing a client's takeover never ends the session the client took (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const stores = await Promise.all([0, 1, 2, 3].map(() => store(`os${n + 1}:`)));
  n++;
  for (let round = 0; round < 20; round++) {
    const r = ref('key:alice', `race${round}`);
    await abandoned(stores[0].s, r, 'dead-a', IDLE + 20);
    const rec = await read(stores[0].s, r);
    const withTaker = round % 2 === 1;
    const outcomes = await Promise.all(
      stores.map(async ({ s }, i) => {
        await sleep(rnd() * 5);
        if (withTaker && i === 0) return { i, kind: 'take', ok: (await s.takeOver(r, 'dead-a', 'client-inst')).taken };
        return { i, kind: 'sweep', ok: (await s.endAbandoned(rec, { sweeper: `sw-${i}`, reason: 'idle_timeout', idleTimeoutMs: IDLE })) === 'ended' };
      }),
    );
    const winners = outcomes.filter((o) => o.ok);
    expect({ round, seed: SEED, winners: winners.length }).toEqual({ round, seed: SEED, winners: 1 });
    const after = await read(stores[0].s, r);
    if (winners[0].kind === 'take') expect(after).toMatchObject({ status: 'live', owner: 'client-inst' });
    else expect(after).toMatchObject({ status: 'ended', endReason: 'idle_timeout', owner: `sw-${winners[0].i}` });
  }
});

it(`attacker: 2,000 abandoned sessions of one key cost bounded passes; other keys' records are untouched (seed ${SEED})`, async () => {
  const prefix = `os${++n}:`;
  const { s, c } = await store(prefix);
  const N = 2000;
  // Mallory's 2,000 sessions on an owner that died, all idle past the deadline (created in pipelined batches).
  for (let i = 0; i < N; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) => abandoned(s, ref('key:mallory', `m${i + k}`), 'dead-m', IDLE * 10)));
  }
  // Alice's: one on a live instance (idle past the deadline, but served), one on the dead owner not yet due.
  await c.run((cl) => cl.set(c.key('instance', 'inst-live'), '{}', 'PX', 120_000));
  await abandoned(s, ref('key:alice', 'served'), 'inst-live', IDLE * 10);
  await abandoned(s, ref('key:alice', 'resumable'), 'dead-m', 0, 600_000);
  const lastActivityNow = async () => s.update(ref('key:alice', 'resumable'), { owner: 'dead-m', epoch: 1 }, { turn: { turnId: 1, lastActivityAt: Date.now() } });
  const sweeperOptions: OrphanSweeperOptions = {
    records: s,
    // (No registry view of the dead: the owner sets are found by the bounded SCAN alone, over several passes.)
    membership: { id: 'sw-1', registered: true, isAlive: async (id) => (await c.run((cl) => cl.exists(c.key('instance', id)))) === 1, deadPeers: () => [] },
    idleTimeoutMs: IDLE,
    periodMs: 60_000,
    logger: quiet,
  };
  const sweeper = new OrphanSweeper(sweeperOptions);
  const passes = [];
  let ended = 0;
  while (ended < N && passes.length < 100) {
    await lastActivityNow(); // alice's client keeps "talking": never due
    const p = await sweeper.sweep();
    passes.push(p);
    ended += p.ended;
  }
  const worst = Math.max(...passes.map((p) => p.ms));
  console.log(
    `seed ${SEED}: ${N} abandoned sessions swept in ${passes.length} passes (cap 1000 read / 100 ended per pass); ` +
      `pass times ms ${passes.map((p) => p.ms).join(',')}; worst ${worst} ms; records read per pass <= ${Math.max(...passes.map((p) => p.examined))}`,
  );
  expect(ended).toBe(N);
  expect(passes.every((p) => p.examined <= 1000 && p.ended <= 100)).toBe(true);
  expect((await s.listByPrincipal('key:mallory')).length).toBe(0);
  expect((await s.get(ref('key:mallory', 'm0')))?.endReason).toBe('idle_timeout');
  // Alice's records: untouched, both live, owners unchanged, epoch 1.
  expect(await s.get(ref('key:alice', 'served'))).toMatchObject({ status: 'live', owner: 'inst-live', epoch: 1 });
  expect(await s.get(ref('key:alice', 'resumable'))).toMatchObject({ status: 'live', owner: 'dead-m', epoch: 1 });
  // A pass over 2,000 records that are NOT due (the scan's cost alone) is bounded the same way.
  for (let i = 0; i < N; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) => abandoned(s, ref('key:mallory', `q${i + k}`), 'dead-q', 0)));
  }
  const patient = new OrphanSweeper({ ...sweeperOptions, idleTimeoutMs: 600_000 });
  const cold = [];
  for (let i = 0; i < 6; i++) cold.push(await patient.sweep());
  console.log(`seed ${SEED}: passes over ${N} records not due: ms ${cold.map((p) => p.ms).join(',')}, read ${cold.map((p) => p.examined).join(',')}`);
  expect(cold.every((p) => p.ended === 0 && p.examined <= 1000)).toBe(true);
  expect((await s.listByPrincipal('key:mallory')).length).toBe(N);
  expect(cold.some((p) => p.examined > 0)).toBe(true);
});

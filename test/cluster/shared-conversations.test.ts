/**
 * Issue 15 items 2 and 5, the stores: transcripts and usage in a real redis-server, as every instance reads them.
 * A transcript copy is written under the session record's fence (a deposed owner cannot overwrite the taker's),
 * survives the record's end for the retention time, is bounded in bytes (oldest turns left out, counted) and in
 * count per principal (one key's ended sessions cannot grow past the cap; another key's are untouched); a new
 * session with an old id starts without the old transcript; a foreign principal's id reads as unknown. Usage added
 * by two instances (two connections) is reported summed by either; the Redis keys per principal and day are fixed.
 */
import { RedisConnection } from '../../src/cluster/redis-connection';
import { RedisUsageStore } from '../../src/cluster/redis-usage-store';
import { SessionRecordStore, type SessionRef } from '../../src/cluster/session-records';
import { ClusterTranscriptStore } from '../../src/cluster/cluster-transcript-store';
import { storedTranscriptJson } from '../../src/cluster/stored-transcript';
import { MemoryTranscriptStore, type TranscriptRecord, type TranscriptTurn } from '../../src/services/conversation';
import { emptyUsage } from '../../src/services/usage/usage-figures';
import { dayOf } from '../../src/services/usage/usage-store';
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
  await Promise.all(conns.splice(0).map((c) => c.close()));
  await redis?.close();
});

async function conn(prefix: string): Promise<RedisConnection> {
  const c = new RedisConnection({ url: redis.url, keyPrefix: prefix, downAfterMs: 500, reconnectBackoffMaxMs: 200 });
  conns.push(c);
  c.start();
  expect(await c.waitUntilConnected(5000)).toBe(true);
  return c;
}

async function records(prefix: string, opts: Partial<ConstructorParameters<typeof SessionRecordStore>[0]> = {}) {
  const c = await conn(prefix);
  return { c, s: new SessionRecordStore({ connection: c, liveness: { heartbeatKey: (id) => c.key('instance', id) }, tombstoneMs: 60_000, ...opts }) };
}

function turn(index: number, text: string): TranscriptTurn {
  return { index, kind: 'user', userText: text, replyText: `reply ${index}`, interrupted: false, startedAt: 1, endedAt: 2, usage: null, toolCalls: [], truncated: false };
}

function transcript(ref: SessionRef, turns: TranscriptTurn[]): TranscriptRecord {
  return { sessionId: ref.sessionId, owner: ref.principal, startedAt: 1, endedAt: null, endReason: null, turns, usage: { ...emptyUsage(), totalTokens: 7 }, overheadUsage: emptyUsage(), droppedTurns: 0 };
}

const ref = (principal: string, sessionId: string): SessionRef => ({ principal, sessionId });

it('the transcript is written under the record fence, outlives the record for the retention time, and reads the same from another instance', async () => {
  const prefix = `sc${++n}:`;
  const a = await records(prefix, { transcriptRetentionMs: 30_000 });
  const b = await records(prefix, { transcriptRetentionMs: 30_000 });
  const r = ref('key:alice', 's1');
  const created = await a.s.create({ ...r, owner: 'inst-a', setup: {}, maxAgeMs: 600_000 });
  if (!created.created) throw new Error('not created');
  expect(await a.s.update(r, created.ownership, { transcript: transcript(r, [turn(0, 'one')]) })).toBe('ok');
  expect((await b.s.getTranscript(r))!.turns.map((t) => t.userText)).toEqual(['one']);
  // The live copy lives until the max age plus the retention.
  const key = a.c.key('transcript', Buffer.from('key:alice').toString('base64url'), 's1');
  expect(await a.c.run((cl) => cl.pttl(key))).toBeGreaterThan(600_000 + 30_000 - 5_000);

  // inst-a dies; inst-b takes over; the deposed owner's writes (transcript included) are refused.
  const taken = await b.s.takeOver(r, 'inst-a', 'inst-b');
  if (!taken.taken) throw new Error('not taken');
  expect(await a.s.update(r, created.ownership, { transcript: transcript(r, [turn(0, 'stale')]) })).toBe('not_owner');
  expect(await a.s.end(r, created.ownership, 'client_end', undefined, transcript(r, [turn(0, 'stale')]))).toBe('not_owner');
  expect((await b.s.getTranscript(r))!.turns.map((t) => t.userText)).toEqual(['one']);

  // The taker ends it with the final transcript: kept the retention time, beyond the record's tombstone.
  const final = { ...transcript(r, [turn(0, 'one'), turn(1, 'two')]), endedAt: 3, endReason: 'client_end' };
  expect(await b.s.end(r, taken.ownership, 'client_end', { model: 'm' }, final)).toBe('ok');
  expect(await a.s.getTranscript(r)).toMatchObject({ endedAt: 3, endReason: 'client_end', turns: [{ userText: 'one' }, { userText: 'two' }] });
  const ttl = await a.c.run((cl) => cl.pttl(key));
  expect(ttl).toBeGreaterThan(25_000);
  expect(ttl).toBeLessThanOrEqual(30_000);

  // Another principal asking for the same id: unknown, exactly as an id nobody used.
  expect(await a.s.getTranscript(ref('key:mallory', 's1'))).toBeUndefined();
  expect(await a.s.getTranscript(ref('key:alice', 'never'))).toBeUndefined();

  // A new session with the same id starts without the old transcript.
  const again = await a.s.create({ ...r, owner: 'inst-a', setup: {}, maxAgeMs: 600_000 });
  expect(again.created).toBe(true);
  expect(await b.s.getTranscript(r)).toBeUndefined();
});

it('one key cannot grow Redis past its caps: bytes per transcript (oldest turns out, counted) and ended transcripts per key; other keys untouched', async () => {
  const rnd = prng(SEED);
  const prefix = `sc${++n}:`;
  const { s, c } = await records(prefix, { maxTranscriptBytes: 8 * 1024, maxTranscriptsPerPrincipal: 5 });
  // Bob's one transcript, kept whatever mallory does.
  const bob = ref('key:bob', 'b1');
  const bc = await s.create({ ...bob, owner: 'i', setup: {}, maxAgeMs: 600_000 });
  if (!bc.created) throw new Error('no');
  expect(await s.end(bob, bc.ownership, 'client_end', undefined, transcript(bob, [turn(0, 'bob')]))).toBe('ok');

  for (let i = 0; i < 40; i++) {
    const r = ref('key:mallory', `m${i}`);
    const cr = await s.create({ ...r, owner: 'i', setup: {}, maxAgeMs: 600_000 });
    if (!cr.created) throw new Error(`not created (seed ${SEED})`);
    const turns = Array.from({ length: 20 + Math.floor(rnd() * 40) }, (_, k) => turn(k, 'x'.repeat(200 + Math.floor(rnd() * 800))));
    expect(await s.end(r, cr.ownership, 'client_end', undefined, transcript(r, turns))).toBe('ok');
    const stored = await s.getTranscript(r);
    // Bounded: within the byte cap, newest turns kept, the rest counted as dropped.
    expect(Buffer.byteLength(JSON.stringify(stored))).toBeLessThanOrEqual(8 * 1024);
    expect(stored!.turns.at(-1)!.index).toBe(turns.length - 1);
    expect(stored!.droppedTurns + stored!.turns.length).toBe(turns.length);
  }
  const enc = Buffer.from('key:mallory').toString('base64url');
  const kept = await c.run((cl) => cl.keys(`${prefix}transcript:${enc}:*`));
  expect(kept.sort()).toEqual([35, 36, 37, 38, 39].map((i) => `${prefix}transcript:${enc}:m${i}`).sort());
  expect(await s.getTranscript(bob)).toMatchObject({ turns: [{ userText: 'bob' }] });
});

it('a single huge turn is cut to the byte cap (tail kept, marked truncated)', () => {
  const r = ref('key:a', 's');
  const json = storedTranscriptJson(transcript(r, [turn(0, 'y'.repeat(100_000))]), 8 * 1024);
  expect(Buffer.byteLength(json)).toBeLessThanOrEqual(8 * 1024);
  expect(JSON.parse(json)).toMatchObject({ turns: [{ truncated: true }] });
});

it('the cluster transcript store reads the Redis copy first, its own copy when Redis has none, and 503 (not "unknown") when Redis is down', async () => {
  const prefix = `sc${++n}:`;
  const { s, c } = await records(prefix);
  const local = new MemoryTranscriptStore();
  const store = new ClusterTranscriptStore(s, local);
  const r = ref('key:alice', 'x1');
  await store.put({ ...transcript(r, [turn(0, 'local')]), endedAt: Date.now(), endReason: 'client_end' });
  expect((await store.get('key:alice', 'x1'))!.turns[0].userText).toBe('local');
  const cr = await s.create({ ...r, owner: 'i', setup: {}, maxAgeMs: 600_000 });
  if (!cr.created) throw new Error('no');
  await s.end(r, cr.ownership, 'client_end', undefined, { ...transcript(r, [turn(0, 'shared')]), endedAt: Date.now() });
  expect((await store.get('key:alice', 'x1'))!.turns[0].userText).toBe('shared');
  expect(await store.get('key:alice', 'nope')).toBeUndefined();

  // Redis unreachable: the local copy still answers; an id it does not hold is 503, never "not found".
  const down = new RedisConnection({ url: 'redis://127.0.0.1:1', keyPrefix: prefix, downAfterMs: 0 });
  conns.push(down);
  down.start();
  const offline = new ClusterTranscriptStore(new SessionRecordStore({ connection: down, liveness: { heartbeatKey: (id) => id } }), local);
  expect((await offline.get('key:alice', 'x1'))!.turns[0].userText).toBe('local');
  await expect(offline.get('key:alice', 'nope')).rejects.toMatchObject({ status: 503, code: 'CLUSTER_UNAVAILABLE' });
  void c;
});

it("the local copies are capped per key like Redis's: a transcript Redis dropped for the key's cap is not answered from the local copy either", async () => {
  const prefix = `sc${++n}:`;
  const { s } = await records(prefix, { maxTranscriptsPerPrincipal: 5 });
  const local = new MemoryTranscriptStore({ maxPerOwner: 5 });
  const store = new ClusterTranscriptStore(s, local);
  const bob = ref('key:bob', 'b1');
  for (const r of [bob, ...Array.from({ length: 12 }, (_, i) => ref('key:mallory', `m${i}`))]) {
    const cr = await s.create({ ...r, owner: 'i', setup: {}, maxAgeMs: 600_000 });
    if (!cr.created) throw new Error('no');
    const ended = { ...transcript(r, [turn(0, r.sessionId)]), endedAt: Date.now(), endReason: 'client_end' };
    // As the instance where it ended does it: the Redis copy at the end, then the archive's local copy.
    expect(await s.end(r, cr.ownership, 'client_end', undefined, ended)).toBe('ok');
    await store.put(ended);
  }
  for (let i = 0; i < 12; i++) {
    const got = await store.get('key:mallory', `m${i}`);
    expect([i, got?.turns[0].userText]).toEqual([i, i < 7 ? undefined : `m${i}`]);
  }
  expect((await store.get('key:bob', 'b1'))!.turns[0].userText).toBe('b1');
  expect(local.stats()).toMatchObject({ records: 6, evictions: { per_key: 7 } });
});

it('usage added on two instances is one report on either; a key has one hash per day and no field it can invent', async () => {
  const prefix = `sc${++n}:`;
  const a = new RedisUsageStore({ connection: await conn(prefix) });
  const b = new RedisUsageStore({ connection: await conn(prefix) });
  const today = dayOf(Date.now());
  const tokens = (t: number) => ({ ...emptyUsage(), promptTokens: t, totalTokens: t, reports: 1, promptByModality: { AUDIO: t, 'bad field': 5 } });
  await a.add('key:alice', today, { sessions: 1, tokens: tokens(10), audioInputSeconds: 1.5, turns: 1 });
  await b.add('key:alice', today, { tokens: tokens(32), audioInputSeconds: 2.25, audioOutputSeconds: 1, turns: 2 });
  await b.add('key:bob', today, { sessions: 1, tokens: tokens(1) });
  const ra = await a.report('key:alice', today);
  const rb = await b.report('key:alice', today);
  expect(ra).toEqual(rb);
  expect(ra.today).toMatchObject({ sessions: 1, turns: 3, audioSeconds: { input: 3.75, output: 1 }, tokens: { promptTokens: 42, totalTokens: 42, reports: 2, promptByModality: { AUDIO: 42 } } });
  expect(ra.today.tokens.promptByModality).not.toHaveProperty('bad field');
  expect(ra.total.turns).toBe(3);
  expect((await a.day('key:bob', today)).sessions).toBe(1);
  const c = conns.at(-1)!;
  expect(await c.run((cl) => cl.keys(`${prefix}usage:*`))).toHaveLength(2);
});

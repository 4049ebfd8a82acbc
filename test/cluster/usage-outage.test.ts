/**
 * Issue 15, usage through a Redis outage: what is recorded while Redis is down is held and written when it is back,
 * exactly once. The shared usage store keeps each process's ABSOLUTE totals per key and day (raised to the larger
 * value by a Lua script), so a write that Redis applied but whose reply was lost, sent again, counts once.
 *
 * With a real redis-server: a reply lost after Redis applied the write (then the same flush replayed, twice); a
 * write caught by a hung (SIGSTOPped) Redis and its command timeout; a Redis restarted empty; the attacker's
 * bounds (one key's hash has a fixed set of fields per writer and expires). On real processes: Redis stopped and
 * restarted (empty) mid-session while the model answers turns; `/usage` afterwards equals the emulator's figures.
 */
import request from 'supertest';
import type Redis from 'ioredis';
import { scriptedScenario } from '../../src/emulator';
import { ClusterUnavailableError } from '../../src/cluster/cluster-errors';
import { RedisConnection, type RedisConnectionOptions } from '../../src/cluster/redis-connection';
import { RedisUsageStore } from '../../src/cluster/redis-usage-store';
import { emptyUsage } from '../../src/services/usage/usage-figures';
import { dayOf } from '../../src/services/usage/usage-store';
import { loadRecording } from '../helpers/fixtures';
import { LIVE_AUDIO_API as API } from '../helpers/frontend-client';
import { startCluster, type TestCluster, stopClusterLeavingNone } from '../helpers/cluster';
import { redisForFile } from '../helpers/redis-server';
import { prng } from '../ops/helpers';

jest.setTimeout(180_000);

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
const today = dayOf(Date.now());
const tokens = (t: number, mod = 'AUDIO') => ({ ...emptyUsage(), promptTokens: t, totalTokens: t, reports: 1, promptByModality: { [mod]: t } });

/** A real connection whose next `lose` replies are lost AFTER Redis ran the command (a timeout after the write landed). */
class LosingReplies extends RedisConnection {
  lose = 0;
  constructor(o: RedisConnectionOptions) {
    super(o);
  }
  override async run<T>(fn: (client: Redis) => Promise<T>): Promise<T> {
    const r = await super.run<T>(fn);
    if (this.lose > 0) {
      this.lose--;
      throw new ClusterUnavailableError(1, 'Command timed out (reply lost after the write)');
    }
    return r;
  }
}

describe('the usage store with a real Redis', () => {
  const file = redisForFile();
  let n = 0;
  const open = async <C extends RedisConnection>(make: (o: RedisConnectionOptions) => C, extra: Partial<RedisConnectionOptions> = {}): Promise<C> => {
    const c = make({ url: file.server.url, keyPrefix: `uo${++n}:`, ...extra });
    c.start();
    await c.waitUntilConnected(5000);
    file.cleanup(() => c.close());
    return c;
  };

  it('a flush whose reply was lost after Redis applied it is held, then written again: counted once, and replaying it changes nothing', async () => {
    const conn = await open((o) => new LosingReplies(o));
    const store = new RedisUsageStore({ connection: conn, writer: 'inst-a' });
    file.cleanup(() => store.close());
    conn.lose = 1;
    await store.add('key:alice', today, { sessions: 1, turns: 1, tokens: tokens(10), audioInputSeconds: 1.5 }); // applied, reply lost
    conn.lose = 1;
    await store.add('key:alice', today, { turns: 1, tokens: tokens(5), audioInputSeconds: 0.25 }); // again
    await store.rewriteAll(); // the flush replayed (what a reconnect does)
    await store.rewriteAll();
    const day = await store.day('key:alice', today);
    expect(day).toMatchObject({ sessions: 1, turns: 2, audioSeconds: { input: 1.75, output: 0 }, tokens: { totalTokens: 15, promptTokens: 15, reports: 2, promptByModality: { AUDIO: 15 } } });
    // A second process's totals add up with the first's (a report is the sum over the writers).
    const other = new RedisUsageStore({ connection: await open((o) => new RedisConnection(o), { keyPrefix: `uo${n}:` }), writer: 'inst-b' });
    file.cleanup(() => other.close());
    await other.add('key:alice', today, { sessions: 1, tokens: tokens(7) });
    await other.rewriteAll();
    expect(await store.day('key:alice', today)).toMatchObject({ sessions: 2, turns: 2, tokens: { totalTokens: 22, reports: 3 } });
  });

  it(`a write caught by a hung Redis (SIGSTOP) and its command timeout, applied or not, is counted once when Redis answers again (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const conn = await open((o) => new RedisConnection(o), { commandTimeoutMs: 150, timeoutsBeforeReconnect: 1, reconnectBackoffMaxMs: 200 });
    const reader = await open((o) => new RedisConnection(o), { keyPrefix: `uo${n}:` });
    const store = new RedisUsageStore({ connection: conn, writer: 'inst-a' });
    file.cleanup(() => store.close());
    let expected = 0;
    for (let round = 0; round < 3; round++) {
      const t = 1 + Math.floor(rnd() * 100);
      expected += t;
      await store.add('key:alice', today, { sessions: 1, tokens: tokens(t) });
      const hung = 1 + Math.floor(rnd() * 50);
      expected += hung;
      file.server.pause();
      try {
        await store.add('key:alice', today, { tokens: tokens(hung) }); // sent, no answer: times out, held
      } finally {
        await new Promise((r) => setTimeout(r, 200 + rnd() * 200));
        file.server.resume();
      }
      // Redis runs what was in its socket buffer; the store rewrites its totals once it is connected again.
      await conn.waitUntilConnected(5000);
      const deadline = Date.now() + 5000;
      while ((await store.day('key:alice', today).catch(() => undefined))?.tokens.totalTokens !== expected && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const raw = await reader.run((cl) => cl.hgetall(reader.key('usage', Buffer.from('key:alice').toString('base64url'), today)));
      expect({ round, total: (await store.day('key:alice', today)).tokens.totalTokens, fields: Object.keys(raw).length }).toEqual({ round, total: expected, fields: 5 });
    }
    expect((await store.day('key:alice', today)).sessions).toBe(3);
  });

  it('a Redis restarted empty gets the totals of the live processes back whole', async () => {
    const conn = await open((o) => new RedisConnection(o), { reconnectBackoffMaxMs: 200 });
    const store = new RedisUsageStore({ connection: conn, writer: 'inst-a' });
    file.cleanup(() => store.close());
    await store.add('key:alice', today, { sessions: 1, turns: 3, tokens: tokens(40), audioOutputSeconds: 2 });
    await file.server.restart();
    await store.add('key:alice', today, { tokens: tokens(2) }).catch(() => undefined); // while down or reconnecting: held
    await conn.waitUntilConnected(10_000);
    const deadline = Date.now() + 5000;
    while ((await store.day('key:alice', today).catch(() => undefined))?.tokens.totalTokens !== 42 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await store.day('key:alice', today)).toMatchObject({ sessions: 1, turns: 3, audioSeconds: { output: 2 }, tokens: { totalTokens: 42, reports: 2 } });
  });

  it("attacker: one key holder's usage is one expiring hash per day with a fixed set of fields per writer, whatever it sends", async () => {
    const conn = await open((o) => new RedisConnection(o));
    const store = new RedisUsageStore({ connection: conn, writer: 'inst-a', keepDays: 31 });
    file.cleanup(() => store.close());
    for (let i = 0; i < 300; i++) {
      await store.add('key:mallory', today, {
        turns: 1,
        sessions: 1,
        audioInputSeconds: 0.1,
        tokens: { ...tokens(1, i % 2 ? 'AUDIO' : `x${i}`), responseByModality: { [`MOD_${i}`.slice(0, 40)]: 1, TEXT: 1 } },
      });
    }
    const keys = await conn.run((cl) => cl.keys(`${conn.keyPrefix}*`));
    expect(keys).toHaveLength(1);
    const fields = await conn.run((cl) => cl.hlen(keys[0]));
    const ttl = await conn.run((cl) => cl.pttl(keys[0]));
    console.log(`300 additions with invented modality names: ${keys.length} key, ${fields} fields, TTL ${(ttl / 86_400_000).toFixed(2)} days`);
    // One writer's fixed set: the token counters sent (3 here), the modality names that pass the check (AUDIO, TEXT;
    // the lower-case and numbered ones are refused), audio in, sessions, turns.
    expect(fields).toBe(8);
    expect(ttl).toBeGreaterThan(31 * 86_400_000);
    expect(ttl).toBeLessThanOrEqual(32 * 86_400_000);
    expect(await store.day('key:mallory', today)).toMatchObject({ turns: 300, sessions: 300 });
    expect((await store.day('key:mallory', today)).tokens.promptByModality).toEqual({ AUDIO: 150 });
  });
});

describe('Redis stopped and restarted (empty) mid-session, on real processes', () => {
  const rec = loadRecording('chromium-long-22s');
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({
      instances: 2,
      nginx: false,
      env: { LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '300', LIVE_AUDIO_MISSED_HEARTBEATS: '3', LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '1000' },
    });
    cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Right.' } }));
  }, 180_000);
  afterAll(async () => {
    if (cluster) expect(await stopClusterLeavingNone(cluster)).toEqual([]);
  });

  it(`/usage afterwards equals the emulator's figures: not more, not less (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const [a, b] = cluster.instances.map((i) => i.advertiseUrl);
    const headers = { 'Content-Type': 'application/json', 'X-API-Key': cluster.keys.alice };
    const sessionId = `usage_outage_${SEED}`;
    const connsBefore = cluster.emulator.connections.length;
    expect((await request(a).post(`${API}/session/start`).set(headers).send({ session_id: sessionId, response_modality: 'text' })).status).toBe(200);
    const upstream = () => cluster.emulator.connections[connsBefore];
    const post = (i: number) => request(a).post(`${API}/transcribe`).set(headers).send({ session_id: sessionId, audio_data: rec.chunks[i].toString('base64'), format: 'webm' });
    const status = async () => (await request(a).get(`${API}/session/${sessionId}/status`).set(headers)).body.data;
    const speak = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        expect((await post(i)).status).toBe(200);
        await new Promise((r) => setTimeout(r, 100 + rnd() * 100));
      }
    };
    const turnAnswered = async (turns: number) => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !(upstream().turns >= turns && (await status()).usage?.tokens?.reports === upstream().usage.messages)) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect({ turns: upstream().turns >= turns, reports: (await status()).usage.tokens.reports }).toEqual({ turns: true, reports: upstream().usage.messages });
    };

    // A turn with Redis up; Redis stopped; a turn answered (its usage recorded) while it is down.
    await speak(0, 7);
    await turnAnswered(1);
    await cluster.redis.stop();
    await speak(7, 14);
    await turnAnswered(2);
    const down = await request(b).get(`${API}/usage`).set(headers);
    expect({ status: down.status, code: down.body.code }).toEqual({ status: 503, code: 'CLUSTER_UNAVAILABLE' });
    // Back, empty (no persistence); one more turn; the client ends the session.
    await cluster.redis.restart();
    const t0 = Date.now();
    while ((await request(a).get('/ready')).body.cluster?.redis?.state !== 'connected' && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    await speak(14, rec.chunks.length);
    await turnAnswered(3);
    expect((await request(a).post(`${API}/session/end`).set(headers).send({ session_id: sessionId })).status).toBe(200);

    const e = upstream();
    expect(cluster.emulator.connections.length).toBe(connsBefore + 1); // one upstream: the figures are its
    const expected = { turns: e.turns, sessions: 1, tokens: { totalTokens: e.usage.totalTokenCount, promptTokens: e.usage.promptTokenCount, responseTokens: e.usage.responseTokenCount, reports: e.usage.messages } };
    // (The owner's last meter writes follow the end by moments: wait for the turns, tokens and audio to be in.)
    const deadline = Date.now() + 10_000;
    let today: { turns: number; sessions: number; tokens: { totalTokens: number }; audioSeconds: { input: number } } | undefined;
    for (;;) {
      today = (await request(b).get(`${API}/usage`).set(headers)).body.data?.today;
      const audioIn = today !== undefined && today.audioSeconds.input >= e.audioBytes / 32_000 - 0.05;
      if ((today?.turns === expected.turns && today.tokens.totalTokens >= expected.tokens.totalTokens && audioIn) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`seed ${SEED}: /usage today ${JSON.stringify(today)} vs the emulator's ${JSON.stringify(expected)} (audio ${e.audioBytes / 32_000} s in)`);
    expect(today).toMatchObject(expected);
    expect(today!.audioSeconds.input).toBeCloseTo(e.audioBytes / 32_000, 1);
    // Another key's usage: nothing of alice's.
    expect((await request(b).get(`${API}/usage`).set({ 'X-API-Key': cluster.keys.bob })).body.data.today).toMatchObject({ sessions: 0, turns: 0, tokens: { totalTokens: 0 } });
  });
});

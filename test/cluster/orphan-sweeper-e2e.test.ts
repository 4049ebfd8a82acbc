/**
 * Issue 15, sessions nobody comes back for, on real processes: a real redis-server, three spawned instances, the
 * Gemini Live emulator and a real webhook receiver verifying every signature. Without the sweep such a session
 * would just expire in Redis: no `session.ended`, no archived transcript, no ended status.
 *
 * 1. kill -9 of the owner of two sessions. The client of one stays silent: a surviving instance (two survive, both
 *    sweep) ends it `idle_timeout` shortly after its ORIGINAL idle deadline (last client activity in the record +
 *    the idle timeout; tolerance below), with exactly one signed `session.ended` whose usage equals the emulator's
 *    figures, status `ended` on every surviving instance and the transcript readable there. The client of the other
 *    resumes (a chunk on another instance) shortly before its deadline: it keeps its session (no end, no webhook).
 * 2. SIGTERM of an owner (hand-over: the record is released), the client never comes back: the same end, by the
 *    instance that is left.
 * 3. Attacker: one key's 2,000 abandoned sessions (records of a dead instance, written straight to Redis as its
 *    sessions would have left them): the spawned instance sweeps them in bounded passes (read from its logs) while
 *    /health keeps answering (latency printed); another key's records, served or still resumable, are untouched.
 */
import { loadavg } from 'node:os';
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import type { StoredTurn } from '../../src/cluster/cluster-sessions';
import { loadRecording } from '../helpers/fixtures';
import { LIVE_AUDIO_API as API } from '../helpers/frontend-client';
import { clusterWithWebhooksForFile, FAST_HEARTBEATS, sessionEndedOf, until as untilDefined, type ClusterInstance } from '../helpers/cluster';
import { prng } from '../ops/helpers';
import { probeHealth } from '../helpers/spawned-server';

jest.setTimeout(240_000);

const rec = loadRecording('chromium-long-22s');
const SECRET = 'whsec-orphan-sweeper-0123456789abcdef';
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
const REPLY = 'Heard you.';
// Long enough that the first session cannot idle out on its live owner while the second one speaks on a loaded CI
// machine (a turn, then its usage in the record: CI once took over 10 s for that, and the owner ended it first).
const IDLE_MS = 20_000;
const SWEEP_MS = 1_000;
/** The heartbeat expiry of FAST_HEARTBEATS (300 ms × 3). */
const DEAD_AFTER_MS = 900;
/**
 * How late after the idle deadline the sweep may end a session: one sweep period (jittered up to +25 %), the
 * owner's heartbeat expiry, and 1.5 s for the pass itself on a loaded 2-core machine (Redis round trips, timers).
 */
const LATE_MS = SWEEP_MS * 1.25 + DEAD_AFTER_MS + 1_500;

const file = clusterWithWebhooksForFile(SECRET, {
  instances: 3,
  nginx: false,
  env: {
    ...FAST_HEARTBEATS,
    LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '1000',
    LIVE_AUDIO_IDLE_TIMEOUT_MS: String(IDLE_MS),
    LIVE_AUDIO_CLUSTER_SWEEP_INTERVAL_MS: String(SWEEP_MS),
  },
});
const { cluster } = file;

beforeAll(() => cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } })));

const until = <T>(f: () => Promise<T | undefined> | T | undefined, ms: number, what: string) => untilDefined(f, ms, `${what} (seed ${SEED})`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alice = () => ({ 'Content-Type': 'application/json', 'X-API-Key': cluster.keys.alice });
const ref = (sessionId: string) => ({ principal: 'key:alice', sessionId });

interface EndedEvent {
  type: string;
  data: {
    session_id: string;
    reason: string;
    started_at: string;
    ended_at: string;
    usage: { totalTokens: number; promptTokens: number; responseTokens: number; reports: number };
    transcript: { turns: { replyText: string; endedAt: number | null }[] };
  };
}
const hooksOf = (sessionId: string) => sessionEndedOf<EndedEvent>(file.receiver, sessionId);

const post = (inst: ClusterInstance, sessionId: string, i: number) =>
  request(inst.advertiseUrl).post(`${API}/transcribe`).set(alice()).send({ session_id: sessionId, audio_data: rec.chunks[i].toString('base64'), format: 'webm' });

/**
 * Starts a session on `owner`, speaks 8 chunks (jittered gaps) until the model answered a turn and the owner stored
 * the emulator's usage figures in the record. Answers the emulator connection of the session.
 */
async function speak(owner: ClusterInstance, sessionId: string, rnd: () => number) {
  const before = cluster.emulator.connections.length;
  expect((await request(owner.advertiseUrl).post(`${API}/session/start`).set(alice()).send({ session_id: sessionId, response_modality: 'text' })).status).toBe(200);
  for (let i = 0; i < 8; i++) {
    expect((await post(owner, sessionId, i)).status).toBe(200);
    await sleep(50 + rnd() * 100);
  }
  const conn = () => cluster.emulator.connections[before];
  await until(() => (conn()?.turns >= 1 ? true : undefined), 20_000, `a turn of ${sessionId}`);
  await until(async () => {
    const r = await file.records.get(ref(sessionId));
    const turn = r?.turn as StoredTurn | undefined;
    const t = await file.records.getTranscript(ref(sessionId));
    return turn?.usage?.tokens.reports === conn().usage.messages && t?.turns.some((x) => x.replyText.includes(REPLY)) ? true : undefined;
  }, 10_000, `the usage and transcript of ${sessionId} in the record`);
  return conn();
}

/** The session's idle deadline as its record has it (the client's last activity + the idle timeout). */
async function idleDeadline(sessionId: string): Promise<number> {
  const r = (await file.records.get(ref(sessionId)))!;
  return ((r.turn as StoredTurn).lastActivityAt ?? r.createdAt) + IDLE_MS;
}

/** Checks the sweep's end of `sessionId`: one delivery, its timing, usage, and the status and transcript everywhere. */
async function expectSweptOnce(sessionId: string, deadline: number, conn: { usage: { messages: number; promptTokenCount: number; responseTokenCount: number; totalTokenCount: number } }, survivors: ClusterInstance[]) {
  await until(() => (hooksOf(sessionId).length > 0 ? true : undefined), IDLE_MS + 15_000, `the session.ended of ${sessionId}`);
  await sleep(SWEEP_MS * 3); // every survivor swept again meanwhile: still one delivery
  expect(file.receiver.received.filter((r) => !r.verified)).toEqual([]);
  const hooks = hooksOf(sessionId);
  const endedAt = Date.parse(hooks[0].data.ended_at);
  console.log(
    `seed ${SEED}: ${sessionId}: ${hooks.length} session.ended (${hooks.map((h) => h.data.reason).join(', ')}), ${endedAt - deadline} ms after its idle deadline ` +
      `(tolerance ${LATE_MS} ms); usage ${JSON.stringify(hooks[0].data.usage)} vs the emulator's ${JSON.stringify(conn.usage)}`,
  );
  expect(hooks).toHaveLength(1);
  expect(hooks[0].data.reason).toBe('idle_timeout');
  expect(endedAt).toBeGreaterThanOrEqual(deadline);
  expect(endedAt - deadline).toBeLessThanOrEqual(LATE_MS);
  expect(hooks[0].data.usage).toMatchObject({ totalTokens: conn.usage.totalTokenCount, promptTokens: conn.usage.promptTokenCount, responseTokens: conn.usage.responseTokenCount, reports: conn.usage.messages });
  expect(hooks[0].data.transcript.turns.some((t) => t.replyText.includes(REPLY))).toBe(true);
  const tomb = (await file.records.get(ref(sessionId)))!;
  expect(tomb).toMatchObject({ status: 'ended', endReason: 'idle_timeout' });
  expect(survivors.map((s) => s.id)).toContain(tomb.owner);
  const views = await Promise.all(
    survivors.map(async (i) => ({
      status: (await request(i.advertiseUrl).get(`${API}/session/${sessionId}/status`).set(alice())).body,
      transcript: (await request(i.advertiseUrl).get(`${API}/session/${sessionId}/transcript`).set(alice())).body,
    })),
  );
  for (const v of views) {
    expect(v).toEqual(views[0]);
    expect(v.status.data).toMatchObject({ status: 'ended', endReason: 'idle_timeout' });
    expect(v.status.data.usage.tokens.totalTokens).toBe(conn.usage.totalTokenCount);
    const turns = v.transcript.data.turns as { replyText: string; endedAt: number | null }[];
    expect(turns.some((t) => t.replyText.includes(REPLY))).toBe(true);
    expect(turns.every((t) => t.endedAt !== null)).toBe(true);
  }
}

it(`kill -9 of the owner: the silent client's session ends idle_timeout once, shortly after its deadline; the one that resumes keeps it (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const [owner, second, third] = cluster.instances;
  const silent = `orphan_silent_${SEED}`;
  const back = `orphan_back_${SEED}`;
  const connSilent = await speak(owner, silent, rnd);
  await speak(owner, back, rnd);
  for (const id of [silent, back]) expect(await file.records.get(ref(id))).toMatchObject({ status: 'live', owner: owner.id });
  owner.server.child.kill('SIGKILL');
  await owner.server.exited;
  const [deadlineSilent, deadlineBack] = [await idleDeadline(silent), await idleDeadline(back)];

  // The returning client posts its next chunk on another instance 1-2.5 s before its deadline: a takeover, its session goes on.
  await sleep(Math.max(0, deadlineBack - Date.now() - 1_000 - rnd() * 1_500));
  expect(Date.now()).toBeLessThan(deadlineBack);
  const resumed = await post(second, back, 8);
  expect(resumed.status).toBe(200);

  await expectSweptOnce(silent, deadlineSilent, connSilent, [second, third]);

  // Past the returning session's original deadline and the tolerance, it is live on `second`: nothing ended it.
  await sleep(Math.max(0, deadlineBack + LATE_MS + SWEEP_MS - Date.now()));
  expect(hooksOf(back)).toEqual([]);
  expect(await file.records.get(ref(back))).toMatchObject({ status: 'live', owner: second.id });
  const end = await request(second.advertiseUrl).post(`${API}/session/end`).set(alice()).send({ session_id: back });
  expect(end.body.data).toMatchObject({ sessionId: back, status: 'ended', reason: 'client_end' });
  await until(() => (hooksOf(back).length > 0 ? true : undefined), 10_000, `the session.ended of ${back}`);
  expect(hooksOf(back).map((h) => h.data.reason)).toEqual(['client_end']);
});

it(`SIGTERM hand-over, the client never comes back: the instance left ends it idle_timeout once (seed ${SEED})`, async () => {
  const rnd = prng(SEED + 1);
  const [, owner, heir] = cluster.instances;
  const sessionId = `orphan_handed_${SEED}`;
  const conn = await speak(owner, sessionId, rnd);
  await owner.server.stop(30_000);
  expect((await owner.server.exited).code).toBe(0);
  expect(await file.records.get(ref(sessionId))).toMatchObject({ status: 'live', owner: '' });
  expect(hooksOf(sessionId)).toEqual([]); // handed over, not ended
  await expectSweptOnce(sessionId, await idleDeadline(sessionId), conn, [heir]);
});

it(`attacker: one key's 2,000 abandoned sessions are swept in bounded passes; another key's records are untouched (seed ${SEED})`, async () => {
  const heir = cluster.instances[2];
  const bob = { 'Content-Type': 'application/json', 'X-API-Key': cluster.keys.bob };
  // Bob's session served by the heir (alive), and one of his on the dead instance whose client is still active.
  const served = `bob_served_${SEED}`;
  expect((await request(heir.advertiseUrl).post(`${API}/session/start`).set(bob).send({ session_id: served, response_modality: 'text' })).status).toBe(200);
  const setup = (await file.records.get({ principal: 'key:bob', sessionId: served }))!.setup as { owner: { id: string } };
  const N = 2000;
  // /health on the heir before the attack (the machine's own load), for comparison.
  const baseline = probeHealth(heir.advertiseUrl, 50);
  await sleep(3_000);
  const calm = await baseline.stop();
  const logsBefore = heir.server.logLines().length;
  const mallory = { ...setup, owner: { ...setup.owner, id: 'key:mallory' } };
  const t0 = Date.now();
  for (let i = 0; i < N; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, N - i) }, (_, k) =>
        file.records.create({ principal: 'key:mallory', sessionId: `m${i + k}`, owner: 'ghost-1', setup: mallory, turn: { turnId: 0, lastActivityAt: t0 - IDLE_MS - 1_000 }, maxAgeMs: 600_000 }),
      ),
    );
  }
  const resumable = { principal: 'key:bob', sessionId: `bob_resumable_${SEED}` };
  await file.records.create({ ...resumable, owner: 'ghost-1', setup: { ...setup }, turn: { turnId: 0, lastActivityAt: Date.now() + 60_000 }, maxAgeMs: 600_000 });
  // Bob's client keeps talking (a chunk every 2 s) while the sweep runs.
  let talking = true;
  const talk = (async () => {
    for (let i = 0; talking && i < rec.chunks.length; i++) {
      const r = await request(heir.advertiseUrl).post(`${API}/transcribe`).set(bob).send({ session_id: served, audio_data: rec.chunks[i].toString('base64'), format: 'webm' });
      expect(r.status).toBe(200);
      await sleep(2_000);
    }
  })();
  const probe = probeHealth(heir.advertiseUrl, 50);
  await until(async () => ((await file.records.listByPrincipal('key:mallory')).length === 0 ? true : undefined), 90_000, `the ${N} abandoned sessions swept`);
  const sweptMs = Date.now() - t0;
  const health = await probe.stop();
  talking = false;
  await talk;
  const passes = heir.server
    .logLines()
    .slice(logsBefore)
    .filter((l) => l.msg === 'sweep: abandoned sessions ended') as unknown as { examined: number; ended: number; ms: number }[];
  console.log(
    `seed ${SEED}: ${N} abandoned sessions swept by one instance in ${sweptMs} ms over ${passes.length} passes ` +
      `(pass ms ${passes.map((p) => p.ms).join(',')}; read per pass <= ${Math.max(...passes.map((p) => p.examined))}); ` +
      `/health during it: ${health.samples.length} probes, p99 ${health.p99Ms.toFixed(1)} ms, max ${health.maxMs.toFixed(1)} ms, failures ${health.failures} ` +
      `(before it: p99 ${calm.p99Ms.toFixed(1)} ms, max ${calm.maxMs.toFixed(1)} ms; load average ${loadavg()[0].toFixed(1)}); ` +
      `${file.receiver.received.length} webhook deliveries received in all`,
  );
  expect(passes.reduce((a, p) => a + p.ended, 0)).toBe(N);
  expect(passes.every((p) => p.examined <= 1000 && p.ended <= 100)).toBe(true);
  expect(health.failures).toBe(0);
  expect(await file.records.get({ principal: 'key:mallory', sessionId: 'm0' })).toMatchObject({ status: 'ended', endReason: 'idle_timeout' });
  // Bob's records: untouched.
  expect(await file.records.get({ principal: 'key:bob', sessionId: served })).toMatchObject({ status: 'live', owner: heir.id, epoch: 1 });
  expect(await file.records.get(resumable)).toMatchObject({ status: 'live', owner: 'ghost-1', epoch: 1 });
  expect((await request(heir.advertiseUrl).get(`${API}/session/${served}/status`).set(bob)).body.data).toMatchObject({ status: 'active' });
});

/**
 * Issue 15, rolling deploy and webhooks, on real processes (a real redis-server, two spawned instances, a real
 * webhook receiver verifying every signature). The owner of a REST session gets SIGTERM mid-session and hands the
 * session over; the frontend's next chunks take it over on the other instance, where the client ends it.
 *
 * Exactly one `session.ended` per session, sent when the session really ends (none from the instance that handed
 * it over), dated from the original start, with the usage of both owners: the tokens equal the sums of every
 * `usageMetadata` the emulator sent on the session's two upstream connections; the key's `/usage` adds up the same.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import type { StoredTurn } from '../../src/cluster/cluster-sessions';
import { loadRecording } from '../helpers/fixtures';
import { LIVE_AUDIO_API as API } from '../helpers/frontend-client';
import { clusterWithWebhooksForFile, FAST_HEARTBEATS, sessionEndedOf, until as untilDefined } from '../helpers/cluster';
import { prng } from '../ops/helpers';

jest.setTimeout(180_000);

const rec = loadRecording('chromium-long-22s');
const SECRET = 'whsec-handover-0123456789abcdef';
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);

const file = clusterWithWebhooksForFile(SECRET, { instances: 2, nginx: false, env: { ...FAST_HEARTBEATS, LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '1000' } });
const { cluster } = file;

beforeAll(() => cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Understood.' } })));

const until = <T>(f: () => Promise<T | undefined> | T | undefined, ms: number, what: string) => untilDefined(f, ms, `${what} (seed ${SEED})`);

interface EndedEvent {
  type: string;
  data: { session_id: string; reason: string; started_at: string; usage: { totalTokens: number; promptTokens: number; responseTokens: number; reports: number } };
}

it(`SIGTERM of the owner mid-session, ended on the new owner: one session.ended, with the usage of both owners (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const [owner, heir] = cluster.instances;
  const headers = { 'Content-Type': 'application/json', 'X-API-Key': cluster.keys.alice };
  const sessionId = `handover_hook_${SEED}`;
  const ref = { principal: 'key:alice', sessionId };
  const connsBefore = cluster.emulator.connections.length;
  expect((await request(owner.advertiseUrl).post(`${API}/session/start`).set(headers).send({ session_id: sessionId, response_modality: 'text' })).status).toBe(200);
  const created = (await file.records.get(ref))!;
  const post = (url: string, i: number) =>
    request(url).post(`${API}/transcribe`).set(headers).send({ session_id: sessionId, audio_data: rec.chunks[i].toString('base64'), format: 'webm' });

  // Some speech on the owner (jittered gaps), until the model answered a turn and the owner stored its usage.
  const SPLIT = 6 + Math.floor(rnd() * 5);
  for (let i = 0; i < SPLIT; i++) {
    expect((await post(owner.advertiseUrl, i)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 150 + rnd() * 100));
  }
  const first = () => cluster.emulator.connections[connsBefore];
  await until(() => (first().turns >= 1 ? true : undefined), 20_000, 'a turn on the first owner');
  await until(async () => {
    const turn = (await file.records.get(ref))?.turn as StoredTurn | undefined;
    return turn?.usage?.tokens.reports === first().usage.messages ? true : undefined;
  }, 10_000, "the first owner's usage in the record");

  // Rolling deploy: SIGTERM; the session is handed over (released for any instance), the process exits cleanly.
  await owner.server.stop(30_000);
  expect((await owner.server.exited).code).toBe(0);
  const hooksOf = () => sessionEndedOf<EndedEvent>(file.receiver, sessionId);
  expect(hooksOf()).toEqual([]); // the instance that handed it over sent nothing: the session did not end
  expect((await file.records.get(ref))!).toMatchObject({ status: 'live', owner: '' });

  // The frontend goes on: the next chunks take it over on the heir; then the client ends it there.
  for (let i = SPLIT; i < rec.chunks.length; i++) {
    expect((await post(heir.advertiseUrl, i)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 150 + rnd() * 100));
  }
  const conns = () => cluster.emulator.connections.slice(connsBefore);
  await until(() => (conns().length === 2 && conns()[1].turns >= 1 ? true : undefined), 20_000, 'a turn on the heir');
  expect(conns()[1].resumedFrom).toBeDefined();
  const emulator = () => {
    const sum = { messages: 0, promptTokenCount: 0, responseTokenCount: 0, totalTokenCount: 0 };
    for (const c of conns()) for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += c.usage[k];
    return sum;
  };
  await until(async () => {
    const st = await request(heir.advertiseUrl).get(`${API}/session/${sessionId}/status`).set(headers);
    return st.body.data?.usage?.tokens?.reports === emulator().messages ? true : undefined;
  }, 10_000, 'every usage report on the heir');
  const end = await request(heir.advertiseUrl).post(`${API}/session/end`).set(headers).send({ session_id: sessionId });
  expect(end.body.data).toMatchObject({ sessionId, status: 'ended', reason: 'client_end' });

  // One delivery, from the heir, when it ended, with both owners' usage.
  await until(() => (hooksOf().length > 0 ? true : undefined), 15_000, 'the session.ended webhook');
  await new Promise((r) => setTimeout(r, 1000));
  expect(file.receiver.received.filter((r) => !r.verified)).toEqual([]);
  const hooks = hooksOf();
  const e = emulator();
  console.log(
    `seed ${SEED}: handed over after chunk ${SPLIT}; ${hooks.length} session.ended (${hooks.map((h) => h.data.reason).join(', ')}); ` +
      `usage ${JSON.stringify(hooks[0]?.data.usage)} vs the emulator's ${JSON.stringify(e)} over ${conns().length} connections`,
  );
  expect(hooks).toHaveLength(1);
  expect(hooks[0].data).toMatchObject({ reason: 'client_end', started_at: new Date(created.createdAt).toISOString() });
  expect(hooks[0].data.usage).toMatchObject({ totalTokens: e.totalTokenCount, promptTokens: e.promptTokenCount, responseTokens: e.responseTokenCount, reports: e.messages });
  // Each connection contributed (the sum is over both owners, not the heir's alone).
  expect(conns().every((c) => c.usage.totalTokenCount > 0)).toBe(true);

  // The key's usage today (this key used nothing else): the same tokens, the session counted once.
  const usage = await until(async () => {
    const u = await request(heir.advertiseUrl).get(`${API}/usage`).set(headers);
    return u.body.data?.today?.tokens?.totalTokens === e.totalTokenCount ? u.body.data : undefined;
  }, 10_000, "the key's usage to add up").catch(async (err: Error) => {
    const u = await request(heir.advertiseUrl).get(`${API}/usage`).set(headers);
    throw new Error(`${err.message}: ${JSON.stringify(u.body.data?.today)} vs the emulator's ${JSON.stringify(e)}`);
  });
  expect(usage.today).toMatchObject({ sessions: 1, tokens: { totalTokens: e.totalTokenCount, promptTokens: e.promptTokenCount, reports: e.messages } });
});

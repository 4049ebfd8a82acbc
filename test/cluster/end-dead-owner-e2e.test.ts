/**
 * Issue 15, ending a dead owner's session without a takeover, for real: a real redis-server, three spawned
 * instances, a real webhook receiver. The owner of two sessions is killed (SIGKILL) after each completed a turn.
 * Another key's `POST /session/end` for the same id reads as an unknown id and ends nothing. Alice's
 * `POST /session/end` on another instance ends the first session from its record: no upstream connection is
 * opened (the emulator counts them), the tombstone answers `ended` with the usage the owner recorded on every
 * instance, the transcript (turns before the kill, closed) reads the same everywhere, the signed `session.ended`
 * webhook is delivered once, and a second end answers `alreadyEnded`. A WebSocket `end_session` naming the second
 * session, on a new socket to yet another instance, ends it the same way.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { LIVE_AUDIO_API as API } from '../helpers/frontend-client';
import { clusterWithWebhooksForFile, FAST_HEARTBEATS, sessionEndedOf, until as untilDefined } from '../helpers/cluster';
import { prng } from '../ops/helpers';
import { connect, wsUrl } from '../helpers/ws-test-client';

jest.setTimeout(120_000);

const rec = loadRecording('chromium-long-22s');
const REPLY = 'Noted.';
const SECRET = 'whsec-cluster-end-0123456789abcdef';
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);

const file = clusterWithWebhooksForFile(SECRET, { instances: 3, nginx: false, env: { ...FAST_HEARTBEATS, LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '1000' } });
const { cluster } = file;

beforeAll(() => cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } })));

const until = <T>(f: () => Promise<T | undefined>, ms: number, what: string) => untilDefined(f, ms, `${what} (seed ${SEED})`);

it(`a dead owner's session is ended from its record on any instance, over REST and WebSocket, without an upstream (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const [owner, other, third] = cluster.instances;
  const alice = { 'Content-Type': 'application/json', 'X-API-Key': cluster.keys.alice };
  const ids = [`end_rest_${SEED}`, `end_ws_${SEED}`];
  // Both sessions start on `owner` and each completes a turn there (chunks posted with jittered gaps).
  for (const id of ids) {
    expect((await request(owner.advertiseUrl).post(`${API}/session/start`).set(alice).send({ session_id: id, response_modality: 'text' })).status).toBe(200);
    for (let i = 0; i < 8; i++) {
      const r = await request(owner.advertiseUrl).post(`${API}/transcribe`).set(alice).send({ session_id: id, audio_data: rec.chunks[i].toString('base64'), format: 'webm' });
      expect(r.status).toBe(200);
      await new Promise((res) => setTimeout(res, 50 + rnd() * 100));
    }
    await until(async () => ((await file.records.getTranscript({ principal: 'key:alice', sessionId: id }))?.turns.some((t) => t.replyText.includes(REPLY) && t.endedAt !== null) ? true : undefined), 20_000, `a stored turn of ${id}`);
  }
  owner.server.child.kill('SIGKILL');
  await owner.server.exited;
  const conns = cluster.emulator.connections.length;

  // Bob ending alice's session id: exactly an unknown id, and nothing ends (wait until the owner counts as dead).
  await until(async () => ((await file.redis.run((cl) => cl.exists(file.redis.key('instance', owner.id)))) === 0 ? true : undefined), 5000, 'the owner to count as dead');
  const bob = await request(other.advertiseUrl).post(`${API}/session/end`).set({ 'X-API-Key': cluster.keys.bob }).send({ session_id: ids[0] });
  const bobNever = await request(other.advertiseUrl).post(`${API}/session/end`).set({ 'X-API-Key': cluster.keys.bob }).send({ session_id: `never_${SEED}` });
  expect(bob.status).toBe(bobNever.status);
  expect(bob.body.data).toEqual({ ...bobNever.body.data, sessionId: ids[0] });
  expect((await file.records.get({ principal: 'key:alice', sessionId: ids[0] }))!.status).toBe('live');

  // Alice ends it on another instance: ended from the record, no upstream opened.
  const end = await request(other.advertiseUrl).post(`${API}/session/end`).set(alice).send({ session_id: ids[0] });
  expect(end.status).toBe(200);
  expect(end.body.data).toMatchObject({ sessionId: ids[0], status: 'ended', reason: 'client_end' });
  expect(end.body.data.alreadyEnded).toBeUndefined();
  expect(cluster.emulator.connections.length).toBe(conns);
  const tomb = await file.records.get({ principal: 'key:alice', sessionId: ids[0] });
  expect(tomb).toMatchObject({ status: 'ended', endReason: 'client_end' });
  expect(tomb!.owner).toBe(other.id);

  // Every live instance answers the same status (usage kept) and transcript (turns before the kill, closed).
  const views = await Promise.all(
    [other, third].map(async (i) => ({
      status: (await request(i.advertiseUrl).get(`${API}/session/${ids[0]}/status`).set(alice)).body,
      transcript: (await request(i.advertiseUrl).get(`${API}/session/${ids[0]}/transcript`).set(alice)).body,
    })),
  );
  expect(views[0]).toEqual(views[1]);
  expect(views[0].status.data).toMatchObject({ status: 'ended', endReason: 'client_end' });
  expect(views[0].status.data.usage.turns).toBeGreaterThan(0);
  expect(views[0].status.data.usage.tokens.totalTokens).toBeGreaterThan(0);
  const turns = views[0].transcript.data.turns as { replyText: string; endedAt: number | null }[];
  expect(turns.some((t) => t.replyText.includes(REPLY))).toBe(true);
  expect(turns.every((t) => t.endedAt !== null)).toBe(true);
  expect(views[0].transcript.data).toMatchObject({ endReason: 'client_end' });

  // A second end, anywhere: already ended.
  const again = await request(third.advertiseUrl).post(`${API}/session/end`).set(alice).send({ session_id: ids[0] });
  expect(again.body.data).toMatchObject({ sessionId: ids[0], status: 'ended', alreadyEnded: true });

  // The webhook: one signed session.ended for it, with its transcript.
  const hooks = () => sessionEndedOf<{ type: string; data: { session_id: string; reason: string; transcript: { turns: unknown[] } } }>(file.receiver, ids[0]);
  await until(async () => (hooks().length > 0 ? true : undefined), 10_000, 'the session.ended webhook');
  await new Promise((r) => setTimeout(r, 500));
  expect(hooks()).toHaveLength(1);
  const event = hooks()[0];
  expect(event).toMatchObject({ type: 'session.ended', data: { reason: 'client_end' } });
  expect(event.data.transcript.turns.length).toBeGreaterThan(0);

  // WebSocket end_session naming the second session, on a new socket to the third instance.
  const ws = await connect(wsUrl(third.advertiseUrl, { token: cluster.keys.alice }));
  await ws.waitFor((m) => m.type === 'auth_success', 10_000);
  const ended = await ws.ask({ type: 'end_session', session_id: ids[1] }, ['session_ended', 'error', 'session_not_found'], 10_000);
  expect(ended).toMatchObject({ type: 'session_ended', data: { sessionId: ids[1], status: 'ended', reason: 'client_end' } });
  await ws.close();
  expect(cluster.emulator.connections.length).toBe(conns);
  expect(await file.records.get({ principal: 'key:alice', sessionId: ids[1] })).toMatchObject({ status: 'ended', endReason: 'client_end' });
});

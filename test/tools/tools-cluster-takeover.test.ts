/**
 * Issue 16 §4 in cluster mode, for real: three server processes sharing a real redis-server and one Gemini Live
 * emulator. The model calls a function in a REST session; the owning instance writes the call into the session's
 * Redis record; the owner gets SIGKILL; the client posts its answer to another instance.
 * - The owner's model session was resumable (a handle in the record): the other instance takes the session over,
 *   resumes the upstream with the handle, restores the call, and delivers the answer on the resumed connection;
 *   the emulator (which still expects it) speaks the reply that uses it.
 * - No handle yet (the call came in the session's first turn): the takeover starts a fresh model session that
 *   never asked; the answer is refused 409 naming the call `dropped` (not a 404, not silently sent to a model that
 *   would close with 1007).
 * While the owner is dead, the status (read from the record) lists the pending call; a stranger's key posting an
 * answer for the same session id gets 404 and takes nothing over. Timing is seeded (printed).
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { parseStoredToolCalls } from '../../src/cluster/stored-tool-calls';
import { clusterForFile, type ClusterInstance, FAST_HEARTBEATS, until as untilDefined } from '../helpers/cluster';
import { prng } from '../ops/helpers';
import { connectAuthed } from '../helpers/ws-test-client';
import { API, GET_TIME, speechPcm, suiteSeed, withSeed } from './helpers';

jest.setTimeout(180_000);

const SEED = suiteSeed();
const TOOL_TURN = { userTranscript: 'what time is it', reply: 'The time is', toolCalls: [{ name: 'get_time', args: { city: 'Oslo' } }] };

const file = clusterForFile({
  instances: 3,
  nginx: false,
  env: { ...FAST_HEARTBEATS, LIVE_AUDIO_TOOL_TIMEOUT_MS: '60000', LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '300' },
});
const { cluster } = file;

const headers = (key: string) => ({ 'Content-Type': 'application/json', 'X-API-Key': key });

/** Polls `f` until it answers (15 s unless told); the tests run inside `withSeed`, which names the seed on failure. */
const until = <T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> => untilDefined(f, ms, what);

/** One spoken turn posted like a client: speech then silence as 16 kHz PCM, in a few jittered pieces. */
async function speak(inst: ClusterInstance, sessionId: string, rnd: () => number): Promise<void> {
  const pcm = speechPcm(900, 900);
  const pieces = 3;
  const size = Math.ceil(pcm.length / pieces / 2) * 2;
  for (let i = 0; i < pcm.length; i += size) {
    const r = await request(inst.server.url)
      .post(`${API}/transcribe`)
      .set(headers(cluster.keys.alice))
      .send({ session_id: sessionId, format: 'pcm', sample_rate: 16000, channels: 1, audio_data: pcm.subarray(i, i + size).toString('base64') });
    expect(r.status).toBe(200);
    await new Promise((res) => setTimeout(res, 20 + rnd() * 80));
  }
}

/** Starts a REST session with get_time on `inst`, then speaks until the model calls it; returns the call id. */
async function sessionWithPendingCall(inst: ClusterInstance, sessionId: string, rnd: () => number, turnsBefore: number): Promise<string> {
  const start = await request(inst.server.url).post(`${API}/session/start`).set(headers(cluster.keys.alice)).send({ session_id: sessionId, response_modality: 'text', tools: [GET_TIME] });
  expect(start.status).toBe(200);
  for (let t = 0; t < turnsBefore; t++) {
    await speak(inst, sessionId, rnd);
    await until('the first turn to complete', async () => {
      const st = await request(inst.server.url).get(`${API}/session/${sessionId}/status`).set(headers(cluster.keys.alice));
      return st.body.data.turn.turnComplete && st.body.data.turn.turnId === t + 1 ? true : undefined;
    });
  }
  await speak(inst, sessionId, rnd);
  // Issue 16 gap 2: the status lists the pending call (id, name, age).
  const listed = await until('the call in the status', async () => {
    const st = await request(inst.server.url).get(`${API}/session/${sessionId}/status`).set(headers(cluster.keys.alice));
    return st.body.data.toolCalls?.length ? (st.body.data.toolCalls as { id: string; name: string; ageMs: number }[]) : undefined;
  });
  expect(listed).toEqual([{ id: expect.any(String), name: 'get_time', ageMs: expect.any(Number) }]);
  const id = listed[0]!.id;
  // The owner wrote it into the session's record (what a takeover restores).
  await until('the call in the record', async () => {
    const rec = await file.records.get({ principal: 'key:alice', sessionId });
    return parseStoredToolCalls(rec?.tools).pending.some((c) => c.id === id) ? true : undefined;
  });
  return id;
}

async function kill(inst: ClusterInstance): Promise<void> {
  inst.server.child.kill('SIGKILL');
  await inst.server.exited;
}

it(`owner killed between the call and the answer, model session resumable: the answer posted to another instance reaches the resumed model, which speaks the reply that uses it (seed ${SEED})`, () =>
  withSeed(SEED, async () => {
    const rnd = prng(SEED);
    cluster.emulator.setScenario(scriptedScenario([{ userTranscript: 'hi', reply: 'Hello.' }], { fallback: TOOL_TURN }));
    const [owner, other] = [cluster.instances[0]!, cluster.instances[1]!];
    const sessionId = `tools_takeover_${Date.now()}`;
    const connsBefore = cluster.emulator.connections.length;
    const callId = await sessionWithPendingCall(owner, sessionId, rnd, 1);
    const rec = await file.records.get({ principal: 'key:alice', sessionId });
    expect(rec).toMatchObject({ owner: owner.id, resumptionHandle: expect.any(String) });
    expect(parseStoredToolCalls(rec!.tools).pending).toEqual([{ id: callId, name: 'get_time', args: { city: 'Oslo' }, askedAt: expect.any(Number) }]);

    await new Promise((r) => setTimeout(r, rnd() * 200));
    await kill(owner);

    // Dead owner: the status, read from the record on another instance, still lists the call (nothing taken over).
    const st = await request(other.server.url).get(`${API}/session/${sessionId}/status`).set(headers(cluster.keys.alice));
    expect(st.body.data).toMatchObject({ status: 'active', ownerAvailable: false, toolCalls: [{ id: callId, name: 'get_time', ageMs: expect.any(Number) }] });
    // A stranger's key naming the same session id and call: 404 like any unknown session, and no takeover.
    const conns = cluster.emulator.connections.length;
    const stranger = await request(other.server.url).post(`${API}/session/tool-response`).set(headers(cluster.keys.bob)).send({ session_id: sessionId, responses: [{ id: callId, response: { output: 'evil' } }] });
    expect(stranger.status).toBe(404);
    expect(stranger.body).toMatchObject({ success: false, code: 'SESSION_NOT_FOUND' });
    expect(cluster.emulator.connections.length).toBe(conns);

    const t0 = performance.now();
    const ans = await request(other.server.url).post(`${API}/session/tool-response`).set(headers(cluster.keys.alice)).send({ session_id: sessionId, responses: [{ id: callId, response: { output: '09:41' } }] });
    const ms = performance.now() - t0;
    expect(ans.status).toBe(200);
    expect(ans.body.data.answered).toEqual([{ id: callId, name: 'get_time', delivery: 'sent' }]);
    console.log(`seed ${SEED}: answer posted to ${other.id} after kill -9 of ${owner.id}: takeover + delivery in ${ms.toFixed(0)} ms`);

    // The emulator: a new connection resumed the model's session, got the answer exactly once, and spoke with it.
    const resumed = cluster.emulator.connections.slice(connsBefore).filter((c) => c.resumedFrom !== undefined);
    expect(resumed).toHaveLength(1);
    await cluster.emulator.waitFor(() => resumed[0]!.toolReplies.length > 0, 10_000);
    expect(resumed[0]!.toolReplies[0]).toMatchObject({ ids: [callId], spoken: true });
    expect(resumed[0]!.toolReplies[0]!.text).toContain('09:41');
    expect(cluster.emulator.connections.flatMap((c) => c.toolResponses).filter((r) => r.id === callId)).toEqual([{ id: callId, name: 'get_time', response: { output: '09:41' } }]);
    expect(cluster.emulator.connections.filter((c) => c.closed?.code === 1007)).toEqual([]);
    // The client hears it: the reply with the answer is the session's turn on the new owner.
    const heard = await until('the reply using the answer', async () => {
      const s = await request(other.server.url).get(`${API}/session/${sessionId}/status`).set(headers(cluster.keys.alice));
      return String(s.body.data.turn.replyText ?? '').includes('09:41') ? s.body.data : undefined;
    });
    expect(heard.toolCalls).toEqual([]);
    expect(heard.upstream).toMatchObject({ state: 'open' });
    // Answered once: a second answer is a 409, on any instance.
    const again = await request(other.server.url).post(`${API}/session/tool-response`).set(headers(cluster.keys.alice)).send({ session_id: sessionId, responses: [{ id: callId, response: { output: 'again' } }] });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('TOOL_CALL_NOT_PENDING');
    expect(parseStoredToolCalls((await file.records.get({ principal: 'key:alice', sessionId }))!.tools).pending).toEqual([]);
    await request(other.server.url).post(`${API}/session/end`).set(headers(cluster.keys.alice)).send({ session_id: sessionId });
  }));

it(`owner killed before the model session was resumable: the answer posted to another instance is refused 409 naming the call dropped, never sent (seed ${SEED})`, () =>
  withSeed(SEED, async () => {
    const rnd = prng(SEED + 1);
    cluster.emulator.setScenario(scriptedScenario([], { fallback: TOOL_TURN }));
    const [owner, other] = [cluster.instances[2]!, cluster.instances[1]!];
    const sessionId = `tools_takeover_fresh_${Date.now()}`;
    const connsBefore = cluster.emulator.connections.length;
    const callId = await sessionWithPendingCall(owner, sessionId, rnd, 0);
    expect((await file.records.get({ principal: 'key:alice', sessionId }))!.resumptionHandle).toBeUndefined();
    await kill(owner);

    const ans = await request(other.server.url).post(`${API}/session/tool-response`).set(headers(cluster.keys.alice)).send({ session_id: sessionId, responses: [{ id: callId, response: { output: 'late' } }] });
    expect(ans.status).toBe(409);
    expect(ans.body).toMatchObject({ success: false, code: 'TOOL_CALL_NOT_PENDING' });
    expect(ans.body.error).toContain('dropped');
    // Taken over on a fresh model session that never saw the answer (the real service would close it with 1007).
    const fresh = cluster.emulator.connections.slice(connsBefore + 1);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]!.resumedFrom).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
    expect(cluster.emulator.connections.flatMap((c) => c.toolResponses).filter((r) => r.id === callId)).toEqual([]);
    expect(cluster.emulator.connections.filter((c) => c.closed?.code === 1007)).toEqual([]);
    const st = await request(other.server.url).get(`${API}/session/${sessionId}/status`).set(headers(cluster.keys.alice));
    expect(st.body.data).toMatchObject({ status: 'active', toolCalls: [] });
    await request(other.server.url).post(`${API}/session/end`).set(headers(cluster.keys.alice)).send({ session_id: sessionId });
  }));

it(`WebSocket: the socket dies with its instance (kill -9) between call and answer; resumed on another instance, the client is shown the call again and its answer reaches the resumed model (seed ${SEED})`, () =>
  withSeed(SEED, async () => {
    const rnd = prng(SEED + 2);
    cluster.emulator.setScenario(scriptedScenario([{ userTranscript: 'hi', reply: 'Hello.' }], { fallback: TOOL_TURN }));
    const owner = await cluster.addInstance();
    const other = cluster.instances[1]!;
    const sessionId = `tools_takeover_ws_${Date.now()}`;
    const first = await connectAuthed(owner.server.url, cluster.keys.alice);
    await first.request({ type: 'start_session', session_id: sessionId, tools: [GET_TIME] }, 'session_started', 15_000);
    first.send({ type: 'text', text: 'hi' });
    await first.next('turn_complete', () => true, 15_000);
    first.send({ type: 'text', text: 'time?' });
    const call = await first.next('tool_call', () => true, 15_000);
    const callId: string = call.calls[0].id;
    await until('the call and a handle in the record', async () => {
      const rec = await file.records.get({ principal: 'key:alice', sessionId });
      return rec?.resumptionHandle && parseStoredToolCalls(rec.tools).pending.some((c) => c.id === callId) ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, rnd() * 200));
    await kill(owner);
    await first.until(() => first.closeInfo, 10_000, 'the socket to close with its instance');

    const c = await connectAuthed(other.server.url, cluster.keys.alice);
    const resumed = await c.request({ type: 'start_session', session_id: sessionId, resume: true }, 'session_started', 15_000);
    expect(resumed.data).toMatchObject({ sessionId, resumed: true });
    const again = await c.next('tool_call', () => true, 10_000);
    expect(again.calls).toEqual([{ id: callId, name: 'get_time', args: { city: 'Oslo' } }]);
    const ack = await c.request({ type: 'tool_response', responses: [{ id: callId, response: { output: '07:07' } }] }, 'tool_response_accepted');
    expect(ack.answered).toEqual([{ id: callId, name: 'get_time', delivery: 'sent' }]);
    const done = await c.next('turn_complete', (m) => String(m.data.response).includes('07:07'), 15_000);
    expect(done.data.response).toContain('The time is');
    expect(cluster.emulator.connections.flatMap((x) => x.toolResponses).filter((r) => r.id === callId)).toHaveLength(1);
    expect(c.ofType('tool_call_cancelled')).toEqual([]);
    c.send({ type: 'end_session' });
    c.close();
  }));

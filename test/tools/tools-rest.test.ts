/**
 * Issue 16 over REST: `/transcribe` answers at once when the model calls a function and lists pending calls in
 * `data.toolCalls` until they are answered with `POST /session/tool-response`; refusals per model (§1); profiles
 * carry tools; another key's session and another session's call ids look unknown.
 */
import request from 'supertest';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { prng } from '../ops/helpers';
import { API, GET_TIME, GET_WEATHER, speechPcm, suiteSeed, toolScenario, withSeed } from './helpers';

const SEED = suiteSeed();

describe(`function calls over REST (seed ${SEED})`, () => {
  let t: TestServer;
  const rnd = prng(SEED);
  beforeAll(async () => {
    // A long bounded wait: the answer must come back at once when the call arrives, not after the wait.
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '5000', LIVE_AUDIO_TOOL_TIMEOUT_MS: '20000' } });
  });
  afterAll(() => t.close());
  beforeEach(() => t.emu.setScenario(toolScenario()));

  const h = (key: string) => ({ 'X-API-Key': key, 'Content-Type': 'application/json' });
  const start = (key: string, body: Record<string, unknown>) => request(t.url).post(`${API}/session/start`).set(h(key)).send(body);
  const transcribe = (key: string, id: string, pcm: Buffer) =>
    request(t.url).post(`${API}/transcribe`).set(h(key)).send({ session_id: id, audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000 });
  const answer = (key: string, id: string, responses: unknown) => request(t.url).post(`${API}/session/tool-response`).set(h(key)).send({ session_id: id, responses });

  /** Streams speech then silence in seeded chunk sizes until an answer lists calls; returns that answer. */
  async function speakUntilCalled(key: string, id: string) {
    const pcm = speechPcm(600, 900);
    let off = 0;
    while (off < pcm.length) {
      const ms = 100 + Math.floor(rnd() * 200);
      const end = Math.min(pcm.length, off + ms * 32);
      const t0 = Date.now();
      const r = await transcribe(key, id, pcm.subarray(off, end));
      off = end;
      expect(r.status).toBe(200);
      if (r.body.data.toolCalls.length > 0) return { r, ms: Date.now() - t0 };
    }
    // The calls came after the last chunk: one more (silent) chunk returns at once with them.
    const t0 = Date.now();
    const r = await transcribe(key, id, Buffer.alloc(3200));
    return { r, ms: Date.now() - t0 };
  }

  it('the bounded wait returns at once with data.toolCalls; the answer reaches the model; the calls stay listed until answered', () =>
    withSeed(SEED, async () => {
      const id = 'tools_rest_1';
      const s = await start(t.keys.alice, { session_id: id, tools: [GET_TIME, GET_WEATHER] });
      expect(s.status).toBe(200);
      const { r, ms } = await speakUntilCalled(t.keys.alice, id);
      // Returned when the call arrived, not at the end of the 5 s wait.
      expect(ms).toBeLessThan(2500);
      const calls = r.body.data.toolCalls;
      expect(calls.map((c: { name: string }) => c.name)).toEqual(['get_time', 'get_weather']);

      // Another key cannot answer (the session looks unknown); another session's ids look unknown too.
      expect((await answer(t.keys.bob, id, [{ id: calls[0].id, response: {} }])).body.code).toBe('SESSION_NOT_FOUND');
      await start(t.keys.alice, { session_id: 'tools_rest_other', tools: [GET_TIME] });
      const cross = await answer(t.keys.alice, 'tools_rest_other', [{ id: calls[0].id, response: {} }]);
      expect([cross.status, cross.body.code]).toEqual([409, 'TOOL_CALL_UNKNOWN']);

      // One answered: the next /transcribe comes back at once (news) and still lists the other one.
      const first = await answer(t.keys.alice, id, [{ id: calls[1].id, response: { output: 'rain' } }]);
      expect(first.body.data.answered).toEqual([{ id: calls[1].id, name: 'get_weather', delivery: 'sent' }]);
      const t0 = Date.now();
      const still = await transcribe(t.keys.alice, id, Buffer.alloc(3200));
      expect(Date.now() - t0).toBeLessThan(2500);
      expect(still.body.data.toolCalls).toEqual([calls[0]]);

      const ok = await answer(t.keys.alice, id, [{ id: calls[0].id, response: { output: '08:15' } }]);
      expect(ok.status).toBe(200);
      expect(ok.body.data.answered.map((a: { name: string; delivery: string }) => [a.name, a.delivery])).toEqual([['get_time', 'sent']]);
      const dup = await answer(t.keys.alice, id, [{ id: calls[0].id, response: {} }]);
      expect([dup.status, dup.body.code, dup.body.success]).toEqual([409, 'TOOL_CALL_NOT_PENDING', false]);

      // The reply uses the answers; the calls are no longer listed; grounding is off (no google_search).
      let last = await transcribe(t.keys.alice, id, Buffer.alloc(3200));
      for (let i = 0; i < 20 && !last.body.data.response.includes('rain'); i++) last = await transcribe(t.keys.alice, id, Buffer.alloc(3200));
      expect(last.body.response).toContain('08:15');
      expect(last.body.data.toolCalls).toEqual([]);
      expect(last.body.data.grounding).toBeNull();
      await request(t.url).post(`${API}/session/end`).set(h(t.keys.alice)).send({ session_id: id });
    }));

  it('refusals per model name the tool and the model, before any upstream connection', async () => {
    const before = t.emu.connections.length;
    const on31 = await start(t.keys.alice, { session_id: 'tools_cap_1', model: 'gemini-3.1-flash-live-preview', tools: [{ ...GET_TIME, behavior: 'non_blocking' }] });
    expect([on31.status, on31.body.code, on31.body.fields]).toEqual([400, 'UNSUPPORTED_FOR_MODEL', ['tools.get_time.behavior']]);
    expect(on31.body.error).toContain('gemini-3.1-flash-live-preview');
    const onX = await start(t.keys.alice, { session_id: 'tools_cap_2', model: 'gemini-3.8-live-extended-thinking', tools: [{ ...GET_TIME, behavior: 'blocking' }] });
    expect([onX.status, onX.body.fields]).toEqual([400, ['tools.get_time.behavior']]);
    const onTranscribe = await start(t.keys.alice, { session_id: 'tools_cap_3', model: 'gemini-3.5-transcribe-live', tools: [GET_TIME], google_search: true });
    expect([onTranscribe.status, onTranscribe.body.code, onTranscribe.body.fields]).toEqual([400, 'UNSUPPORTED_FOR_MODEL', ['tools', 'google_search']]);
    expect(t.emu.connections.length).toBe(before);

    // What each model accepts goes through, with the behavior the model will apply echoed.
    const blocking31 = await start(t.keys.alice, { session_id: 'tools_cap_4', model: 'gemini-3.1-flash-live-preview', tools: [GET_TIME] });
    expect(blocking31.body.data.setup.tools).toEqual([{ name: 'get_time', behavior: 'blocking' }]);
    const nb = await start(t.keys.alice, { session_id: 'tools_cap_5', model: 'gemini-3.8-live-extended-thinking', tools: [{ ...GET_TIME, behavior: 'non_blocking' }] });
    expect(nb.status).toBe(200);
    expect(t.emu.connections.at(-1)!.setup.tools[0].functionDeclarations[0].behavior).toBe('NON_BLOCKING');
    for (const id of ['tools_cap_4', 'tools_cap_5', 'tools_rest_other']) await request(t.url).post(`${API}/session/end`).set(h(t.keys.alice)).send({ session_id: id });
  });

  it('declarations are validated: names, duplicates, count, schema size and depth, unknown fields', async () => {
    const bad = async (tools: unknown) => {
      const r = await start(t.keys.alice, { session_id: 'tools_bad', tools });
      expect(r.status).toBe(400);
      return r.body;
    };
    expect((await bad([{ name: '1abc' }])).fields).toEqual(['tools.0.name']);
    expect((await bad([GET_TIME, GET_TIME])).error).toContain('unique');
    expect((await bad(Array.from({ length: 33 }, (_, i) => ({ name: `f${i}` })))).error).toContain('at most 32 tools');
    expect((await bad([{ name: 'big', parameters: { type: 'object', description: 'x'.repeat(9000) } }])).error).toContain('bytes');
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 7; i++) deep = { type: 'object', properties: { a: deep } };
    expect((await bad([{ name: 'deep', parameters: deep }])).error).toMatch(/nest|deep/i);
    expect((await bad([{ name: 'x', code: 'rm -rf' }])).fields).toEqual(['tools.0.code']);
    expect((await bad([{ name: 'x', behavior: 'sometimes' }])).fields).toEqual(['tools.0.behavior']);
  });
});

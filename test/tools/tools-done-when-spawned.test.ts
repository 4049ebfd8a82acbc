/**
 * Issue 16 "Done when", on a real spawned server process, over both transports: a client declares a function, is
 * asked to run it mid-conversation (after a first turn that made the model's session resumable), the upstream
 * rotates between the call and the answer (goAway, then the deadline close), the client answers, and hears the
 * model use the answer (the emulator asserts the reply it spoke used it; the client gets that reply, with audio).
 * Nothing is lost or sent twice across the rotation: the answer reaches the model exactly once, on the resumed
 * connection. Whether the answer is given while the upstream is away (held) or once it is back is seeded (printed).
 */
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { processAlive, prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { API, GET_TIME, speechPcm, suiteSeed, withSeed } from './helpers';

jest.setTimeout(120_000);

const SEED = suiteSeed();
const TOOL_TURN = { userTranscript: 'what time is it in Oslo', reply: 'In Oslo it is', replyAudioMs: 400, toolCalls: [{ name: 'get_time', args: { city: 'Oslo' } }] };

describe(`issue 16 done-when on a spawned server, with a rotation between call and answer (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  const rnd = prng(SEED);

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      startTimeoutMs: 90_000,
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '1000', LIVE_AUDIO_TOOL_TIMEOUT_MS: '60000', LIVE_AUDIO_RECONNECT_BACKOFF_BASE_MS: '20', LIVE_AUDIO_RECONNECT_BACKOFF_MAX_MS: '100' },
    });
  }, 120_000);
  afterAll(async () => {
    const pid = s?.pid;
    await s?.stop();
    await emu?.stop();
    if (pid) expect(processAlive(pid)).toBe(false);
  });
  beforeEach(() => emu.setScenario(scriptedScenario([{ userTranscript: 'hello', reply: 'Hello, ask me anything.', replyAudioMs: 400 }], { fallback: TOOL_TURN })));
  afterEach(() => emu.setFaults({}));

  /** The connection the session's upstream uses now (the newest open one with a setup). */
  const current = () => emu.connections.filter((c) => c.setup && !c.closed).at(-1)!;

  /**
   * goAway on the session's connection; the server rotates to a new connection resumed with its handle. With
   * `holdNew`, new connections are refused (503) until `release()`: the answer then has to wait for one.
   */
  async function rotate(holdNew: boolean, upstream: () => Promise<{ state: string; connections: number }>): Promise<{ old: string; release: () => void }> {
    const old = current();
    const before = (await upstream()).connections;
    if (holdNew) emu.setFaults({ handshakeStatus: 503 });
    emu.goAway(old.id, 50 + Math.floor(rnd() * 100));
    if (holdNew) await emu.waitFor(() => old.closed !== undefined, 10_000);
    // Back: the server itself reports a newer connection open (the emulator seeing its setup is not enough).
    const deadline = Date.now() + 10_000;
    for (;;) {
      const u = await upstream();
      if (holdNew ? u.state !== 'open' : u.state === 'open' && u.connections > before) break;
      if (Date.now() > deadline) throw new Error(`the upstream did not ${holdNew ? 'go away' : 'come back'}: ${JSON.stringify(u)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return { old: old.id, release: () => emu.setFaults({}) };
  }

  /** The answer reached the model exactly once, on a connection that resumed the session, and its reply used it. */
  function modelUsedAnswerOnce(callId: string, oldConn: string, value: string): void {
    const got = emu.connections.filter((c) => c.toolResponses.some((r) => r.id === callId));
    expect(got).toHaveLength(1);
    expect(got[0]!.id).not.toBe(oldConn);
    expect(got[0]!.resumedFrom).toBeDefined();
    expect(got[0]!.toolResponses.filter((r) => r.id === callId)).toEqual([{ id: callId, name: 'get_time', response: { output: value } }]);
    expect(got[0]!.toolReplies).toEqual([expect.objectContaining({ ids: [callId], spoken: true })]);
    expect(got[0]!.toolReplies[0]!.text).toContain(value);
    expect(emu.connections.filter((c) => c.closed?.code === 1007)).toEqual([]);
  }

  it('WebSocket: declare, get called mid-conversation, rotation, answer, hear the reply that uses it', () =>
    withSeed(SEED, async () => {
      const inGap = rnd() < 0.5;
      const c: WsTestClient = await connectAuthed(s.url, s.keys.alice);
      const started = await c.request({ type: 'start_session', session_id: 'done_ws', response_modality: 'audio', tools: [GET_TIME] }, 'session_started');
      expect(started.data.setup.tools.map((x: { name: string }) => x.name)).toEqual(['get_time']);
      c.send({ type: 'text', text: 'hello' });
      await c.next('turn_complete', () => true, 15_000); // a turn ends: the model's session is resumable
      c.send({ type: 'text', text: 'what time is it in Oslo?' });
      const call = await c.next('tool_call', () => true, 15_000);
      expect(call.calls).toEqual([{ id: expect.any(String), name: 'get_time', args: { city: 'Oslo' } }]);
      const callId: string = call.calls[0].id;

      console.log(`seed ${SEED}: WebSocket answer ${inGap ? 'while the upstream was away (held)' : 'after the resumed connection was up'}`);
      const { old, release } = await rotate(inGap, async () => (await c.request({ type: 'get_status' }, 'session_status')).data.upstream);
      const ack = await c.request({ type: 'tool_response', responses: [{ id: callId, response: { output: '09:41' } }] }, 'tool_response_accepted', 10_000);
      expect(ack.answered).toEqual([{ id: callId, name: 'get_time', delivery: inGap ? 'held' : 'sent' }]);
      const audioBefore = c.ofType('audio_output').length;
      release();
      const done = await c.next('turn_complete', (m) => String(m.data.response).includes('09:41'), 20_000);
      expect(done.data.response).toContain('In Oslo it is');
      expect(c.ofType('audio_output').length).toBeGreaterThan(audioBefore); // the reply is heard, not only read
      modelUsedAnswerOnce(callId, old, '09:41');
      expect(c.ofType('tool_call_cancelled')).toEqual([]);
      expect(c.ofType('tool_response_dropped')).toEqual([]);
      const st = await c.request({ type: 'get_status' }, 'session_status');
      expect(st.data.upstream.rotations).toBeGreaterThanOrEqual(1);
      expect(st.data.toolCalls).toEqual([]);
      const tr = await c.request({ type: 'get_transcript' }, 'transcript');
      const recorded = tr.data.turns.flatMap((x: { toolCalls: { id: string; state: string; response: unknown }[] }) => x.toolCalls);
      expect(recorded).toEqual([expect.objectContaining({ id: callId, name: 'get_time', state: 'answered', response: { output: '09:41' } })]);
      c.send({ type: 'end_session' });
      c.close();
    }));

  it('REST: declare, get called mid-conversation (data.toolCalls), rotation, answer, hear the reply that uses it', () =>
    withSeed(SEED, async () => {
      const inGap = rnd() < 0.5;
      const h = { 'X-API-Key': s.keys.alice, 'Content-Type': 'application/json' };
      const id = 'done_rest';
      const transcribe = (pcm: Buffer) =>
        request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: id, format: 'pcm', sample_rate: 16000, channels: 1, audio_data: pcm.toString('base64') });
      const start = await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: id, response_modality: 'audio', tools: [GET_TIME] });
      expect(start.status).toBe(200);
      /** Speech in jittered pieces, then silent chunks until `done` holds for an answer (bounded). */
      const turn = async (done: (b: Record<string, any>) => boolean): Promise<Record<string, any>> => {
        const pcm = speechPcm(900, 600);
        const step = 6400 + 2 * Math.floor(rnd() * 1600);
        for (let i = 0; i < pcm.length; i += step) expect((await transcribe(pcm.subarray(i, i + step))).status).toBe(200);
        return pollRest(done);
      };
      const pollRest = async (done: (b: Record<string, any>) => boolean): Promise<Record<string, any>> => {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const r = await transcribe(Buffer.alloc(3200));
          expect(r.status).toBe(200);
          if (done(r.body)) return r.body;
          if (Date.now() > deadline) throw new Error(`no such answer; last: ${JSON.stringify(r.body).slice(0, 300)}`);
        }
      };
      const t0 = performance.now();
      await turn((b) => b.turnComplete && b.response.includes('Hello'));
      console.log(`first turn ${Math.round(performance.now() - t0)} ms`);
      const called = await turn((b) => b.data.toolCalls.length > 0);
      expect(called.data.toolCalls).toEqual([{ id: expect.any(String), name: 'get_time', args: { city: 'Oslo' } }]);
      const callId: string = called.data.toolCalls[0].id;

      console.log(`seed ${SEED}: REST answer ${inGap ? 'while the upstream was away (held)' : 'after the resumed connection was up'}; ${Math.round(performance.now() - t0)} ms to the call`);
      const { old, release } = await rotate(inGap, async () => (await request(s.url).get(`${API}/session/${id}/status`).set(h)).body.data.upstream);
      const ans = await request(s.url).post(`${API}/session/tool-response`).set(h).send({ session_id: id, responses: [{ id: callId, response: { output: '10:10' } }] });
      expect(ans.status).toBe(200);
      expect(ans.body.data.answered).toEqual([{ id: callId, name: 'get_time', delivery: inGap ? 'held' : 'sent' }]);
      release();
      const heard = await pollRest((b) => b.turnComplete && b.response.includes('10:10'));
      expect(heard.response).toContain('In Oslo it is');
      expect(typeof heard.data.audioBuffer).toBe('string'); // a WAV of the reply: heard
      expect(Buffer.from(heard.data.audioBuffer, 'base64').subarray(0, 4).toString('latin1')).toBe('RIFF');
      expect(heard.data.toolCalls).toEqual([]);
      modelUsedAnswerOnce(callId, old, '10:10');
      const st = await request(s.url).get(`${API}/session/${id}/status`).set(h);
      expect(st.body.data.upstream.rotations).toBeGreaterThanOrEqual(1);
      expect(st.body.data.toolCalls).toEqual([]);
      await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: id });
    }));
});

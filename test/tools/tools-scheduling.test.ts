/**
 * Non-blocking functions and `scheduling` (issue 16 §3, models-and-setup.md §3), over both transports: a
 * non-blocking call does not stop the model's reply; the client's answer carries `scheduling`, the server passes it
 * through (the emulator records it on the wire, upper-cased as the API spells it), and the model's behaviour
 * differs: SILENT → nothing said, WHEN_IDLE → spoken after the reply in progress, INTERRUPT → the reply in
 * progress is cut short and the answer spoken at once. A blocking function's answer goes without `scheduling`
 * (the model would not take it). When the client answers within the reply is seeded (printed).
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { prng } from '../ops/helpers';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { API, GET_TIME, speechPcm, suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();
const MODEL = 'gemini-3.8-live';
const CHECKING = 'Let me check that for you, one moment please.';
const LATER = 'Anything else?';

describe(`non-blocking function calls and scheduling (seed ${SEED})`, () => {
  let t: TestServer;
  const rnd = prng(SEED);
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TOOL_TIMEOUT_MS: '30000' } });
  });
  afterAll(() => t.close());
  beforeEach(() =>
    t.emu.setScenario(
      scriptedScenario(
        // The reply to the call's turn plays for 5 s of real time: the answer arrives while it is in progress.
        [{ userTranscript: 'what time is it', reply: CHECKING, replyAudioMs: 5000, toolCalls: [{ name: 'get_time', args: { city: 'Oslo' } }] }],
        { fallback: { userTranscript: 'thanks', reply: LATER, replyAudioMs: 300 }, pacing: 'realtime' },
      ),
    ),
  );

  const responses = (c: WsTestClient) => c.ofType('turn_complete').map((m) => String(m.data.response));

  async function callAndAnswer(c: WsTestClient, id: string, scheduling: 'silent' | 'when_idle' | 'interrupt', behavior: 'blocking' | 'non_blocking' = 'non_blocking') {
    const started = await c.request({ type: 'start_session', session_id: id, model: MODEL, tools: [{ ...GET_TIME, behavior }] }, 'session_started');
    expect(started.data.setup.tools).toEqual([{ name: 'get_time', behavior }]);
    c.send({ type: 'text', text: 'what time is it?' });
    const call = await c.next('tool_call');
    const callId: string = call.calls[0].id;
    // Issue 16 gap 2: the WebSocket status lists the pending call.
    const st = await c.request({ type: 'get_status' }, 'session_status');
    expect(st.data.toolCalls).toEqual([{ id: callId, name: 'get_time', ageMs: expect.any(Number) }]);
    await new Promise((r) => setTimeout(r, rnd() * 300));
    const ack = await c.request({ type: 'tool_response', responses: [{ id: callId, response: { output: '09:41' }, scheduling }] }, 'tool_response_accepted');
    expect(ack.answered).toEqual([{ id: callId, name: 'get_time', delivery: 'sent' }]);
    const conn = t.emu.connections.at(-1)!;
    await t.emu.waitFor(() => conn.toolResponses.length === 1, 5000);
    return { callId, conn };
  }

  it('SILENT: passed through; the model takes the answer without a word and the conversation goes on', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      const { callId, conn } = await callAndAnswer(c, 'sched_silent', 'silent');
      expect(conn.toolResponses).toEqual([{ id: callId, name: 'get_time', response: { output: '09:41' }, scheduling: 'SILENT' }]);
      await t.emu.waitFor(() => conn.toolReplies.length === 1, 5000);
      expect(conn.toolReplies[0]).toMatchObject({ ids: [callId], spoken: false, scheduling: 'SILENT' });
      await c.until(() => c.ofType('turn_complete').length >= 1, 15_000, 'the reply to the call turn');
      // The next thing the model says is the answer to the next user turn, never the function's result.
      c.send({ type: 'text', text: 'thanks' });
      await c.until(() => responses(c).some((r) => r.includes(LATER)), 15_000, 'the next turn');
      expect(responses(c)[0]).toContain('Let me check');
      expect(responses(c).join(' ')).not.toContain('09:41');
      expect(c.ofType('interrupted')).toEqual([]);
      c.close();
    }));

  it('WHEN_IDLE: passed through; the reply in progress ends uninterrupted, then the model speaks the answer', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      const { callId, conn } = await callAndAnswer(c, 'sched_idle', 'when_idle');
      expect(conn.toolResponses[0]).toMatchObject({ id: callId, scheduling: 'WHEN_IDLE' });
      await c.until(() => responses(c).some((r) => r.includes('09:41')), 20_000, 'the reply with the answer');
      const all = responses(c);
      expect(all[0]).toContain('Let me check');
      expect(all[0]).not.toContain('09:41');
      expect(c.ofType('turn_complete')[0]!.data.interrupted).toBe(false);
      expect(c.ofType('interrupted')).toEqual([]);
      expect(conn.toolReplies).toEqual([expect.objectContaining({ ids: [callId], spoken: true, when: 'after_turn', interrupted: false })]);
      c.close();
    }));

  it('INTERRUPT: passed through; the reply in progress is cut short and the answer spoken at once', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      const { callId, conn } = await callAndAnswer(c, 'sched_int', 'interrupt');
      expect(conn.toolResponses[0]).toMatchObject({ id: callId, scheduling: 'INTERRUPT' });
      await c.until(() => responses(c).some((r) => r.includes('09:41')), 20_000, 'the reply with the answer');
      // The model's `interrupted` comes before the reply with the answer.
      const types = c.messages.map((m) => (m.type === 'turn_complete' && String(m.data.response).includes('09:41') ? 'answer' : m.type));
      expect(types.indexOf('interrupted')).toBeGreaterThan(-1);
      expect(types.indexOf('interrupted')).toBeLessThan(types.indexOf('answer'));
      const first = c.ofType('turn_complete')[0]!;
      // Cut short: not all of the 5 s reply was said.
      expect(String(first.data.response)).not.toContain(CHECKING);
      expect(conn.toolReplies).toEqual([expect.objectContaining({ ids: [callId], spoken: true, when: 'now', interrupted: true })]);
      c.close();
    }));

  it('a blocking function: scheduling is not passed on (the model would refuse it) and the reply waits for the answer', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      const { callId, conn } = await callAndAnswer(c, 'sched_blocking', 'interrupt', 'blocking');
      expect(conn.toolResponses).toEqual([{ id: callId, name: 'get_time', response: { output: '09:41' } }]);
      await c.until(() => responses(c).length >= 1, 20_000, 'the reply');
      expect(responses(c)[0]).toContain('09:41');
      expect(conn.toolReplies).toEqual([expect.objectContaining({ ids: [callId], spoken: true, when: 'now', interrupted: false })]);
      c.close();
    }));

  it('REST: scheduling passes through POST /session/tool-response (WHEN_IDLE), and the status lists the call until answered', () =>
    withSeed(SEED, async () => {
      const h = { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' };
      const id = 'sched_rest';
      const start = await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: id, model: MODEL, tools: [{ ...GET_TIME, behavior: 'non_blocking' }] });
      expect(start.status).toBe(200);
      // REST carries audio only: a turn of speech starts the model's call.
      const tr = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: id, format: 'pcm', sample_rate: 16000, channels: 1, audio_data: speechPcm(900, 900).toString('base64') });
      expect(tr.status).toBe(200);
      const deadline = Date.now() + 15_000;
      let calls: { id: string; name: string; ageMs: number }[] = [];
      while (calls.length === 0 && Date.now() < deadline) {
        const st = await request(t.url).get(`${API}/session/${id}/status`).set(h);
        calls = st.body.data.toolCalls;
        if (calls.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
      expect(calls).toEqual([{ id: expect.any(String), name: 'get_time', ageMs: expect.any(Number) }]);
      const ans = await request(t.url).post(`${API}/session/tool-response`).set(h).send({ session_id: id, responses: [{ id: calls[0]!.id, response: { output: '09:41' }, scheduling: 'when_idle' }] });
      expect(ans.status).toBe(200);
      const conn = t.emu.connections.at(-1)!;
      await t.emu.waitFor(() => conn.toolReplies.length === 1, 5000);
      expect(conn.toolResponses[0]).toMatchObject({ id: calls[0]!.id, scheduling: 'WHEN_IDLE' });
      const after = await request(t.url).get(`${API}/session/${id}/status`).set(h);
      expect(after.body.data.toolCalls).toEqual([]);
      await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: id });
    }));
});

/**
 * Issue 16 over the WebSocket: a session declares functions, the emulated model calls two at once (one
 * `tool_call`, in order), the client answers, and the model's reply uses the answers; the transcript and usage
 * record the calls. Cancellation on barge-in, the timeout, and the ledger's 409s.
 */
import { startTestServer, type TestServer } from '../helpers/test-server';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { GET_TIME, GET_WEATHER, suiteSeed, toolScenario, withSeed } from './helpers';

const SEED = suiteSeed();

describe(`function calls over the WebSocket (seed ${SEED})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TOOL_TIMEOUT_MS: '800' } });
  });
  afterAll(() => t.close());
  beforeEach(() => t.emu.setScenario(toolScenario()));

  async function startWithTools(c: WsTestClient, id: string, extra: Record<string, unknown> = {}) {
    const started = await c.request({ type: 'start_session', session_id: id, tools: [GET_TIME, GET_WEATHER], ...extra }, 'session_started');
    return started;
  }

  it('parallel calls arrive as one tool_call in order; answers reach the model, which speaks a reply that uses them', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      const started = await startWithTools(c, 'tools_ws_1');
      expect(started.data.setup.tools).toEqual([
        { name: 'get_time', behavior: 'non_blocking' },
        { name: 'get_weather', behavior: 'non_blocking' },
      ]);
      // The declarations reached the model as the wire format says (parameters as JSON Schema).
      const setup = t.emu.connections.at(-1)!.setup;
      expect(setup.tools[0].functionDeclarations.map((d: { name: string }) => d.name)).toEqual(['get_time', 'get_weather']);
      expect(setup.tools[0].functionDeclarations[0].parametersJsonSchema).toEqual(GET_TIME.parameters);

      c.send({ type: 'text', text: 'what time is it in Berlin?' });
      const call = await c.next('tool_call');
      expect(call.calls.map((x: { name: string }) => x.name)).toEqual(['get_time', 'get_weather']);
      expect(call.calls[0].args).toEqual({ city: 'Berlin' });
      expect(c.ofType('tool_call')).toHaveLength(1);

      const [timeId, weatherId] = call.calls.map((x: { id: string }) => x.id);
      // Answered in two messages, the second one first: the model waits for both.
      const ack1 = await c.request({ type: 'tool_response', responses: [{ id: weatherId, response: { output: 'sunny' } }] }, 'tool_response_accepted');
      expect(ack1.answered).toEqual([{ id: weatherId, name: 'get_weather', delivery: 'sent' }]);
      c.send({ type: 'tool_response', responses: [{ id: timeId, response: { output: '12:00' } }] });
      const done = await c.next('turn_complete');
      expect(done.data.response).toContain('12:00');
      expect(done.data.response).toContain('sunny');
      // The emulator saw each answer once, with the name filled in by the server.
      const seen = t.emu.connections.at(-1)!.toolResponses;
      expect(seen.map((r) => [r.id, r.name])).toEqual([
        [weatherId, 'get_weather'],
        [timeId, 'get_time'],
      ]);

      // Re-answering is a 409; an id this session never issued looks unknown (409 too, a different code).
      const again = await c.request({ type: 'tool_response', responses: [{ id: timeId, response: { output: 'x' } }] }, 'error');
      expect(again.code).toBe('TOOL_CALL_NOT_PENDING');
      const unknown = await c.request({ type: 'tool_response', responses: [{ id: 'function-call-made-up', response: {} }] }, 'error');
      expect(unknown.code).toBe('TOOL_CALL_UNKNOWN');

      // Transcript and usage: the calls, their answers, and the tokens the answers cost.
      const tr = await c.request({ type: 'get_transcript' }, 'transcript');
      const turn = tr.data.turns.find((x: { toolCalls: unknown[] }) => x.toolCalls.length > 0);
      expect(turn.toolCalls.map((x: { name: string; state: string }) => [x.name, x.state])).toEqual([
        ['get_time', 'answered'],
        ['get_weather', 'answered'],
      ]);
      expect(turn.toolCalls[0].response).toEqual({ output: '12:00' });
      expect(turn.usage.toolUsePromptTokens).toBeGreaterThan(0);
      expect(tr.data.usage.toolUsePromptTokens).toBe(turn.usage.toolUsePromptTokens);
      c.close();
    }));

  it('with google_search the grounding reaches the client with the reply and stays in the transcript', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      await startWithTools(c, 'tools_ws_g', { google_search: true });
      expect(t.emu.connections.at(-1)!.setup.tools).toContainEqual({ googleSearch: {} });
      c.send({ type: 'text', text: 'weather?' });
      const call = await c.next('tool_call');
      c.send({ type: 'tool_response', responses: call.calls.map((x: { id: string }) => ({ id: x.id, response: { output: 'ok' } })) });
      const g = await c.next('grounding');
      expect(g.data).toEqual({ queries: ['weather Berlin'], sources: [{ uri: 'https://weather.example/berlin', title: 'Berlin weather' }] });
      await c.next('turn_complete');
      const tr = await c.request({ type: 'get_transcript' }, 'transcript');
      expect(tr.data.turns.at(-1).grounding.sources[0].uri).toBe('https://weather.example/berlin');
      c.close();
    }));

  it('barge-in while calls are pending: tool_call_cancelled, and answering them afterwards is a 409', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      await startWithTools(c, 'tools_ws_cancel');
      c.send({ type: 'text', text: 'time?' });
      const call = await c.next('tool_call');
      // A new user turn interrupts the model while it waits on the answers.
      t.emu.setScenario(toolScenario({ fallback: { userTranscript: 'never mind', reply: 'OK.' } }));
      c.send({ type: 'text', text: 'never mind' });
      const cancelled = await c.next('tool_call_cancelled');
      expect(cancelled.reason).toBe('cancelled');
      expect(cancelled.ids).toEqual(call.calls.map((x: { id: string }) => x.id));
      const late = await c.request({ type: 'tool_response', responses: [{ id: cancelled.ids[0], response: {} }] }, 'error');
      expect(late.code).toBe('TOOL_CALL_NOT_PENDING');
      // Nothing reached the model for the withdrawn calls (an answer to one would have closed it with 1007).
      expect(t.emu.connections.at(-1)!.toolResponses).toEqual([]);
      expect(t.emu.connections.at(-1)!.closed).toBeUndefined();
      c.close();
    }));

  it('a call left unanswered is answered with an error on the client\'s behalf after the timeout, and the client is told', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      await startWithTools(c, 'tools_ws_timeout');
      c.send({ type: 'text', text: 'time?' });
      const call = await c.next('tool_call');
      const timedOut = await c.next('tool_call_timed_out', () => true, 5000);
      expect(timedOut.ids).toEqual(call.calls.map((x: { id: string }) => x.id));
      expect(timedOut.timeout_ms).toBe(800);
      // The model got the error answers (it does not hang) and replied.
      const done = await c.next('turn_complete');
      expect(done.data.response).toContain('did not answer');
      const seen = t.emu.connections.at(-1)!.toolResponses;
      expect(seen.map((r) => r.id).sort()).toEqual(timedOut.ids.slice().sort());
      c.close();
    }));

  it('a client that resumes its session on a new socket is told the calls still waiting, and can answer them', () =>
    withSeed(SEED, async () => {
      const c1 = await connectAuthed(t.url, t.keys.alice);
      await startWithTools(c1, 'tools_ws_resume', { keep_alive_on_close: true });
      c1.send({ type: 'text', text: 'time?' });
      const call = await c1.next('tool_call');
      c1.close();
      await c1.waitClose();
      const c2 = await connectAuthed(t.url, t.keys.alice);
      const resumed = await c2.request({ type: 'start_session', session_id: 'tools_ws_resume', resume: true }, 'session_started');
      expect(resumed.data.resumed).toBe(true);
      const again = await c2.next('tool_call');
      expect(again.calls).toEqual(call.calls);
      c2.send({ type: 'tool_response', responses: again.calls.map((x: { id: string }) => ({ id: x.id, response: { output: 'resumed-ok' } })) });
      const done = await c2.next('turn_complete');
      expect(done.data.response).toContain('resumed-ok');
      c2.close();
    }));
});

/**
 * The published contract covers issue 16: real tool messages and answers, captured in flows through the emulator,
 * validated with ajv (draft 2020-12) against GET /schemas/ws.json and GET /openapi.json, errors included.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import request from 'supertest';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { connectAuthed } from '../helpers/ws-test-client';
import { API, GET_TIME, GET_WEATHER, speechPcm, toolScenario } from './helpers';

describe('published schemas describe the tool messages and answers', () => {
  let t: TestServer;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  let openapi: Record<string, any>;

  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '3000', LIVE_AUDIO_TOOL_TIMEOUT_MS: '500' } });
    t.emu.setScenario(toolScenario());
    openapi = (await request(t.url).get('/openapi.json')).body;
    ajv.addSchema(openapi, 'openapi');
    ajv.addSchema(JSON.parse((await request(t.url).get('/schemas/ws.json')).text), 'ws');
  });
  afterAll(() => t.close());

  function check(path: string, method: string, r: { status: number; body: unknown }): void {
    const ptr = `openapi#/paths/${path.replace(/\//g, '~1')}/${method}/responses/${r.status}/content/application~1json/schema`;
    const v: ValidateFunction | undefined = ajv.getSchema(ptr);
    const ok = !!v && v(r.body);
    expect({ path, status: r.status, errors: ok ? null : (v?.errors ?? 'undocumented status') }).toEqual({ path, status: r.status, errors: null });
  }

  it('WebSocket: start_session with tools, tool_call, tool_response(_accepted), grounding, tool_call_cancelled, tool_call_timed_out, errors', async () => {
    const server = ajv.getSchema('ws#/$defs/ServerMessage')!;
    const client = ajv.getSchema('ws#/$defs/ClientMessage')!;
    const c = await connectAuthed(t.url, t.keys.alice);
    const sent: Record<string, unknown>[] = [];
    const send = (m: Record<string, unknown>) => {
      sent.push(m);
      c.send(m);
    };
    send({ type: 'start_session', session_id: 'contract_ws', tools: [GET_TIME, { ...GET_WEATHER, behavior: 'non_blocking' }], google_search: true });
    await c.next('session_started');
    send({ type: 'text', text: 'time?' });
    const call = await c.next('tool_call');
    send({ type: 'tool_response', responses: [{ id: call.calls[0].id, response: { output: '1' }, scheduling: 'when_idle' }] });
    await c.next('tool_response_accepted');
    send({ type: 'tool_response', responses: [{ id: call.calls[0].id, response: {} }] });
    send({ type: 'tool_response', responses: [{ id: 'nope', response: {} }] });
    send({ type: 'tool_response', responses: [] });
    send({ type: 'tool_response', responses: [{ id: call.calls[1].id, response: { output: '2' } }] });
    await c.next('grounding');
    await c.next('turn_complete');
    send({ type: 'text', text: 'again' });
    await c.next('tool_call');
    send({ type: 'text', text: 'stop' }); // barge-in: the pending calls are withdrawn
    await c.next('tool_call_cancelled');
    await c.next('tool_call', () => true, 5000);
    await c.next('tool_call_timed_out', () => true, 5000);
    const types = new Set(c.messages.map((m) => m.type));
    expect([...types]).toEqual(expect.arrayContaining(['tool_call', 'tool_response_accepted', 'grounding', 'tool_call_cancelled', 'tool_call_timed_out', 'error']));
    expect(c.ofType('error').map((m) => m.code)).toEqual(['TOOL_CALL_NOT_PENDING', 'TOOL_CALL_UNKNOWN', 'INVALID_FIELD']);
    for (const m of c.messages) {
      const own = ajv.getSchema(`ws#/$defs/server.${m.type}`);
      const ok = !!own && own(m) && server(m);
      expect({ type: m.type, errors: ok ? null : (own?.errors ?? 'no schema') }).toEqual({ type: m.type, errors: null });
    }
    // The client messages sent are described (the empty responses list is refused by the server and by the schema).
    for (const m of sent) expect({ m, ok: client(m) }).toEqual({ m, ok: (m.responses as unknown[] | undefined)?.length !== 0 });
    expect(server({ type: 'tool_call', session_id: 'x', turn_id: 1 })).toBe(false);
    c.close();
  });

  it('REST: /transcribe with data.toolCalls, /session/tool-response 200 and its 409s, start refusals', async () => {
    const h = { 'X-API-Key': t.keys.bob, 'Content-Type': 'application/json' };
    const start = await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'contract_rest', tools: [GET_TIME] });
    check(`${API}/session/start`, 'post', start);
    const refused = await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'contract_rest2', model: 'gemini-3.1-flash-live-preview', tools: [{ ...GET_TIME, behavior: 'non_blocking' }] });
    check(`${API}/session/start`, 'post', refused);
    const pcm = speechPcm(600, 900);
    let r = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'contract_rest', audio_data: pcm.toString('base64'), format: 'pcm' });
    for (let i = 0; i < 5 && r.body.data.toolCalls.length === 0; i++) {
      r = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'contract_rest', audio_data: Buffer.alloc(3200).toString('base64'), format: 'pcm' });
    }
    expect(r.body.data.toolCalls.length).toBeGreaterThan(0);
    check(`${API}/transcribe`, 'post', r);
    const id = r.body.data.toolCalls[0].id;
    const answer = (body: object) => request(t.url).post(`${API}/session/tool-response`).set(h).send(body);
    const ok = await answer({ session_id: 'contract_rest', responses: [{ id, response: { output: 'x' } }] });
    check(`${API}/session/tool-response`, 'post', ok);
    const again = await answer({ session_id: 'contract_rest', responses: [{ id, response: {} }] });
    expect(again.status).toBe(409);
    check(`${API}/session/tool-response`, 'post', again);
    const big = await answer({ session_id: 'contract_rest', responses: [{ id: 'x', response: { o: 'y'.repeat(70_000) } }] });
    expect(big.status).toBe(413);
    check(`${API}/session/tool-response`, 'post', big);
    const none = await answer({ session_id: 'nobody', responses: [{ id, response: {} }] });
    check(`${API}/session/tool-response`, 'post', none);
  });
});

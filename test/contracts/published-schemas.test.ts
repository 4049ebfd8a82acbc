import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import request from 'supertest';
import { loadRecording } from '../helpers/fixtures';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { connect, wsUrl, type Msg, type WsTestClient } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';

/**
 * The published contract (GET /openapi.json, GET /schemas/ws.json) checked with a real JSON-Schema validator (ajv,
 * draft 2020-12) against real answers: REST responses and WebSocket messages captured in real flows through the
 * emulator, including error bodies. A shape the server sends but the schemas do not describe fails here.
 */
describe('published schemas describe the real answers', () => {
  let t: TestServer;
  let openapi: Record<string, any>;
  let wsDoc: Record<string, any>;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const clients: WsTestClient[] = [];

  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '200' } });
    const o = await request(t.url).get('/openapi.json');
    expect(o.status).toBe(200);
    openapi = o.body;
    const w = await request(t.url).get('/schemas/ws.json');
    expect(w.status).toBe(200);
    wsDoc = JSON.parse(w.text);
    ajv.addSchema(openapi, 'openapi');
    ajv.addSchema(wsDoc, 'ws');
  });
  afterAll(async () => {
    for (const c of clients) c.ws.terminate();
    await t.close();
  });

  /** The schema of one operation's answer, resolved inside the OpenAPI document. */
  function responseValidator(path: string, method: string, status: number): ValidateFunction {
    const op = openapi.paths[path]?.[method];
    expect(op).toBeDefined();
    const res = op.responses[String(status)];
    expect({ path, method, status, documented: !!res }).toEqual({ path, method, status, documented: true });
    const ptr = `openapi#/paths/${path.replace(/~/g, '~0').replace(/\//g, '~1')}/${method}/responses/${status}/content/application~1json/schema`;
    return ajv.getSchema(ptr)!;
  }

  function check(path: string, method: string, r: { status: number; body: unknown }): void {
    const v = responseValidator(path, method, r.status);
    const ok = v(r.body);
    expect({ path, status: r.status, errors: ok ? null : v.errors, body: ok ? null : r.body }).toEqual({ path, status: r.status, errors: null, body: null });
  }

  it('serves OpenAPI 3.1 with the error envelope and every error code', () => {
    expect(openapi.openapi).toBe('3.1.0');
    expect(openapi.components.schemas.Error.properties.code.enum).toEqual(expect.arrayContaining(['SESSION_NOT_FOUND', 'AUDIO_RATE_LIMITED', 'AUTH_REQUIRED']));
    // Our 9 REST routes (issue 16 added /session/tool-response) and the dialects' 4 HTTP routes (issue 17).
    expect(Object.keys(openapi.paths)).toHaveLength(13);
    expect(openapi.components.schemas.Error.properties.code.enum).toEqual(
      expect.arrayContaining(['UNSUPPORTED_FOR_MODEL', 'PROFILE_LOCKED', 'UNKNOWN_PROFILE', 'TOKEN_BUDGET_EXHAUSTED', 'SESSION_AUDIO_LIMIT_REACHED']),
    );
  });

  it('REST answers of a real conversation (and its errors) match /openapi.json', async () => {
    const h = { 'X-API-Key': t.keys.alice };
    const rec = loadRecording('chromium-hello-1000ms');
    check(`${API}/sessions`, 'get', await request(t.url).get(`${API}/sessions`).set(h));
    check(`${API}/session/start`, 'post', await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'c1', response_modality: 'audio' }));
    check(`${API}/sessions`, 'get', await request(t.url).get(`${API}/sessions`).set(h));
    for (const c of rec.chunks) {
      check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c1', audio_data: c.toString('base64') }));
    }
    check(`${API}/session/{session_id}/status`, 'get', await request(t.url).get(`${API}/session/c1/status`).set(h));
    check(`${API}/session/{session_id}/transcript`, 'get', await request(t.url).get(`${API}/session/c1/transcript`).set(h));
    check(`${API}/usage`, 'get', await request(t.url).get(`${API}/usage`).set(h));
    // Manual activity markers: refused on an automatic session (409), answered like any /transcribe on a manual one.
    check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c1', activity_start: true }));
    check(`${API}/session/start`, 'post', await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'c2', vad: { manual: true } }));
    check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c2', activity_start: true }));
    check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c2', activity_start: true }));
    check(`${API}/session/{session_id}/status`, 'get', await request(t.url).get(`${API}/session/c2/status`).set(h));
    check(`${API}/session/end`, 'post', await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: 'c1' }));
    check(`${API}/session/{session_id}/transcript`, 'get', await request(t.url).get(`${API}/session/c1/transcript`).set(h));
    check(`${API}/session/{session_id}/transcript`, 'get', await request(t.url).get(`${API}/session/nobody/transcript`).set(h));
    check(`${API}/session/end`, 'post', await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: 'c1' }));
    const ended = await request(t.url).get(`${API}/session/c1/status`).set(h);
    check(`${API}/session/{session_id}/status`, 'get', ended);
    expect(ended.body.data).toMatchObject({ status: 'ended', setup: { model: expect.any(String) }, usage: { turns: expect.any(Number) } });
    check(`${API}/session/{session_id}/status`, 'get', await request(t.url).get(`${API}/session/nobody/status`).set(h));
    check(`${API}/session/end`, 'post', await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: 'nobody' }));
    // Errors: the envelope with a published code.
    check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c1', audio_data: rec.chunks[0].toString('base64') }));
    check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c1' }));
    check(`${API}/transcribe`, 'post', await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'c1', audio_data: 'AAAA', format: 'flac' }));
    check(`${API}/sessions`, 'get', await request(t.url).get(`${API}/sessions`));
    check(`${API}/session/start`, 'post', await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'bad id!' }));
    // Setup refusals name their fields.
    check(`${API}/session/start`, 'post', await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'c2', persona: 'x' }));
    check(`${API}/session/start`, 'post', await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'c2', model: 'gemini-3.8-live', thinking: { budget: 1 } }));
    check(`${API}/session/start`, 'post', await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'c2', profile: 'nope' }));
  });

  it('WebSocket messages of a real conversation (and its errors) match /schemas/ws.json', async () => {
    const server = ajv.getSchema('ws#/$defs/ServerMessage')!;
    const clientSchema = ajv.getSchema('ws#/$defs/ClientMessage')!;
    const sent: unknown[] = [];
    const c = await connect(wsUrl(t.url, { token: t.keys.bob, auth_type: 'api_key' }));
    clients.push(c);
    const send = (m: Record<string, unknown>) => {
      sent.push(m);
      c.send(m);
    };
    await c.next('auth_success');
    send({ type: 'start_session', session_id: 'w1', response_modality: 'audio' });
    await c.next('session_started');
    for (const chunk of loadRecording('chromium-hello-1000ms').chunks) send({ type: 'audio_chunk', audio_data: chunk.toString('base64') });
    await c.next('turn_complete', () => true, 15_000);
    send({ type: 'get_status' });
    await c.next('session_status');
    send({ type: 'get_rate_limits' });
    await c.next('rate_limit_status');
    send({ type: 'get_transcript' });
    await c.next('transcript');
    send({ type: 'get_usage' });
    await c.next('usage');
    send({ type: 'ping' });
    await c.next('pong');
    send({ type: 'text', text: 'hello' });
    send({ type: 'interrupt' });
    await c.next('interrupted');
    send({ type: 'get_status', session_id: 'nobody' });
    await c.next('session_status', (m) => m.session_id === 'nobody');
    send({ type: 'end_session', session_id: 'nobody' });
    send({ type: 'end_session' });
    await c.next('session_ended', (m) => m.session_id === 'w1');
    send({ type: 'audio_chunk', audio_data: 'AAAA' });
    c.send('{"type":"no_such_type"}');
    c.send('not json');
    await c.until(() => c.messages.filter((m: Msg) => m.type === 'error').length >= 3, 5_000, 'three errors');

    const types = new Set<string>();
    for (const m of c.messages) {
      types.add(m.type);
      // Its own type's schema first (readable errors), then the published union.
      const own = ajv.getSchema(`ws#/$defs/server.${m.type}`);
      const ok = !!own && own(m) && server(m);
      expect({ type: m.type, errors: ok ? null : (own?.errors ?? 'no schema for this type'), message: ok ? null : JSON.stringify(m).slice(0, 600) }).toEqual({
        type: m.type,
        errors: null,
        message: null,
      });
    }
    expect([...types]).toEqual(expect.arrayContaining(['connected', 'auth_success', 'session_started', 'transcription_result', 'audio_output', 'turn_complete', 'session_status', 'rate_limit_status', 'pong', 'interrupted', 'session_ended', 'error']));
    for (const m of sent) expect({ m, ok: clientSchema(m) }).toEqual({ m, ok: true });
    // The schema is not vacuous: a made-up message and a malformed known one are rejected.
    expect(server({ type: 'made_up' })).toBe(false);
    expect(server({ type: 'pong' })).toBe(false);
  });
});

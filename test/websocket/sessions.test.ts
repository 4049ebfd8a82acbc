/**
 * WebSocket sessions are the REST path's sessions (one registry): visibility over REST, ending from either side,
 * one live session per socket, keep-alive and resumption, expiry, caps, and server shutdown.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';
const pcmChunk = (ms = 100) => ({ type: 'audio_chunk', audio_data: Buffer.alloc(32 * ms).toString('base64'), format: 'pcm', sample_rate: 16000 });

describe('WebSocket sessions shared with REST', () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];
  const open = async (key: string) => {
    const c = await connectAuthed(t.url, key);
    clients.push(c);
    return c;
  };
  const rest = (key: string) => ({
    list: () => request(t.url).get(`${API}/sessions`).set('X-API-Key', key),
    status: (id: string) => request(t.url).get(`${API}/session/${id}/status`).set('X-API-Key', key),
    end: (id: string) => request(t.url).post(`${API}/session/end`).set('X-API-Key', key).send({ session_id: id }),
  });

  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_MAX_SESSIONS_PER_USER: '2' } });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'OK.' } }));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0 && t.server.liveAudioWs.connections === 0, 3000).catch(() => {
      t.server.registry.endAll('client_end', 'test cleanup');
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('a WS session shows in GET /sessions and its status; REST /session/end ends it on the socket', async () => {
    const c = await open(t.keys.alice);
    await c.request({ type: 'start_session', session_id: 'ws_shared_1' }, 'session_started');
    const list = await rest(t.keys.alice).list();
    expect(list.body.data.sessions).toEqual([expect.objectContaining({ sessionId: 'ws_shared_1', transport: 'ws' })]);
    // Not visible to another user.
    expect((await rest(t.keys.bob).list()).body.data.count).toBe(0);
    expect((await rest(t.keys.bob).status('ws_shared_1')).body.data.status).toBe('not_found');

    const wsStatus = await c.request({ type: 'get_status' }, 'session_status');
    const restStatus = (await rest(t.keys.alice).status('ws_shared_1')).body.data;
    expect(wsStatus.session_id).toBe('ws_shared_1');
    expect(wsStatus.data).toMatchObject({ sessionId: 'ws_shared_1', status: 'active', startTime: restStatus.startTime, transport: 'ws' });
    expect(wsStatus.data.upstream.connected).toBe(true);

    const ended = await rest(t.keys.alice).end('ws_shared_1');
    expect(ended.body.data.status).toBe('ended');
    const pushed = await c.next('session_ended');
    expect(pushed).toMatchObject({ session_id: 'ws_shared_1', data: { status: 'ended', reason: 'client_end' } });
    const after = await c.request(pcmChunk(), 'error');
    expect(after.code).toBe('NO_ACTIVE_SESSION');
  });

  it('REST audio to a WS session streams its results to the socket', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'Typed reply.' } }));
    const c = await open(t.keys.alice);
    await c.request({ type: 'start_session', session_id: 'ws_shared_2' }, 'session_started');
    const r = await request(t.url)
      .post(`${API}/transcribe`)
      .set('X-API-Key', t.keys.alice)
      .send({ session_id: 'ws_shared_2', audio_data: Buffer.alloc(3200).toString('base64'), format: 'pcm', sample_rate: 16000 });
    expect(r.status).toBe(200);
    const st = await c.request({ type: 'get_status' }, 'session_status');
    expect(st.data.audio.chunks).toBe(1);
    c.send({ type: 'text', text: 'hello' });
    expect((await c.next('turn_complete')).data.response).toBe('Typed reply.');
  });

  it('start_session without a session_id gets a generated, valid one', async () => {
    const c = await open(t.keys.alice);
    const s = await c.request({ type: 'start_session' }, 'session_started');
    expect(s.session_id).toMatch(/^ws_key_alice_\d{13}_[a-z0-9]+$/);
    expect(s.data.sessionId).toBe(s.session_id);
    expect((await rest(t.keys.alice).status(s.session_id)).body.data.status).toBe('active');
  });

  it('a second start_session ends the first cleanly before starting the next', async () => {
    const c = await open(t.keys.alice);
    await c.request({ type: 'start_session', session_id: 'first' }, 'session_started');
    const firstConn = t.emu.connections.at(-1)!;
    const second = await c.request({ type: 'start_session', session_id: 'second' }, 'session_started');
    const endedIdx = c.messages.findIndex((m) => m.type === 'session_ended');
    expect(c.messages[endedIdx]).toMatchObject({ session_id: 'first', data: { status: 'ended', reason: 'replaced' } });
    expect(endedIdx).toBeLessThan(c.messages.indexOf(second));
    const list = await rest(t.keys.alice).list();
    expect(list.body.data.sessions.map((s: { sessionId: string }) => s.sessionId)).toEqual(['second']);
    await t.emu.waitFor(() => firstConn.closed !== undefined, 2000);
    // Results only for the live one.
    c.send({ type: 'text', text: 'hi' });
    const done = await c.next('turn_complete');
    expect(done.session_id).toBe('second');
  });

  it('closing the socket ends its session and its upstream connection', async () => {
    const c = await open(t.keys.alice);
    await c.request({ type: 'start_session', session_id: 'closing' }, 'session_started');
    const conn = t.emu.connections.at(-1)!;
    c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0, 2000);
    await t.emu.waitFor(() => conn.closed !== undefined, 2000);
    const st = await rest(t.keys.alice).status('closing');
    expect(st.body.data).toMatchObject({ status: 'ended', reason: 'socket_closed' });
  });

  it('keep_alive_on_close keeps the session for a reconnecting socket, which resumes it on the same upstream', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: (input) => ({ userTranscript: '', reply: `Turn ${input.index + 1}.` }) }));
    const a = await open(t.keys.alice);
    const started = await a.request({ type: 'start_session', session_id: 'sticky', keep_alive_on_close: true }, 'session_started');
    expect(started.data.keepAliveOnClose).toBe(true);
    a.send({ type: 'text', text: 'one' });
    await a.next('turn_complete');
    const upstreams = t.emu.connections.length;
    a.close();
    await a.waitClose();
    await sleep(100);
    expect((await rest(t.keys.alice).list()).body.data.sessions.map((s: { sessionId: string }) => s.sessionId)).toEqual(['sticky']);

    const b = await open(t.keys.alice);
    const resumed = await b.request({ type: 'start_session', session_id: 'sticky', resume: true }, 'session_started');
    expect(resumed.data).toMatchObject({ sessionId: 'sticky', resumed: true, startTime: started.data.startTime });
    b.send({ type: 'text', text: 'two' });
    expect((await b.next('turn_complete')).data.response).toBe('Turn 2.');
    expect(t.emu.connections.length).toBe(upstreams); // same upstream conversation
    // resume on an id that is not live starts it.
    const fresh = await b.request({ type: 'start_session', session_id: 'not_there', resume: true }, 'session_started');
    expect(fresh.data.resumed).toBe(false);
    // ('sticky' was ended by that second start_session on this socket)
    expect(b.ofType('session_ended').map((m) => m.session_id)).toEqual(['sticky']);
  });

  it('resuming a session held by another socket takes it over: the old socket is told and gets nothing more', async () => {
    const a = await open(t.keys.alice);
    await a.request({ type: 'start_session', session_id: 'taken', keep_alive_on_close: true }, 'session_started');
    const b = await open(t.keys.alice);
    await b.request({ type: 'start_session', session_id: 'taken', resume: true }, 'session_started');
    expect(await a.next('session_detached')).toEqual({
      type: 'session_detached',
      session_id: 'taken',
      data: { sessionId: 'taken', reason: 'resumed_by_another_connection' },
    });
    b.send({ type: 'text', text: 'x' });
    await b.next('turn_complete');
    await sleep(100);
    expect(a.ofType('turn_complete')).toHaveLength(0);
    // Closing the old socket no longer affects the session.
    a.close();
    await a.waitClose();
    await sleep(100);
    expect(t.server.registry.size).toBe(1);
    const e = await b.request({ type: 'end_session' }, 'session_ended');
    expect(e.data.status).toBe('ended');
  });

  it('end_session can end another of the caller’s sessions by id; foreign ids look unknown', async () => {
    const r = await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: 'rest_made' });
    expect(r.status).toBe(200);
    const bob = await open(t.keys.bob);
    const foreign = await bob.request({ type: 'end_session', session_id: 'rest_made' }, 'session_ended');
    expect(foreign.data).toEqual({ sessionId: 'rest_made', status: 'not_found', message: 'Session not found or expired' });
    const alice = await open(t.keys.alice);
    const st = await alice.request({ type: 'get_status', session_id: 'rest_made' }, 'session_status');
    expect(st.data).toMatchObject({ status: 'active', transport: 'rest' });
    const ended = await alice.request({ type: 'end_session', session_id: 'rest_made' }, 'session_ended');
    expect(ended.data).toMatchObject({ sessionId: 'rest_made', status: 'ended', reason: 'client_end' });
    const again = await alice.request({ type: 'end_session', session_id: 'rest_made' }, 'session_ended');
    expect(again.data).toMatchObject({ status: 'ended', alreadyEnded: true });
  });

  it('per-user session caps apply across REST and WS, with retryAfter', async () => {
    await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.bob).send({ session_id: 'cap_rest' }).expect(200);
    const a = await open(t.keys.bob);
    await a.request({ type: 'start_session', session_id: 'cap_ws' }, 'session_started');
    const b = await open(t.keys.bob);
    const e = await b.request({ type: 'start_session', session_id: 'cap_ws_2' }, 'error');
    expect(e).toMatchObject({ code: 'TOO_MANY_USER_SESSIONS', session_id: 'cap_ws_2' });
    expect(e.retryAfter).toBeGreaterThanOrEqual(1);
    await rest(t.keys.bob).end('cap_rest');
  });
});

describe('WebSocket session expiry and server shutdown', () => {
  it('pushes session_ended with status expired when the session reaches its maximum age', async () => {
    const t = await startTestServer({ env: { LIVE_AUDIO_SESSION_MAX_MS: '1000' } });
    try {
      const c = await connectAuthed(t.url, t.keys.alice);
      await c.request({ type: 'start_session', session_id: 'short_lived' }, 'session_started');
      const ended = await c.next('session_ended', () => true, 3000);
      expect(ended).toMatchObject({ session_id: 'short_lived', data: { status: 'expired', reason: 'expired' } });
      expect((await c.request(pcmChunk(), 'error')).code).toBe('NO_ACTIVE_SESSION');
      c.close();
    } finally {
      await t.close();
    }
  });

  it('server.close() ends every session (session_ended) and closes every socket with 1001', async () => {
    const t = await startTestServer();
    const a = await connectAuthed(t.url, t.keys.alice);
    const b = await connectAuthed(t.url, t.keys.bob);
    const idle = await connectAuthed(t.url, t.keys.alice);
    await a.request({ type: 'start_session', session_id: 'shutdown_a', keep_alive_on_close: true }, 'session_started');
    await b.request({ type: 'start_session', session_id: 'shutdown_b' }, 'session_started');
    const closing = t.close();
    const [ca, cb, ci] = await Promise.all([a.waitClose(), b.waitClose(), idle.waitClose()]);
    await closing;
    for (const info of [ca, cb, ci]) expect(info).toEqual({ code: 1001, reason: 'Server shutting down' });
    expect(a.ofType('session_ended')[0]).toMatchObject({ data: { reason: 'server_shutdown' } });
    expect(b.ofType('session_ended')[0]).toMatchObject({ data: { reason: 'server_shutdown' } });
    expect(t.server.registry.size).toBe(0);
    expect(t.server.liveAudioWs.connections).toBe(0);
  });
});

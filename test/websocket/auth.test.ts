/**
 * `/ws/live-audio` authentication (README "WebSocket API", fixed): every way in, every way it fails, the per-user
 * connection cap and the Origin check — with real `ws` clients against the in-process server.
 */
import net from 'node:net';
import pino from 'pino';
import request from 'supertest';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connect, connectAuthed, connectRefused, wsUrl, type WsTestClient } from '../helpers/ws-test-client';
import { LogCapture } from '../helpers/log-capture';

const AUTH_TIMEOUT_MS = 400;

describe('WebSocket authentication', () => {
  let t: TestServer;
  const log = new LogCapture();
  const open: WsTestClient[] = [];
  const track = (c: WsTestClient) => (open.push(c), c);

  beforeAll(async () => {
    t = await startTestServer({
      env: { LIVE_AUDIO_AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS), LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: '2' },
      overrides: { logger: pino({ level: 'debug' }, log) },
    });
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    // Let the server see the closes before the next test counts connections.
    await t.emu.waitFor(() => t.server.liveAudioWs.connections === 0, 3000);
  });
  afterAll(async () => {
    await t.close();
  });

  it('sends connected with required_auth first, then exactly one auth_success for a query API key', async () => {
    const c = track(await connect(wsUrl(t.url, { token: t.keys.alice })));
    await c.next('auth_success');
    expect(c.messages[0]).toMatchObject({ type: 'connected', required_auth: true, authenticated: true });
    expect(c.messages[1]).toEqual({ type: 'auth_success', message: 'Authentication successful', user: { id: 'key:alice', username: 'alice' } });
    c.send({ type: 'get_rate_limits' });
    await c.next('rate_limit_status');
    expect(c.ofType('auth_success')).toHaveLength(1);
  });

  it('accepts a JWT in the query, and honours auth_type', async () => {
    const jwt = t.jwtFor(7, 'grace');
    const a = track(await connectAuthed(t.url, jwt));
    expect(a.ofType('auth_success')[0].user).toEqual({ id: 7, username: 'grace' });

    const b = track(await connect(wsUrl(t.url, { token: t.keys.bob, auth_type: 'api_key' })));
    expect((await b.next('auth_success')).user.username).toBe('bob');

    // auth_type=bearer makes an ak_ key a (bad) JWT: refused before the upgrade, with the REST body.
    const refused = await connectRefused(wsUrl(t.url, { token: t.keys.bob, auth_type: 'bearer' }));
    expect(refused).toEqual({ status: 401, body: { success: false, error: 'Invalid token', code: 'INVALID_TOKEN' } });
  });

  it('accepts X-API-Key and Authorization: Bearer headers on the upgrade', async () => {
    const a = track(await connect(wsUrl(t.url), { headers: { 'X-API-Key': t.keys.alice } }));
    expect((await a.next('auth_success')).user.username).toBe('alice');
    const b = track(await connect(wsUrl(t.url), { headers: { Authorization: `Bearer ${t.jwtFor(9, 'ida')}` } }));
    expect((await b.next('auth_success')).user).toEqual({ id: 9, username: 'ida' });
  });

  it('refuses bad header and query credentials before the upgrade with the REST 401 bodies', async () => {
    const badKey = `ak_${'0'.repeat(64)}`;
    expect(await connectRefused(wsUrl(t.url, { token: badKey }))).toEqual({
      status: 401,
      body: { success: false, error: 'Invalid API key', code: 'INVALID_API_KEY' },
    });
    expect(await connectRefused(wsUrl(t.url), { headers: { 'X-API-Key': 'AIzaSyNotOurKeyAtAll0123456789' } })).toEqual({
      status: 401,
      body: { success: false, error: 'Invalid API key', code: 'INVALID_API_KEY' },
    });
    expect(await connectRefused(wsUrl(t.url), { headers: { Authorization: 'Bearer not.a.jwt' } })).toEqual({
      status: 401,
      body: { success: false, error: 'Invalid token', code: 'INVALID_TOKEN' },
    });
    // REST says the same for the same credential.
    const rest = await request(t.url).get('/api/v1/live-audio/sessions').set('X-API-Key', badKey);
    expect(rest.status).toBe(401);
    expect(rest.body).toEqual({ success: false, error: 'Invalid API key', code: 'INVALID_API_KEY' });
    expect(t.server.liveAudioWs.connections).toBe(0);
  });

  it.each([
    ['auth (auto-detected API key)', (t: TestServer) => ({ type: 'auth', token: t.keys.alice }), 'alice'],
    ['auth with auth_type', (t: TestServer) => ({ type: 'auth', token: t.keys.alice, auth_type: 'api_key' }), 'alice'],
    ['auth with token_type bearer', (t: TestServer) => ({ type: 'auth', token: t.jwtFor(3, 'carol'), token_type: 'bearer' }), 'carol'],
    ['auth (auto-detected JWT)', (t: TestServer) => ({ type: 'auth', token: t.jwtFor(4, 'dave') }), 'dave'],
    // The old docs' {"type":"auth","token":…,"type":"api_key"} collapses to this:
    ['legacy api_key', (t: TestServer) => ({ type: 'api_key', token: t.keys.bob }), 'bob'],
    ['legacy bearer', (t: TestServer) => ({ type: 'bearer', token: t.jwtFor(5, 'erin') }), 'erin'],
  ])('authenticates with a first message: %s', async (_name, make, username) => {
    const c = track(await connect(wsUrl(t.url)));
    const connected = await c.next('connected');
    expect(connected).toMatchObject({ required_auth: true, authenticated: false });
    const ok = await c.request(make(t), 'auth_success');
    expect(ok.user.username).toBe(username);
    expect(ok.message).toBe('Authentication successful');
  });

  it('also parses the literal duplicate-key JSON from the old docs', async () => {
    const c = track(await connect(wsUrl(t.url)));
    await c.next('connected');
    c.send(`{"type":"auth","token":"${t.keys.alice}","type":"api_key"}`);
    expect((await c.next('auth_success')).user.username).toBe('alice');
  });

  it('closes a socket whose first frame is not an auth message: 1008, no reply built', async () => {
    const c = track(await connect(wsUrl(t.url)));
    await c.next('connected');
    c.send({ type: 'start_session', session_id: 'x1' });
    expect(await c.waitClose()).toEqual({ code: 1008, reason: 'Authentication required' });
    expect(c.messages.map((m) => m.type)).toEqual(['connected']);
  });

  it('messages queued behind a pending auth are handled after it (no spurious auth_required)', async () => {
    const c = track(await connect(wsUrl(t.url)));
    await c.next('connected');
    c.send({ type: 'auth', token: t.keys.alice });
    c.send({ type: 'get_rate_limits' });
    await c.next('rate_limit_status');
    expect(c.ofType('auth_required')).toHaveLength(0);
  });

  it('refuses a bad auth message with auth_failed and close 1008', async () => {
    const c = track(await connect(wsUrl(t.url)));
    await c.next('connected');
    const f = await c.request({ type: 'auth', token: `ak_${'1'.repeat(64)}` }, 'auth_failed');
    expect(f).toEqual({ type: 'auth_failed', error: 'Invalid authentication credentials', code: 'INVALID_API_KEY' });
    expect(await c.waitClose()).toEqual({ code: 1008, reason: 'Authentication failed' });
  });

  it('ignores a second auth message: no second auth_success and no double count', async () => {
    const c = track(await connectAuthed(t.url, t.keys.alice));
    const e = await c.request({ type: 'auth', token: t.keys.alice }, 'error');
    expect(e.code).toBe('ALREADY_AUTHENTICATED');
    expect(c.ofType('auth_success')).toHaveLength(1);
    // Cap is 2: one more alice socket still fits, so the second auth did not take a slot.
    const d = track(await connectAuthed(t.url, t.keys.alice));
    expect(d.ofType('auth_success')).toHaveLength(1);
  });

  it('closes an unauthenticated socket with auth_timeout and 1008', async () => {
    const c = track(await connect(wsUrl(t.url)));
    const started = Date.now();
    const m = await c.next('auth_timeout', () => true, AUTH_TIMEOUT_MS + 2000);
    expect(m.error).toMatch(/^Authentication required within 0\.4 seconds$/);
    expect(await c.waitClose()).toEqual({ code: 1008, reason: 'Authentication timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 50);
  });

  it('does not time out a socket that authenticated (pre-auth arms no auth timer)', async () => {
    const c = track(await connectAuthed(t.url, t.keys.alice));
    await sleep(AUTH_TIMEOUT_MS + 200);
    expect(c.closeInfo).toBeUndefined();
    await c.request({ type: 'ping' }, 'pong');
  });

  it('caps connections per user on every auth path and releases slots on close', async () => {
    const a = track(await connectAuthed(t.url, t.keys.alice)); // query pre-auth
    const b = track(await connect(wsUrl(t.url)));
    await b.request({ type: 'auth', token: t.keys.alice }, 'auth_success'); // message auth
    const c = track(await connect(wsUrl(t.url), { headers: { 'X-API-Key': t.keys.alice } }));
    const f = await c.next('auth_failed');
    expect(f).toEqual({ type: 'auth_failed', error: 'Maximum 2 connections per user exceeded', code: 'CONNECTION_LIMIT' });
    expect(await c.waitClose()).toEqual({ code: 1008, reason: 'Connection limit exceeded' });
    // Another user is not affected.
    track(await connectAuthed(t.url, t.keys.bob));
    // A refused socket released nothing it did not hold; closing one of alice's frees exactly one slot.
    a.close();
    await a.waitClose();
    await t.emu.waitFor(() => t.server.liveAudioWs.connections === 2, 2000);
    const d = track(await connectAuthed(t.url, t.keys.alice));
    expect(d.ofType('auth_success')).toHaveLength(1);
  });

  it('checks the Origin like CORS: allowlisted and no-Origin clients in, others refused with 403', async () => {
    const ok = track(await connect(wsUrl(t.url, { token: t.keys.alice }), { headers: { Origin: 'https://app.example.com' } }));
    await ok.next('auth_success');
    const refused = await connectRefused(wsUrl(t.url, { token: t.keys.bob }), { headers: { Origin: 'https://evil.example.net' } });
    expect(refused).toEqual({ status: 403, body: { success: false, error: 'Origin not allowed', code: 'CORS_ORIGIN_DENIED' } });
  });

  it('answers 404 for upgrades on other paths and keeps serving', async () => {
    const r = await connectRefused(wsUrl(t.url, {}, '/ws/other'));
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ success: false, code: 'NOT_FOUND' });
    // The path matches exactly; a query string is fine.
    const c = track(await connect(`${wsUrl(t.url)}?foo=bar&token=${t.keys.alice}`));
    await c.next('auth_success');
  });

  it('survives a raw upgrade request with a broken handshake', async () => {
    const sock = net.connect(t.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET /ws/live-audio?token=${t.keys.alice} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    const answer = await new Promise<string>((resolve) => {
      let s = '';
      sock.on('data', (d) => (s += d.toString()));
      sock.on('close', () => resolve(s));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    const c = track(await connectAuthed(t.url, t.keys.alice));
    expect(c.closeInfo).toBeUndefined();
  });

  it('never writes the credentials to the log', () => {
    const all = log.text;
    expect(all).toContain('websocket authenticated');
    expect(all).not.toContain(t.keys.alice);
    expect(all).not.toContain(t.keys.bob);
    expect(all).not.toMatch(/eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+/);
  });
});

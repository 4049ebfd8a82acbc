/**
 * Sessions made through a dialect are ordinary sessions (issue 17 "What must work" 2): ended by the idle and
 * maximum-age timers (short values through config), held to the per-key session cap, metered in the caller's usage,
 * resumable (an Elk socket continues a session by id), counted in the one per-user connection cap shared with
 * `/ws/live-audio`.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { connect, connectRefused, dialectUrl, type WsTestClient } from './dialect-helpers';

const API = '/api/v1/live-audio';

describe('dialect sessions are ordinary sessions', () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];

  beforeAll(async () => {
    t = await startTestServer({
      env: {
        LIVE_AUDIO_IDLE_TIMEOUT_MS: '1500',
        LIVE_AUDIO_SESSION_MAX_MS: '4000',
        LIVE_AUDIO_MAX_SESSIONS_PER_USER: '2',
        LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: '3',
      },
    });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'Noted.' } }));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0, 8000);
  });
  afterAll(async () => {
    await t.close();
  });

  async function open(path: string, token = t.keys.alice): Promise<WsTestClient> {
    const c = await connect(dialectUrl(t.url, path, token));
    clients.push(c);
    return c;
  }

  it('the idle timer ends a voice pipeline session: error in its shape, then the socket closes', async () => {
    const c = await open('/ws');
    await c.next('status', (m) => m.data === 'connected', 8000);
    const started = Date.now();
    const err = await c.next('error', () => true, 8000);
    expect(err.data).toMatch(/idle_timeout/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    await c.waitClose(3000);
  }, 20000);

  it('the maximum age ends an Elk session that keeps talking', async () => {
    const c = await open('/api/ai/gemini/realtime');
    c.send({ type: 'initialize_session' });
    const init = await c.next('session_initialized', () => true, 8000);
    const timer = setInterval(() => c.send({ type: 'send_text', text: 'still here' }), 500);
    try {
      const err = await c.next('error', (m) => m.code === 'SESSION_ENDED', 10000);
      expect(err.error).toMatch(/expired/);
    } finally {
      clearInterval(timer);
    }
    const status = await request(t.url).get(`${API}/session/${init.sessionId}/status`).set('X-API-Key', t.keys.alice);
    expect(status.body.data).toMatchObject({ status: 'expired' });
  }, 20000);

  it('the per-key session cap and the shared connection cap hold across dialects; usage is metered', async () => {
    const a = await open('/api/ai/gemini/realtime');
    a.send({ type: 'initialize_session' });
    await a.next('session_initialized', () => true, 8000);
    a.send({ type: 'send_text', text: 'Hello there' });
    await a.next('complete', () => true, 8000);
    const b = await open('/ws/audio-live');
    await b.next('ready', () => true, 8000);
    // Two sessions: the third start (any dialect) is refused in that dialect's error shape.
    const c = await open('/ws');
    const refused = await c.next('error', () => true, 8000);
    expect(refused.data).toMatch(/session/i);
    await c.waitClose(3000);
    // Three connections of alice's are open (a, b, d): a fourth is refused, on a dialect and on our own protocol.
    const d = await open('/ws/interview');
    const e = await connectRefused(dialectUrl(t.url, '/ws/audio-live', t.keys.alice));
    expect(e.status).toBe(429);
    expect(e.body).toMatchObject({ code: 'CONNECTION_LIMIT' });
    const ours = await open('/ws/live-audio');
    expect(await ours.next('auth_failed')).toMatchObject({ code: 'CONNECTION_LIMIT' });
    d.close();
    await d.waitClose(3000);
    // One closed: our own protocol gets its place.
    const again = await open('/ws/live-audio');
    await again.next('auth_success');
    // Metered: the Elk turn's tokens are in alice's usage.
    const usage = await request(t.url).get(`${API}/usage`).set('X-API-Key', t.keys.alice);
    expect(usage.body.data.today.tokens.totalTokens).toBeGreaterThan(0);
  }, 30000);

  it('an Elk socket resumes the caller’s session by id after its first socket went away (HTTP-made session)', async () => {
    const init = await request(t.url).post('/api/ai/gemini/initialize').set('X-API-Key', t.keys.alice).send({});
    const sessionId = init.body.sessionId as string;
    const first = await open('/api/ai/gemini/realtime');
    first.send({ type: 'initialize_session', sessionId });
    await first.next('session_initialized', () => true, 8000);
    first.close();
    await first.waitClose(3000);
    const second = await open('/api/ai/gemini/realtime');
    second.send({ type: 'initialize_session', sessionId });
    await second.next('session_initialized', (m) => m.sessionId === sessionId, 8000);
    second.send({ type: 'send_text', text: 'Are you still there?' });
    expect(await second.next('complete', () => true, 8000)).toMatchObject({ response: 'Noted.' });
  }, 20000);
});

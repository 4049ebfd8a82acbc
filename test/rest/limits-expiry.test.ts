import request from 'supertest';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';
const pcm = Buffer.alloc(3200).toString('base64');

describe('session caps', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_MAX_SESSIONS_PER_USER: '2', LIVE_AUDIO_MAX_CONCURRENT_SESSIONS: '3' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('caps live sessions per user and globally with 429 and Retry-After', async () => {
    const start = (key: string, id: string) => request(t.url).post(`${API}/session/start`).set('X-API-Key', key).send({ session_id: id });
    expect((await start(t.keys.alice, 'a1')).status).toBe(200);
    expect((await start(t.keys.alice, 'a2')).status).toBe(200);
    const third = await start(t.keys.alice, 'a3');
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ success: false, code: 'TOO_MANY_USER_SESSIONS' });
    expect(Number(third.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(third.body.retryAfter).toBe(Number(third.headers['retry-after']));

    // Restarting an id the user already has is not a new slot.
    expect((await start(t.keys.alice, 'a2')).status).toBe(200);

    expect((await start(t.keys.bob, 'b1')).status).toBe(200);
    const global = await start(t.keys.bob, 'b2');
    expect(global.status).toBe(429);
    expect(global.body.code).toBe('TOO_MANY_SESSIONS');
    expect(global.headers['retry-after']).toBeDefined();

    // Ending one frees a slot.
    await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys.alice).send({ session_id: 'a1' });
    expect((await start(t.keys.bob, 'b2')).status).toBe(200);
  });

  it('parallel starts cannot overshoot the cap', async () => {
    await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys.alice).send({ session_id: 'a2' });
    await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys.bob).send({ session_id: 'b1' });
    await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys.bob).send({ session_id: 'b2' });
    const results = await Promise.all(
      ['p1', 'p2', 'p3', 'p4', 'p5'].map((id) => request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: id })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(2);
    expect(results.filter((r) => r.status === 429)).toHaveLength(3);
    expect(t.server.registry.listFor('key:alice')).toHaveLength(2);
  });
});

describe('session expiry', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: { LIVE_AUDIO_SESSION_MAX_MS: '1500', LIVE_AUDIO_IDLE_TIMEOUT_MS: '1000', LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '50' },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('ends a session after its maximum age, by its own timer, even while audio flows', async () => {
    const h = { 'X-API-Key': t.keys.alice };
    await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'old' });
    const conn = t.emu.connections[t.emu.connections.length - 1];
    for (let i = 0; i < 3; i++) {
      expect((await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'old', audio_data: pcm, format: 'pcm' })).status).toBe(200);
      await sleep(400);
    }
    await sleep(500);
    const tr = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'old', audio_data: pcm, format: 'pcm' });
    expect(tr.status).toBe(404);
    expect(tr.body).toEqual({ success: false, error: 'Session not found or expired', code: 'SESSION_EXPIRED' });
    const st = await request(t.url).get(`${API}/session/old/status`).set(h);
    expect(st.body.data).toMatchObject({ sessionId: 'old', status: 'expired', reason: 'expired' });
    await t.emu.waitFor(() => conn.closed !== undefined, 2000);
    expect(t.server.registry.size).toBe(0);
  });

  it('ends a session after the idle timeout without audio', async () => {
    const h = { 'X-API-Key': t.keys.alice };
    await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'idle' });
    await sleep(1300);
    const st = await request(t.url).get(`${API}/session/idle/status`).set(h);
    expect(st.body.data).toMatchObject({ status: 'ended', reason: 'idle_timeout' });
    const list = await request(t.url).get(`${API}/sessions`).set(h);
    expect(list.body.data.count).toBe(0);
  });
});

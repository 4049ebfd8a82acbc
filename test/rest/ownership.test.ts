import request from 'supertest';
import { startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';
const pcm = Buffer.alloc(3200).toString('base64');

describe('session ownership', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '50' } });
  });
  afterAll(async () => {
    await t.close();
  });

  const as = (key: string) => ({ 'X-API-Key': key });

  it("nobody can see, feed, end or overwrite another user's session, and a foreign id looks unknown", async () => {
    const id = 'shared_id_1';
    expect((await request(t.url).post(`${API}/session/start`).set(as(t.keys.alice)).send({ session_id: id })).status).toBe(200);

    // Bob's view of Alice's id is exactly the view of an id nobody has.
    for (const probe of [id, 'never_used_id']) {
      const tr = await request(t.url).post(`${API}/transcribe`).set(as(t.keys.bob)).send({ session_id: probe, audio_data: pcm, format: 'pcm' });
      expect(tr.status).toBe(404);
      expect(tr.body).toEqual({ success: false, error: 'Session not found or expired', code: 'SESSION_NOT_FOUND' });
      const st = await request(t.url).get(`${API}/session/${probe}/status`).set(as(t.keys.bob));
      expect(st.status).toBe(200);
      expect(st.body).toEqual({ success: true, data: { sessionId: probe, status: 'not_found', message: 'Session not found or expired' } });
      const en = await request(t.url).post(`${API}/session/end`).set(as(t.keys.bob)).send({ session_id: probe });
      expect(en.status).toBe(200);
      expect(en.body).toEqual({ success: true, data: { sessionId: probe, status: 'not_found', message: 'Session not found or expired' } });
    }
    const list = await request(t.url).get(`${API}/sessions`).set(as(t.keys.bob));
    expect(list.body.data.sessions).toEqual([]);

    // Bob starting the same id gets his own session; Alice's is untouched.
    expect((await request(t.url).post(`${API}/session/start`).set(as(t.keys.bob)).send({ session_id: id })).status).toBe(200);
    const aliceStatus = await request(t.url).get(`${API}/session/${id}/status`).set(as(t.keys.alice));
    expect(aliceStatus.body.data.status).toBe('active');
    const aliceFeed = await request(t.url).post(`${API}/transcribe`).set(as(t.keys.alice)).send({ session_id: id, audio_data: pcm, format: 'pcm' });
    expect(aliceFeed.status).toBe(200);
    expect(t.server.registry.size).toBe(2);

    // A JWT user is yet another owner.
    const jwt = t.jwtFor(7, 'dave');
    const viaJwt = await request(t.url).get(`${API}/session/${id}/status`).set('Authorization', `Bearer ${jwt}`);
    expect(viaJwt.body.data.status).toBe('not_found');
  });

  it('restarting an id the same user already has closes the old upstream first', async () => {
    const id = 'restart_me';
    await request(t.url).post(`${API}/session/start`).set(as(t.keys.alice)).send({ session_id: id });
    const firstConn = t.emu.connections[t.emu.connections.length - 1];
    const again = await request(t.url).post(`${API}/session/start`).set(as(t.keys.alice)).send({ session_id: id });
    expect(again.status).toBe(200);
    await t.emu.waitFor(() => firstConn.closed !== undefined, 3000);
    expect(firstConn.closed).toBeDefined();
    expect(t.server.registry.listFor('key:alice').filter((s) => s.id === id)).toHaveLength(1);
  });

  it('ending is idempotent', async () => {
    const id = 'end_twice';
    await request(t.url).post(`${API}/session/start`).set(as(t.keys.alice)).send({ session_id: id });
    const first = await request(t.url).post(`${API}/session/end`).set(as(t.keys.alice)).send({ session_id: id });
    expect(first.body.data).toMatchObject({ sessionId: id, status: 'ended' });
    expect(typeof first.body.data.duration).toBe('number');
    const second = await request(t.url).post(`${API}/session/end`).set(as(t.keys.alice)).send({ session_id: id });
    expect(second.status).toBe(200);
    expect(second.body.data).toMatchObject({ sessionId: id, status: 'ended', alreadyEnded: true });
    const tr = await request(t.url).post(`${API}/transcribe`).set(as(t.keys.alice)).send({ session_id: id, audio_data: pcm, format: 'pcm' });
    expect(tr.status).toBe(404);
    expect(tr.body.code).toBe('SESSION_EXPIRED');
  });
});

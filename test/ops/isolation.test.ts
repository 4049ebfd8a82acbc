/**
 * One user cannot read, end or feed another user's session, by any REST route or WebSocket message.
 * Bob attacks Alice's session id with his API key, with a JWT, and over the WebSocket; Alice's session must
 * stay live, unfed (no chunk, no byte to her upstream connection) and unseen.
 */
import request from 'supertest';
import type { LiveSession } from '../../src/services/session/live-session';
import { loadRecording } from '../helpers/fixtures';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connect, wsUrl } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';
const ALICE_ID = 'session_1752000000000_alice01';
/** 1x1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082',
  'hex',
);

describe("cross-user isolation (every route and message)", () => {
  let t: TestServer;
  let alice: LiveSession;
  let aliceConnId: string;
  const rec = loadRecording('chromium-hello-1000ms');
  const pcm = Buffer.alloc(3200).toString('base64');

  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '50' } });
    const r = await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: ALICE_ID });
    expect(r.status).toBe(200);
    alice = t.server.registry.listFor('key:alice')[0];
    aliceConnId = t.emu.connections[t.emu.connections.length - 1].id;
  });
  afterAll(async () => {
    await t.close();
  });

  const aliceUntouched = async () => {
    await sleep(100);
    expect(alice.ended).toBe(false);
    const st = alice.status() as { audio: { chunks: number; bytesIn: number } };
    expect(st.audio.chunks).toBe(0);
    expect(st.audio.bytesIn).toBe(0);
    const conn = t.emu.connections.find((c) => c.id === aliceConnId)!;
    expect(conn.audioBytes).toBe(0);
    expect(conn.closed).toBeUndefined();
    expect(t.server.registry.listFor('key:alice')).toEqual([alice]);
  };

  const attackers = () => [
    { name: 'bob (API key)', h: { 'X-API-Key': t.keys.bob } },
    { name: 'dave (JWT)', h: { Authorization: `Bearer ${t.jwtFor(4, 'dave')}` } },
  ];

  it('REST: status, end, transcribe (every format) and the list never reach or reveal the session', async () => {
    for (const { h } of attackers()) {
      const st = await request(t.url).get(`${API}/session/${ALICE_ID}/status`).set(h);
      expect(st.status).toBe(200);
      expect(st.body).toEqual({ success: true, data: { sessionId: ALICE_ID, status: 'not_found', message: 'Session not found or expired' } });

      const list = await request(t.url).get(`${API}/sessions`).set(h);
      expect(JSON.stringify(list.body)).not.toContain(ALICE_ID);

      for (const audio of [
        { audio_data: rec.chunks[0].toString('base64'), format: 'webm' },
        { audio_data: pcm, format: 'pcm' },
        { audio_data: `data:audio/webm;base64,${rec.chunks[1].toString('base64')}` },
      ]) {
        const tr = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: ALICE_ID, ...audio });
        expect(tr.status).toBe(404);
        expect(tr.body).toEqual({ success: false, error: 'Session not found or expired', code: 'SESSION_NOT_FOUND' });
      }
      const end = await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: ALICE_ID });
      expect(end.status).toBe(200);
      expect(end.body.data.status).toBe('not_found');
    }
    await aliceUntouched();
  });

  it('REST: starting the same id (both start routes) creates the attacker’s own session, then ending it leaves Alice’s alone', async () => {
    for (const route of ['session/start', 'streaming/start']) {
      const r = await request(t.url).post(`${API}/${route}`).set('X-API-Key', t.keys.bob).send({ session_id: ALICE_ID });
      expect(r.status).toBe(200);
      const bobs = t.server.registry.listFor('key:bob');
      expect(bobs).toHaveLength(1);
      expect(bobs[0]).not.toBe(alice);
      const fed = await request(t.url).post(`${API}/transcribe`).set('X-API-Key', t.keys.bob).send({ session_id: ALICE_ID, audio_data: pcm, format: 'pcm' });
      expect(fed.status).toBe(200);
      await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys.bob).send({ session_id: ALICE_ID });
      expect(t.server.registry.listFor('key:bob')).toHaveLength(0);
    }
    await aliceUntouched();
  });

  it('WebSocket: status, resume, audio, text, image, interrupt and end aimed at the id never reach the session', async () => {
    const bob = await connect(wsUrl(t.url, { token: t.keys.bob }));
    try {
      await bob.waitFor((m) => m.type === 'auth_success');
      // Status of a foreign id: not found.
      const st = await bob.ask({ type: 'get_status', session_id: ALICE_ID }, ['session_status', 'error']);
      expect(st.type).toBe('session_status');
      // Bob's own earlier session with this id (test above) may show as ended; Alice's never shows.
      expect(['not_found', 'ended']).toContain((st.data as { status?: string }).status);
      expect(JSON.stringify(st)).not.toContain(alice.startTime.toISOString());
      // Ending a foreign id: never ends Alice's.
      await bob.ask({ type: 'end_session', session_id: ALICE_ID }, ['session_ended', 'error']).catch(() => undefined);
      // Audio / text / image / interrupt without a session of his own, naming her id.
      bob.sendIfOpen({ type: 'audio_chunk', session_id: ALICE_ID, audio_data: rec.chunks[0].toString('base64'), format: 'webm' });
      bob.sendIfOpen({ type: 'text', session_id: ALICE_ID, text: 'hello' });
      bob.sendIfOpen({ type: 'image', session_id: ALICE_ID, image_data: PNG.toString('base64'), mime_type: 'image/png' });
      bob.sendIfOpen({ type: 'interrupt', session_id: ALICE_ID });
      await sleep(200);
      await aliceUntouched();

      // Resuming her id attaches nothing of hers: Bob gets a session of his own.
      const started = await bob.ask({ type: 'start_session', session_id: ALICE_ID, resume: true }, ['session_started', 'error'], 8000);
      expect(started.type).toBe('session_started');
      const bobs = t.server.registry.listFor('key:bob');
      expect(bobs).toHaveLength(1);
      expect(bobs[0]).not.toBe(alice);
      bob.sendIfOpen({ type: 'audio_chunk', session_id: ALICE_ID, audio_data: rec.chunks[0].toString('base64'), format: 'webm' });
      bob.sendIfOpen({ type: 'interrupt' });
      await bob.ask({ type: 'end_session', session_id: ALICE_ID }, ['session_ended']);
      await sleep(200);
      expect(t.server.registry.listFor('key:bob')).toHaveLength(0);
      await aliceUntouched();
    } finally {
      await bob.close();
    }
  });

  it('the owner still has full use of the session afterwards', async () => {
    const r = await request(t.url).post(`${API}/transcribe`).set('X-API-Key', t.keys.alice).send({ session_id: ALICE_ID, audio_data: pcm, format: 'pcm' });
    expect(r.status).toBe(200);
    const st = await request(t.url).get(`${API}/session/${ALICE_ID}/status`).set('X-API-Key', t.keys.alice);
    expect(st.body.data).toMatchObject({ sessionId: ALICE_ID, status: 'active' });
    expect(st.body.data.audio.chunks).toBe(1);
  });
});

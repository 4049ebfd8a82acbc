/**
 * `/ws/live-audio` connection hygiene: schema validation, malformed and oversized frames, heartbeat expiry,
 * inactivity timeout, per-user message and audio rate limits.
 */
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connect, connectAuthed, wsUrl, type WsTestClient } from '../helpers/ws-test-client';

const MAX_PAYLOAD = 64 * 1024;

describe('WebSocket message validation and frames', () => {
  let t: TestServer;
  let c: WsTestClient;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_WS_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD) } });
  });
  beforeEach(async () => {
    c = await connectAuthed(t.url, t.keys.alice);
  });
  afterEach(() => c.close());
  afterAll(async () => {
    await t.close();
  });

  /** After every refused message the socket still answers. */
  async function stillServes(client = c) {
    await client.request({ type: 'ping' }, 'pong');
    expect(client.closeInfo).toBeUndefined();
  }

  it('names an unknown message type', async () => {
    const e = await c.request({ type: 'subscribe_everything' }, 'error');
    expect(e).toEqual({
      type: 'error',
      error: 'Unknown message type: subscribe_everything',
      code: 'UNKNOWN_MESSAGE_TYPE',
      message_type: 'subscribe_everything',
    });
    await stillServes();
  });

  it('refuses invalid JSON, non-objects and a missing or non-string type', async () => {
    expect(await c.request('{"type":"audio_chunk",', 'error')).toMatchObject({ code: 'INVALID_JSON' });
    expect(await c.request('[1,2,3]', 'error')).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await c.request('42', 'error')).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await c.request({ audio_data: 'AAAA' }, 'error')).toMatchObject({ code: 'MISSING_FIELD', error: 'Missing required field: type' });
    expect(await c.request({ type: 7 }, 'error')).toMatchObject({ code: 'INVALID_FIELD', fields: ['type'] });
    await stillServes();
  });

  it('names missing and bad fields', async () => {
    const missing = await c.request({ type: 'audio_chunk', format: 'webm' }, 'error');
    expect(missing).toMatchObject({ code: 'MISSING_FIELD', error: 'Missing required field: audio_data', fields: ['audio_data'], message_type: 'audio_chunk' });

    const bad = await c.request({ type: 'start_session', session_id: 's1', response_modality: 'video', input_transcription: 'yes' }, 'error');
    expect(bad.code).toBe('INVALID_FIELD');
    // The per-session options are checked by the session door (the same schema and error as REST's 400).
    expect(bad.fields).toEqual(['response_modality', 'input_transcription']);
    expect(bad.error).toMatch(/^Invalid session options: response_modality .*; input_transcription /);

    const badType = await c.request({ type: 'audio_chunk', audio_data: 12345 }, 'error');
    expect(badType).toMatchObject({ code: 'INVALID_FIELD', fields: ['audio_data'], error: 'Invalid field in audio_chunk: audio_data must be a string' });

    const text = await c.request({ type: 'text', text: '   ' }, 'error');
    expect(text).toMatchObject({ code: 'INVALID_FIELD', fields: ['text'] });

    const id = await c.request({ type: 'start_session', session_id: 'has spaces!' }, 'error');
    expect(id).toMatchObject({ code: 'INVALID_SESSION_ID' });
    await stillServes();
  });

  it('needs a session for session messages and says so', async () => {
    for (const m of [{ type: 'audio_chunk', audio_data: 'AAAA' }, { type: 'text', text: 'hi' }, { type: 'interrupt' }]) {
      const e = await c.request(m, 'error');
      expect(e).toMatchObject({ code: 'NO_ACTIVE_SESSION', error: 'No active session. Please start a session first.' });
    }
    // end_session without a session answers (the old backend stayed silent).
    const ended = await c.request({ type: 'end_session' }, 'session_ended');
    expect(ended).toEqual({ type: 'session_ended', session_id: null, data: { sessionId: null, status: 'not_found', message: 'No active session' } });
    const status = await c.request({ type: 'get_status' }, 'session_status');
    expect(status.session_id).toBeNull();
    expect(status.data.status).toBe('not_found');
    expect(status.data.rateLimits.messages.limit).toBe(600);
    await stillServes();
  });

  it('accepts JSON in binary frames like the old backend did', async () => {
    c.ws.send(Buffer.from(JSON.stringify({ type: 'ping' })), { binary: true });
    await c.next('pong');
    c.ws.send(Buffer.from([0xff, 0xfe, 0x00]), { binary: true });
    expect(await c.next('error')).toMatchObject({ code: 'INVALID_JSON' });
    await stillServes();
  });

  it('closes with 1009 on a frame over maxPayload, before parsing or authenticating it', async () => {
    const big = JSON.stringify({ type: 'audio_chunk', audio_data: 'A'.repeat(MAX_PAYLOAD) });
    c.send(big);
    expect((await c.waitClose()).code).toBe(1009);

    // Unauthenticated: refused from its header by the pre-auth frame filter (1008), never buffered or parsed.
    const anon = await connect(wsUrl(t.url));
    await anon.next('connected');
    anon.send('x'.repeat(MAX_PAYLOAD + 1));
    expect(await anon.waitClose()).toEqual({ code: 1008, reason: 'Message too large before authentication' });
    expect(anon.messages.map((m) => m.type)).toEqual(['connected']);

    // Just under the limit is fine.
    const d = await connectAuthed(t.url, t.keys.alice);
    d.send(JSON.stringify({ type: 'ping', pad: 'p'.repeat(MAX_PAYLOAD - 100) }));
    await d.next('pong');
    d.close();
  });

  it('never crashes on hostile input', async () => {
    const junk: unknown[] = [
      null,
      'null',
      '"str"',
      { type: 'start_session', session_id: { $gt: '' } },
      { type: 'audio_chunk', audio_data: '!!!not base64!!!' },
      { type: '__proto__' },
      { type: 'constructor' },
      { type: 'toString' },
      JSON.parse('{"type":"get_status","__proto__":{"polluted":1}}'),
      { type: 'image', image_data: 'AAAA' },
      { type: 'get_status', session_id: '../../etc/passwd' },
    ];
    for (const j of junk) c.send(j === null ? 'null' : j);
    await stillServes();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const codes = c.ofType('error').map((e) => e.code);
    expect(codes).toEqual([
      'INVALID_MESSAGE',
      'INVALID_MESSAGE',
      'INVALID_MESSAGE',
      'INVALID_FIELD',
      'NO_ACTIVE_SESSION',
      'UNKNOWN_MESSAGE_TYPE',
      'UNKNOWN_MESSAGE_TYPE',
      'UNKNOWN_MESSAGE_TYPE',
      'NO_ACTIVE_SESSION',
      'INVALID_SESSION_ID',
    ]);
  });
});

describe('WebSocket heartbeat and inactivity', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: { LIVE_AUDIO_WS_PING_INTERVAL_MS: '100', LIVE_AUDIO_INACTIVITY_TIMEOUT_MS: '700' },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('pings a live client, which stays connected', async () => {
    const c = await connectAuthed(t.url, t.keys.alice);
    let pings = 0;
    c.ws.on('ping', () => pings++);
    await sleep(500);
    expect(pings).toBeGreaterThanOrEqual(3);
    expect(c.closeInfo).toBeUndefined();
    c.close();
  });

  it('terminates a client that stops answering pings after two missed pongs, and ends its session', async () => {
    const c = await connectAuthed(t.url, t.keys.alice, { autoPong: false });
    await c.request({ type: 'start_session', session_id: 'hb_1' }, 'session_started');
    const started = Date.now();
    const info = await c.waitClose(3000);
    expect(info.code).toBe(1006); // terminated, no close frame
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(150);
    expect(elapsed).toBeLessThan(1500);
    await t.emu.waitFor(() => t.server.registry.size === 0, 2000);
  });

  it('closes an idle authenticated socket with inactivity_timeout and 1000; messages keep it alive', async () => {
    const c = await connectAuthed(t.url, t.keys.alice);
    for (let i = 0; i < 4; i++) {
      await sleep(300);
      await c.request({ type: 'ping' }, 'pong');
    }
    expect(c.closeInfo).toBeUndefined();
    const m = await c.next('inactivity_timeout', () => true, 2000);
    expect(m.error).toBe('Connection closed due to inactivity');
    expect(await c.waitClose()).toEqual({ code: 1000, reason: 'Inactivity timeout' });
  });
});

describe('WebSocket rate limits', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: { LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '10', LIVE_AUDIO_MAX_AUDIO_BYTES_PER_MINUTE: '20000' },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('drops messages over the per-user limit with rate_limit_exceeded and keeps the socket', async () => {
    const a = await connectAuthed(t.url, t.keys.alice);
    const b = await connectAuthed(t.url, t.keys.alice); // same user: same window
    for (let i = 0; i < 6; i++) a.send({ type: 'ping' });
    for (let i = 0; i < 6; i++) b.send({ type: 'ping' });
    await b.until(() => a.ofType('pong').length + a.ofType('rate_limit_exceeded').length === 6 && b.ofType('pong').length + b.ofType('rate_limit_exceeded').length === 6);
    expect(a.ofType('pong').length + b.ofType('pong').length).toBe(10);
    const rl = [...a.ofType('rate_limit_exceeded'), ...b.ofType('rate_limit_exceeded')];
    expect(rl).toHaveLength(2);
    expect(rl[0]).toMatchObject({ error: 'Message rate limit exceeded. Please slow down.', code: 'MESSAGE_RATE_LIMITED' });
    expect(rl[0].retryAfter).toBeGreaterThanOrEqual(1);
    expect(rl[0].retryAfter).toBeLessThanOrEqual(60);
    expect(a.closeInfo).toBeUndefined();

    // Another user has their own window; get_rate_limits reports the counters (README "Operations" shape).
    const c = await connectAuthed(t.url, t.keys.bob);
    const st = await c.request({ type: 'get_rate_limits' }, 'rate_limit_status');
    expect(st.data.messages).toMatchObject({ count: 1, limit: 10, remaining: 9 });
    expect(st.data.audioBytes).toMatchObject({ totalBytes: 0, limit: 20000, remaining: 20000 });
    for (const x of [a, b, c]) x.close();
  });

  it('limits audio bytes per user', async () => {
    const c = await connectAuthed(t.url, t.keys.bob);
    await c.request({ type: 'start_session', session_id: 'rl_audio', response_modality: 'text' }, 'session_started');
    const pcm = Buffer.alloc(12000).toString('base64'); // ~12 kB each
    c.send({ type: 'audio_chunk', audio_data: pcm, format: 'pcm', sample_rate: 16000 });
    c.send({ type: 'audio_chunk', audio_data: pcm, format: 'pcm', sample_rate: 16000 });
    const rl = await c.next('rate_limit_exceeded');
    expect(rl).toMatchObject({ error: 'Audio data rate limit exceeded. Please reduce audio frequency.', code: 'AUDIO_RATE_LIMITED' });
    const st = await c.request({ type: 'get_status' }, 'session_status');
    expect(st.data.rateLimits.audioBytes.totalBytes).toBe(12000);
    expect(st.data.audio.bytesIn).toBe(12000);
    c.close();
  });
});

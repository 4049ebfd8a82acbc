import request from 'supertest';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connect, type WsTestClient, wsUrl } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';
const second = Buffer.alloc(32000).toString('base64'); // 1 s of 16 kHz mono s16le

const expect429 = (r: request.Response, code: string) => {
  expect(r.status).toBe(429);
  expect(r.headers['content-type']).toMatch(/json/);
  expect(r.body).toMatchObject({ success: false, code });
  expect(typeof r.body.error).toBe('string');
  const ra = Number(r.headers['retry-after']);
  expect(ra).toBeGreaterThanOrEqual(1);
  expect(ra).toBeLessThanOrEqual(60);
  expect(r.body.retryAfter).toBe(ra);
};

describe('per-user HTTP limits', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: {
        LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '12',
        LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '3',
        LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '2',
        LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
      },
    });
  });
  afterAll(async () => {
    await t.close();
  });
  const as = (key: string) => ({ 'X-API-Key': key });

  it('session starts, transcriptions and requests per minute, each per user, answered 429 + Retry-After + code', async () => {
    const start = (key: string, id: string) => request(t.url).post(`${API}/session/start`).set(as(key)).send({ session_id: id });
    expect((await start(t.keys.alice, 's1')).status).toBe(200);
    expect((await start(t.keys.alice, 's2')).status).toBe(200);
    const s3 = await start(t.keys.alice, 's3');
    expect429(s3, 'SESSION_START_RATE_LIMITED');
    expect(s3.body.error).toBe('Too many session creation requests. Please try again later.');
    // /streaming/start shares the budget.
    expect429(await request(t.url).post(`${API}/streaming/start`).set(as(t.keys.alice)).send({ session_id: 's4' }), 'SESSION_START_RATE_LIMITED');
    expect((await start(t.keys.bob, 'b1')).status).toBe(200);

    const tr = () => request(t.url).post(`${API}/transcribe`).set(as(t.keys.alice)).send({ session_id: 's1', audio_data: second, format: 'pcm' });
    for (let i = 0; i < 3; i++) expect((await tr()).status).toBe(200);
    const t4 = await tr();
    expect429(t4, 'TRANSCRIBE_RATE_LIMITED');
    expect(t4.body.error).toBe('Too many transcription requests. Please try again later.');

    // Alice has used 10 requests of 12 (2 starts + 2 refused starts + 4 transcribes + ...).
    let last: request.Response | undefined;
    for (let i = 0; i < 5; i++) {
      last = await request(t.url).get(`${API}/sessions`).set(as(t.keys.alice));
      if (last.status === 429) break;
    }
    expect429(last!, 'RATE_LIMITED');
    expect(last!.headers['ratelimit-policy']).toBeDefined();
    // Bob's budget is his own.
    expect((await request(t.url).get(`${API}/sessions`).set(as(t.keys.bob))).status).toBe(200);
    // A JWT user is another principal.
    expect((await request(t.url).get(`${API}/sessions`).set('Authorization', `Bearer ${t.jwtFor(9, 'eve')}`)).status).toBe(200);
    // Health and readiness are not limited.
    expect((await request(t.url).get('/health')).status).toBe(200);
  });
});

describe('audio seconds per user (REST)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '3', LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('counts decoded seconds relayed upstream and refuses audio beyond the budget; other users are unaffected', async () => {
    const h = { 'X-API-Key': t.keys.alice };
    await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'a' });
    const before = t.emu.totalAudioBytes();
    for (let i = 0; i < 3; i++) {
      const r = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'a', audio_data: second, format: 'pcm' });
      expect(r.status).toBe(200);
    }
    // The charge follows the PCM to the upstream socket.
    await t.emu.waitFor(() => t.emu.totalAudioBytes() - before >= 3 * 32000 * 0.98, 5000);
    await sleep(50);
    const used = t.server.limits.status('key:alice', 'audio_seconds').used;
    expect(used).toBeGreaterThan(2.9);
    expect(used).toBeLessThan(3.1);
    const refused = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'a', audio_data: second, format: 'pcm' });
    expect429(refused, 'AUDIO_RATE_LIMITED');
    // WebM too (its duration is unknown until decoded, so the spent budget refuses it).
    const webm = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'a', audio_data: Buffer.alloc(100).toString('base64') });
    expect429(webm, 'AUDIO_RATE_LIMITED');
    // Refused audio never reached the model.
    await sleep(100);
    expect(t.emu.totalAudioBytes() - before).toBeLessThan(3 * 32000 * 1.02);

    const hb = { 'X-API-Key': t.keys.bob };
    await request(t.url).post(`${API}/session/start`).set(hb).send({ session_id: 'b' });
    expect((await request(t.url).post(`${API}/transcribe`).set(hb).send({ session_id: 'b', audio_data: second, format: 'pcm' })).status).toBe(200);
    const metrics = await request(t.url).get('/metrics');
    expect(metrics.text).toMatch(/live_audio_rate_limited_total\{limit="audio_seconds"\} 2/);
  });
});

describe('per-IP limit before authentication, and TRUST_PROXY', () => {
  const bad = (t: TestServer, xff?: string) => {
    const r = request(t.url).get(`${API}/sessions`).set('X-API-Key', 'ak_' + '0'.repeat(64));
    return xff ? r.set('X-Forwarded-For', xff) : r;
  };

  it('counts only requests that fail authentication; authenticated users are never limited by address; X-Forwarded-For is ignored by default', async () => {
    const t = await startTestServer({ env: { LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: '3' } });
    try {
      for (let i = 0; i < 5; i++) expect((await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await bad(t)).status).toBe(401);
      expect429(await bad(t), 'IP_RATE_LIMITED');
      expect429(await request(t.url).get(`${API}/sessions`), 'IP_RATE_LIMITED');
      // Spoofing X-Forwarded-For does not buy a new budget.
      expect429(await bad(t, '203.0.113.9'), 'IP_RATE_LIMITED');
      // A valid credential from the same address still works.
      expect((await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice)).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('with TRUST_PROXY set, the forwarded client address is the key', async () => {
    const t = await startTestServer({ env: { LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: '2', TRUST_PROXY: 'loopback' } });
    try {
      for (let i = 0; i < 2; i++) expect((await bad(t, '203.0.113.9')).status).toBe(401);
      expect429(await bad(t, '203.0.113.9'), 'IP_RATE_LIMITED');
      expect((await bad(t, '198.51.100.7')).status).toBe(401);
    } finally {
      await t.close();
    }
  });
});

describe('defaults', () => {
  it("a minute of the REST frontend's traffic (probe, start, 60 one-second chunks in a burst) is never refused", async () => {
    const t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' } });
    try {
      const h = { 'X-API-Key': t.keys.alice };
      expect((await request(t.url).get(`${API}/sessions`).set(h)).status).toBe(200);
      expect((await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'fe' })).status).toBe(200);
      const statuses: number[] = [];
      for (let i = 0; i < 60; i++) {
        statuses.push((await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'fe', audio_data: second, format: 'pcm' })).status);
      }
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe('WebSocket limits come from the shared limiter', () => {
  it('per-IP upgrade attempts of strangers (429 + Retry-After, X-Forwarded-For ignored) and per-user messages', async () => {
    const t = await startTestServer({ env: { LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: '2', LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '3' } });
    const open: WsTestClient[] = [];
    try {
      // Upgrades without credentials count against the address...
      open.push(await connect(wsUrl(t.url)));
      open.push(await connect(wsUrl(t.url)));
      await expect(connect(wsUrl(t.url), { headers: { 'X-Forwarded-For': '203.0.113.50' } })).rejects.toThrow('upgrade refused: 429');
      // ...valid credentials on the upgrade never do (issue 11 row 9).
      open.push(await connect(wsUrl(t.url, { token: t.keys.alice })));
      const c = open[2];
      await c.waitFor((m) => m.type === 'auth_success');
      for (let i = 0; i < 3; i++) expect((await c.ask({ type: 'ping' }, ['pong', 'rate_limit_exceeded'])).type).toBe('pong');
      const refused = await c.ask({ type: 'ping' }, ['pong', 'rate_limit_exceeded']);
      expect(refused.type).toBe('rate_limit_exceeded');
      expect(t.server.limits.status('key:alice', 'ws_messages')).toMatchObject({ used: 3, limit: 3 });
    } finally {
      for (const p of open) await p.close();
      await t.close();
    }
  });
});

import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { JWT_SECRET, sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { LogCapture } from '../helpers/log-capture';

const API = '/api/v1/live-audio';

const metricValue = (text: string, name: string, labels = ''): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ').pop()) : NaN;
};

describe('/metrics', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '100' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('exposes sessions, upstream, audio, decoder, latency and event-loop metrics in Prometheus text', async () => {
    const rec = loadRecording('chromium-hello-1000ms');
    const h = { 'X-API-Key': t.keys.alice };
    expect((await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'm1' })).status).toBe(200);
    // A continuation chunk before any header is refused up front (a decode error, no ffmpeg started).
    const early = await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'm1', audio_data: rec.chunks[2].toString('base64') });
    expect(early.status).toBe(422);
    for (const c of rec.chunks.slice(0, 3)) {
      expect((await request(t.url).post(`${API}/transcribe`).set(h).send({ session_id: 'm1', audio_data: c.toString('base64') })).status).toBe(200);
    }
    await t.emu.waitFor(() => t.emu.totalAudioBytes() > 32000, 5000);

    const live = await request(t.url).get('/metrics');
    expect(live.status).toBe(200);
    expect(live.headers['content-type']).toMatch(/^text\/plain/);
    const m = live.text;
    expect(metricValue(m, 'live_audio_sessions_live', '{transport="rest"}')).toBe(1);
    expect(metricValue(m, 'live_audio_sessions_started_total', '{transport="rest"}')).toBe(1);
    expect(metricValue(m, 'live_audio_upstream_connects_total', '{resumed="false"}')).toBe(1);
    // The recording is decoded in-process (the default): a stream counted as such, no ffmpeg process.
    expect(metricValue(m, 'live_audio_in_process_decoders')).toBe(1);
    expect(metricValue(m, 'live_audio_in_process_decoders_started_total')).toBe(1);
    expect(metricValue(m, 'live_audio_ffmpeg_processes_alive')).toBe(0);
    expect(metricValue(m, 'live_audio_ffmpeg_processes_spawned_total')).toBe(0);
    expect(metricValue(m, 'live_audio_audio_in_seconds_total')).toBeGreaterThan(1);
    expect(metricValue(m, 'live_audio_audio_relayed_seconds_total')).toBeGreaterThan(1);
    expect(metricValue(m, 'live_audio_audio_dropped_seconds_total')).toBe(0);
    expect(metricValue(m, 'live_audio_decode_errors_total', '{code="AUDIO_STREAM_NO_HEADER"}')).toBe(1);
    expect(metricValue(m, 'live_audio_transcribe_duration_seconds_count', '{status="200"}')).toBe(3);
    expect(metricValue(m, 'live_audio_transcribe_duration_seconds_count', '{status="422"}')).toBe(1);
    expect(metricValue(m, 'live_audio_relay_latency_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(metricValue(m, 'live_audio_http_responses_total', '{route="/api/v1/live-audio/session/start",method="POST",status="200"}')).toBe(1);
    expect(m).toMatch(/^live_audio_event_loop_delay_seconds\{quantile="0\.99"\} [0-9.e-]+$/m);
    expect(m).toMatch(/^live_audio_process_memory_bytes\{kind="rss"\} \d+/m);
    expect(metricValue(m, 'live_audio_process_memory_bytes', '{kind="heap_total"}')).toBeGreaterThanOrEqual(metricValue(m, 'live_audio_process_memory_bytes', '{kind="heap_used"}'));
    // Nothing has ended yet: no tombstone kept.
    expect(metricValue(m, 'live_audio_retained_records', '{kind="tombstones"}')).toBe(0);
    expect(metricValue(m, 'live_audio_retained_evictions_total', '{kind="tombstones",reason="records"}')).toBe(0);
    expect(metricValue(m, 'live_audio_retained_evictions_total', '{kind="transcripts",reason="bytes"}')).toBe(0);

    // A goAway rotates the upstream: a reconnect by cause and a resumed connect (once the model handed out a
    // resumption handle: it does at the end of a turn, which on a loaded machine may come after the audio above).
    const deadline = Date.now() + 10_000;
    let handle = false;
    while (!handle && Date.now() < deadline) {
      const st = await request(t.url).get(`${API}/session/m1/status`).set(h);
      handle = st.body.data?.upstream?.hasResumptionHandle === true;
      if (!handle) await sleep(50);
    }
    expect(handle).toBe(true);
    const conn = t.emu.connections[t.emu.connections.length - 1];
    // A goAway before the first handle (the spaced emulator issues one after each turn) has nothing to resume:
    // wait for the reply's handle so the rotation can resume.
    await t.emu.waitFor(() => conn.handlesIssued > 0, 10000);
    t.emu.goAway(conn.id, 500);
    await t.emu.waitFor(() => t.emu.connections.length >= 2 && t.emu.connections[t.emu.connections.length - 1] !== conn, 5000);
    await sleep(300);

    expect((await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: 'm1' })).status).toBe(200);
    await sleep(300);
    const after = (await request(t.url).get('/metrics')).text;
    expect(metricValue(after, 'live_audio_sessions_live', '{transport="rest"}')).toBe(0);
    expect(metricValue(after, 'live_audio_sessions_ended_total', '{reason="client_end"}')).toBe(1);
    // Rotated at a turn boundary (go_away) or at the goAway deadline (go_away_deadline).
    const rotations = [...after.matchAll(/^live_audio_upstream_reconnects_total\{cause="(go_away|go_away_deadline)"\} (\d+)$/gm)];
    expect(rotations.reduce((n, m) => n + Number(m[2]), 0)).toBe(1);
    expect(metricValue(after, 'live_audio_upstream_connects_total', '{resumed="true"}')).toBe(1);
    expect(after).toMatch(/^live_audio_upstream_closes_total\{code="\d+"\} \d+$/m);
    expect(metricValue(after, 'live_audio_ffmpeg_processes_alive')).toBe(0);
    expect(metricValue(after, 'live_audio_in_process_decoders')).toBe(0);
    // Audio counters stay monotonic after the session is gone.
    expect(metricValue(after, 'live_audio_audio_in_seconds_total')).toBeGreaterThanOrEqual(metricValue(m, 'live_audio_audio_in_seconds_total'));
  });
});

describe('/metrics with METRICS_TOKEN', () => {
  it('requires the bearer token and answers 401 JSON otherwise', async () => {
    const t = await startTestServer({ env: { METRICS_TOKEN: 'scrape-secret-123' } });
    try {
      const none = await request(t.url).get('/metrics');
      expect(none.status).toBe(401);
      expect(none.body).toEqual({ success: false, error: 'Metrics require a valid bearer token', code: 'METRICS_AUTH_REQUIRED' });
      expect((await request(t.url).get('/metrics').set('Authorization', 'Bearer wrong')).status).toBe(401);
      // An API key is not a metrics token.
      expect((await request(t.url).get('/metrics').set('X-API-Key', t.keys.alice)).status).toBe(401);
      const ok = await request(t.url).get('/metrics').set('Authorization', 'Bearer scrape-secret-123');
      expect(ok.status).toBe(200);
      expect(ok.text).toContain('live_audio_sessions_live');
    } finally {
      await t.close();
    }
  });
});

describe('health and readiness', () => {
  it('/health is liveness without auth; /ready is 200 after start-up and 503 while draining', async () => {
    const t = await startTestServer();
    try {
      expect((await request(t.url).get('/health')).body).toMatchObject({ success: true, status: 'ok' });
      expect((await request(t.url).get('/ready')).status).toBe(200);
      t.server.registry.startDraining();
      const r = await request(t.url).get('/ready');
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ success: false, code: 'NOT_READY' });
      expect((await request(t.url).get('/health')).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('logs', () => {
  async function runTraffic(logTranscripts: boolean) {
    const capture = new LogCapture();
    const t = await startTestServer({
      env: { LOG_LEVEL: 'debug', LOG_TRANSCRIPTS: String(logTranscripts), LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '1500' },
      overrides: { logDestination: capture },
    });
    const jwt = t.jwtFor(42, 'zoe');
    const userWords = 'please tell me about the weather in Lisbon';
    const reply = 'It is sunny and warm in Lisbon today.';
    t.emu.setScenario(scriptedScenario([{ userTranscript: userWords, reply }], { fallback: { userTranscript: userWords, reply } }));
    try {
      const h = { 'X-API-Key': t.keys.alice };
      const probe = await request(t.url).get(`${API}/sessions?token=${jwt}&key=test-gemini-key&x=1`).set(h);
      expect(probe.status).toBe(200);
      await request(t.url).get(`${API}/sessions`).set('Authorization', `Bearer ${jwt}`);
      await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.bob.slice(0, -4) + 'ffff');
      // The frontend's Google key sent as X-API-Key.
      await request(t.url).get(`${API}/sessions`).set('X-API-Key', 'test-gemini-key');
      await request(t.url).post(`${API}/session/start`).set(h).send({ session_id: 'logged' });
      const rec = loadRecording('chromium-hello-1000ms');
      let done = false;
      for (let i = 0; i < rec.chunks.length + 6 && !done; i++) {
        const c = rec.chunks[Math.min(i, rec.chunks.length - 1)];
        const r = await request(t.url)
          .post(`${API}/transcribe`)
          .set(h)
          .send({ session_id: 'logged', audio_data: (i < rec.chunks.length ? c : Buffer.alloc(32000)).toString('base64'), format: i < rec.chunks.length ? 'webm' : 'pcm' });
        done = r.body.turnComplete === true && r.body.response === reply;
      }
      expect(done).toBe(true);
      await request(t.url).post(`${API}/session/end`).set(h).send({ session_id: 'logged' });
      await sleep(100);
      return { t, capture, jwt, probe, userWords, reply };
    } finally {
      await t.close();
    }
  }

  it('are JSON with request ids and session ids, and never contain keys, JWTs, secrets or ?token= values; no transcripts by default', async () => {
    const { t, capture, jwt, probe, userWords, reply } = await runTraffic(false);
    const text = capture.text;
    const lines = capture.lines();
    expect(lines.length).toBeGreaterThan(10);
    for (const secret of [t.keys.alice, t.keys.bob, t.keys.bob.slice(0, -4), jwt, jwt.split('.')[2], 'test-gemini-key', JWT_SECRET]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/token=eyJ/);
    expect(text).not.toContain(userWords);
    expect(text).not.toContain(reply);

    // The access line of the probe carries its request id (= X-Request-Id), the principal and a redacted URL.
    const reqId = probe.headers['x-request-id'];
    const access = lines.find((l) => (l.req as { id?: string } | undefined)?.id === reqId);
    expect(access).toBeDefined();
    expect(access).toMatchObject({ principal: 'key:alice', res: { statusCode: 200 } });
    const url = (access!.req as { url: string }).url;
    expect(url).toContain('token=[REDACTED]');
    expect(url).toContain('key=[REDACTED]');
    expect(url).toContain('x=1');
    expect(Object.keys((access!.req as { headers: object }).headers)).not.toContain('x-api-key');
    // Session lines carry the session id.
    expect(lines.some((l) => l.sessionId === 'logged' && l.msg === 'session ended')).toBe(true);
  });

  it('contain transcripts only with LOG_TRANSCRIPTS=true', async () => {
    const { capture, userWords, reply } = await runTraffic(true);
    expect(capture.text).toContain(reply);
    expect(capture.text).toContain(userWords.split(' ')[0]);
  });
});

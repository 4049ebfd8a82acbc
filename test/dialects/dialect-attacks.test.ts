/**
 * The attacker's tests for the dialects, on a real spawned server process: what does a stranger, or one key holder,
 * cost us through the four new doors? No door without a credential (WS and HTTP), another key's session id is
 * unknown, oversized / deeply nested / binary-garbage frames get errors in the dialect's shape (or the 1009 close)
 * without hurting the process, a message flood is held to the ordinary per-user budget while /health stays quick,
 * no session or ffmpeg child outlives its socket, and keys never reach the logs.
 */
import fs from 'node:fs';
import request from 'supertest';
import { probeHealth, spawnServer, timedGet, type SpawnedServer } from '../helpers/spawned-server';
import { childProcesses, processAlive } from '../ops/helpers';
import { cpuMsOf } from '../security/attack-helpers';
import { connect, connectRefused, dialectUrl, recordingAsPcm, type WsTestClient } from './dialect-helpers';

const API = '/api/v1/live-audio';
const WS_PATHS = ['/ws', '/ws/interview', '/api/ai/gemini/realtime', '/ws/audio-live'];
const MAX_PAYLOAD = 256 * 1024;

describe('dialect doors under attack (spawned server)', () => {
  let s: SpawnedServer;
  const clients: WsTestClient[] = [];

  beforeAll(async () => {
    // Counts the server's ffmpeg children: the warm decoder pool (its refills look the same) is off here.
    s = await spawnServer({ env: { LIVE_AUDIO_DECODER_POOL_SIZE: '0', LIVE_AUDIO_WS_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD), LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '300' } });
  }, 40000);
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(async () => {
    await s.stop();
  });

  async function open(path: string, token = s.keys.alice): Promise<WsTestClient> {
    const c = await connect(dialectUrl(s.url, path, token));
    clients.push(c);
    return c;
  }

  async function sessionsOf(key: string): Promise<unknown[]> {
    const r = await request(s.url).get(`${API}/sessions`).set('X-API-Key', key);
    return r.body.data.sessions;
  }

  async function until(pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await pred())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('no door without a credential: every WS path and HTTP route answers 401 (bad keys too)', async () => {
    for (const path of WS_PATHS) {
      const none = await connectRefused(dialectUrl(s.url, path));
      expect([path, none.status, none.body.code]).toEqual([path, 401, 'AUTH_REQUIRED']);
      const bad = await connectRefused(dialectUrl(s.url, path, 'ak_0000000000000000000000000000000000000000'));
      expect([path, bad.status, bad.body.success]).toEqual([path, 401, false]);
      const jwt = await connectRefused(dialectUrl(s.url, path, 'eyJhbGciOiJIUzI1NiJ9.e30.forged'));
      expect([path, jwt.status]).toEqual([path, 401]);
    }
    for (const path of ['/api/ai/gemini/initialize', '/api/ai/gemini/send-audio', '/api/ai/gemini/conversation', '/audio-stream']) {
      const r = await request(s.url).post(path).set('Content-Type', 'application/json').send('{}');
      expect([path, r.status, r.body.success]).toEqual([path, 401, false]);
    }
  }, 30000);

  it("another key's session id is unknown (WS and HTTP)", async () => {
    const init = await request(s.url).post('/api/ai/gemini/initialize').set('X-API-Key', s.keys.alice).send({});
    expect(init.status).toBe(200);
    const sessionId = init.body.sessionId as string;
    const bob = await open('/api/ai/gemini/realtime', s.keys.bob);
    bob.send({ type: 'initialize_session', sessionId });
    expect(await bob.next('error')).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    for (const [path, body] of [
      ['/api/ai/gemini/send-audio', { sessionId, audioData: 'AAAA' }],
      ['/api/ai/gemini/conversation', { sessionId, text: 'hijack' }],
    ] as const) {
      const r = await request(s.url).post(path).set('X-API-Key', s.keys.bob).send(body);
      expect([path, r.status, r.body.code]).toEqual([path, 404, 'SESSION_NOT_FOUND']);
    }
    await request(s.url).post(`${API}/session/end`).set('X-API-Key', s.keys.alice).send({ session_id: sessionId });
  }, 30000);

  it('oversized, deeply nested and binary-garbage frames: errors in each dialect’s shape, the process unharmed', async () => {
    const ffmpegBefore = childProcesses(s.pid, 'ffmpeg').length;
    // Oversized: `ws` closes with 1009 before anything is parsed; the session of that socket ends with it.
    for (const path of WS_PATHS) {
      const c = await open(path);
      c.ws.send(Buffer.alloc(MAX_PAYLOAD + 1, 0x41));
      expect([path, (await c.waitClose(5000)).code]).toEqual([path, 1009]);
    }
    // Deeply nested JSON: refused before JSON.parse, in the dialect's error shape; the socket stays usable.
    const nested = '['.repeat(100_000) + ']'.repeat(100_000);
    const voice = await open('/ws');
    await voice.next('status', (m) => m.data === 'connected', 10000);
    voice.send(nested);
    expect((await voice.next('error')).data).toMatch(/nested/);
    const elk = await open('/api/ai/gemini/realtime');
    elk.send(nested);
    expect(await elk.next('error')).toMatchObject({ code: 'INVALID_MESSAGE' });
    elk.send({ type: 'initialize_session' });
    await elk.next('session_initialized', () => true, 10000);
    // Binary garbage: the voice pipeline takes JSON only; the FastAPI handler decodes it as audio and says it is not.
    voice.ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]));
    expect(typeof (await voice.next('error')).data).toBe('string');
    const fast = await open('/ws/audio-live');
    await fast.next('ready', () => true, 10000);
    fast.ws.send(Buffer.alloc(4096, 0x5a));
    const err = await fast.next('error', () => true, 10000);
    expect(err.code).toMatch(/^AUDIO_/);
    // PCM that is not 16-bit frames (odd length) is refused, not half-used.
    voice.send({ type: 'audio', data: Buffer.alloc(3).toString('base64') });
    expect(typeof (await voice.next('error')).data).toBe('string');
    // Still a working session after all that: real audio is heard.
    const pcm = recordingAsPcm('chromium-short-250ms', 16000, 1);
    voice.send({ type: 'audio', data: pcm.toString('base64') });
    expect(processAlive(s.pid)).toBe(true);
    expect((await timedGet(`${s.url}/health`)).status).toBe(200);
    for (const c of clients.splice(0)) c.close();
    await until(async () => (await sessionsOf(s.keys.alice)).length === 0, 10000, 'every session to end with its socket');
    await until(() => childProcesses(s.pid, 'ffmpeg').length <= ffmpegBefore, 10000, 'the decoders to exit');
  }, 60000);

  it("hostile declared formats (Elk's mimeType, the coach's audio_chunk rate and channels): a clear error in the dialect's shape, no decoder left behind, the session still hears real audio", async () => {
    const ffmpegBefore = childProcesses(s.pid, 'ffmpeg').length;
    const frame = Buffer.alloc(3200).toString('base64');
    const elk = await open('/api/ai/gemini/realtime');
    elk.send({ type: 'initialize_session' });
    const { sessionId } = await elk.next('session_initialized', () => true, 10000);
    for (const mimeType of [
      'audio/pcm;rate=abc',
      'audio/pcm;rate=0',
      'audio/pcm;rate=-16000',
      'audio/pcm;rate=99999999',
      'audio/pcm;rate=16000;channels=64',
      'audio/pcm;rate=16000;channels=0',
      'audio/pcm;rate=1e400',
      'audio/pcm;rate=16000;channels=2.5',
    ]) {
      const mark = elk.messages.length;
      elk.send({ type: 'send_audio', audioData: frame, mimeType });
      const err = await elk.next('error', (m) => elk.messages.indexOf(m) >= mark, 5000);
      expect({ mimeType, code: err.code }).toEqual({ mimeType, code: expect.stringMatching(/^(INVALID_FIELD|AUDIO_[A-Z_]+)$/) });
      // The same over HTTP: 4xx in our shape.
      const r = await request(s.url).post('/api/ai/gemini/send-audio').set('X-API-Key', s.keys.alice).send({ sessionId, audioData: frame, mimeType });
      expect({ mimeType, status: r.status, success: r.body.success, code: r.body.code }).toEqual({
        mimeType,
        status: expect.any(Number),
        success: false,
        code: expect.stringMatching(/^(INVALID_FIELD|AUDIO_[A-Z_]+)$/),
      });
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    const coach = await open('/ws/interview');
    coach.send({ type: 'start_interview' });
    await coach.next('gemini_ready', () => true, 10000);
    for (const bad of [
      { format: 'pcm', sample_rate: 'abc' },
      { format: 'pcm', sample_rate: 0 },
      { format: 'pcm', sample_rate: 16000, channels: 64 },
      { format: 'exe' },
    ]) {
      const mark = coach.messages.length;
      coach.send({ type: 'audio_chunk', audio_data: frame, ...bad });
      const err = await coach.next('error', (m) => coach.messages.indexOf(m) >= mark, 5000);
      expect({ bad, code: err.code }).toEqual({ bad, code: expect.stringMatching(/^(INVALID_FIELD|INVALID_MESSAGE|AUDIO_[A-Z_]+)$/) });
    }
    // Both sessions still take real audio (declared properly).
    const pcm = recordingAsPcm('chromium-short-250ms', 24000, 1).toString('base64');
    const ok = await request(s.url).post('/api/ai/gemini/send-audio').set('X-API-Key', s.keys.alice).send({ sessionId, audioData: pcm, mimeType: 'audio/pcm;rate=24000' });
    expect(ok.body).toEqual({ success: true, sessionId });
    expect(processAlive(s.pid)).toBe(true);
    for (const c of clients.splice(0)) c.close();
    await until(async () => (await sessionsOf(s.keys.alice)).length === 0, 10000, 'every session to end with its socket');
    await until(() => childProcesses(s.pid, 'ffmpeg').length <= ffmpegBefore, 10000, 'the decoders to exit');
  }, 60000);

  /** The server's own worst event-loop delay since the previous scrape (ms). */
  async function serverLoopMaxMs(): Promise<number> {
    const m = await fetch(`${s.url}/metrics`).then((r) => r.text());
    return 1000 * Number(/^live_audio_event_loop_delay_seconds\{quantile="max"\} (\S+)/m.exec(m)![1]);
  }

  it('a message flood from one key is held to the ordinary budget at a bounded CPU cost, /health answering throughout', async () => {
    const c = await open('/ws');
    await c.next('status', (m) => m.data === 'connected', 10000);
    await serverLoopMaxMs();
    const cpuBefore = cpuMsOf(s.pid);
    const probe = probeHealth(s.url, 25);
    const frame = JSON.stringify({ type: 'audio', data: Buffer.alloc(640).toString('base64') });
    // 3,000 frames in bursts of 100 (the test process yields between bursts so its own probes are not delayed by it).
    for (let i = 0; i < 30; i++) {
      for (let j = 0; j < 100; j++) c.ws.send(frame);
      await new Promise((r) => setImmediate(r));
    }
    const refusals = () => c.messages.filter((m) => m.type === 'error' && /rate limit/i.test(m.data)).length;
    await c.until(() => refusals() >= 2700, 30000, 'rate-limit errors');
    const health = await probe.stop();
    const cpuMs = cpuMsOf(s.pid) - cpuBefore;
    const loopMs = await serverLoopMaxMs();
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    console.log(
      `dialect flood (load ${load}): ${refusals()} of 3000 frames refused by the per-user budget (300/min); server CPU ${cpuMs} ms ` +
        `(${(cpuMs / 3000).toFixed(2)} ms a frame, /health probes included); server event-loop delay max ${loopMs.toFixed(1)} ms; ` +
        `/health p99 ${health.p99Ms.toFixed(1)} ms, max ${health.maxMs.toFixed(1)} ms over ${health.samples.length} probes, ${health.failures} failed`,
    );
    // The budget is 300 a minute: at least 2,700 of the 3,000 were refused.
    expect(refusals()).toBeGreaterThanOrEqual(2700);
    expect(health.failures).toBe(0);
    // What one key holder costs us, independent of the machine's load: the server's CPU time for the whole flood.
    // (Its event-loop delay and the probes' times are printed, not asserted: on this shared 2-core machine they follow
    // the load average — 0.4 s at load 5, 1.4 s at load 8.7, and the same flood on our own /ws/live-audio 1.2 s at
    // load 7.9 — i.e. they measure the CPU the process was given, not what the flood costs.)
    expect(cpuMs).toBeLessThan(1500);
    expect(processAlive(s.pid)).toBe(true);
  }, 60000);

  it('keys and tokens in dialect URLs never reach the logs', async () => {
    // (bob: alice's message budget was spent by the flood.)
    const c = await open('/api/ai/gemini/realtime', s.keys.bob);
    c.send({ type: 'initialize_session' });
    await c.next('session_initialized', () => true, 10000);
    c.close();
    await probeHealth(s.url);
    const out = s.output();
    expect(out).toContain('dialect websocket connected');
    expect(out).not.toContain(s.keys.alice);
    expect(out).not.toContain(s.keys.bob);
  }, 20000);

  // (Last: it spends bob's session-start budget for the minute.)
  it('Elk conversation without a sessionId starts a session each time: held to the per-key session-start budget (turns of a named session are not)', async () => {
    const statuses: Array<number | string> = [];
    for (let i = 0; i < 22; i++) {
      const r = await request(s.url).post('/api/ai/gemini/conversation').set('X-API-Key', s.keys.bob).send({ text: `Hi ${i}` });
      statuses.push(r.status === 200 ? 200 : `${r.status} ${r.body.code}`);
      if (r.status === 200) await request(s.url).post(`${API}/session/end`).set('X-API-Key', s.keys.bob).send({ session_id: r.body.sessionId });
      else expect(r.body).toMatchObject({ success: false, code: 'SESSION_START_RATE_LIMITED', error: expect.any(String) });
    }
    console.log(`22 conversation calls without a sessionId: ${statuses.join(' ')}`);
    // The default budget is 20 session starts a minute per key: the rest are refused, and nothing is left running.
    expect(statuses.filter((x) => x === 200).length).toBeLessThanOrEqual(20);
    expect(statuses.at(-1)).toBe('429 SESSION_START_RATE_LIMITED');
    expect(await sessionsOf(s.keys.bob)).toEqual([]);
  }, 60000);
});

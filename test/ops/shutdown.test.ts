import request from 'supertest';
import { startGeminiLiveEmulator } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { spawnServer } from '../helpers/spawned-server';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { childProcesses, processAlive } from './helpers';

const API = '/api/v1/live-audio';
const rec = loadRecording('chromium-hello-1000ms');

describe('drain (in-process)', () => {
  let t: TestServer;
  beforeEach(async () => {
    // WebM through ffmpeg (not the in-process default): the drain must also end the session's decoder process.
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '5000', LIVE_AUDIO_WEBM_DECODER: 'ffmpeg' } });
  });
  afterEach(async () => {
    await t.close();
  });
  const h = () => ({ 'X-API-Key': t.keys.alice });

  it('refuses new sessions at once, lets live ones run until the deadline, then ends them; waiting requests get 503 SERVER_SHUTTING_DOWN', async () => {
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'd1' });
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'd2' });
    // d1 has a running ffmpeg.
    const first = await request(t.url).post(`${API}/transcribe`).set(h()).send({ session_id: 'd1', audio_data: rec.chunks[0].toString('base64') });
    expect(first.status).toBe(200);
    expect(t.server.decoderCounters?.processesAlive).toBe(1);
    // d1's decoder, plus the warm pool's (LIVE_AUDIO_DECODER_POOL_SIZE, default 2) while sessions are open.
    expect(childProcesses(process.pid, 'ffmpeg').length).toBeGreaterThanOrEqual(1);
    expect(childProcesses(process.pid, 'ffmpeg').length).toBeLessThanOrEqual(1 + 2);

    const t0 = Date.now();
    const drained = t.server.drain(1000);
    expect((await request(t.url).get('/ready')).status).toBe(503);
    const refused = await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'd3' });
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual({ success: false, error: 'Server is shutting down; try again shortly', code: 'SERVER_SHUTTING_DOWN' });
    // Live sessions keep working while draining.
    expect((await request(t.url).get(`${API}/session/d2/status`).set(h())).body.data.status).toBe('active');
    // A /transcribe that is still waiting when the drain deadline comes gets a clear 503.
    const waiting = request(t.url).post(`${API}/transcribe`).set(h()).send({ session_id: 'd2', audio_data: Buffer.alloc(3200).toString('base64'), format: 'pcm' });
    const [result, r] = await Promise.all([drained, waiting]);
    const elapsed = Date.now() - t0;
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ success: false, code: 'SERVER_SHUTTING_DOWN' });
    expect(result.endedByShutdown).toBe(2);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(6000);
    expect(t.server.registry.size).toBe(0);
    expect(t.server.decoderCounters?.processesAlive).toBe(0);
    expect(childProcesses(process.pid, 'ffmpeg')).toEqual([]);
    // Every upstream socket was closed.
    await t.emu.waitFor(() => t.emu.connections.every((c) => c.closed !== undefined), 3000);
    expect(t.server.httpServer.listening).toBe(false);
    // Idempotent.
    expect(await t.server.drain(1000)).toBe(result);
  });

  it('finishes early when the live sessions end by themselves', async () => {
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'e1' });
    const t0 = Date.now();
    const drained = t.server.drain(20_000);
    await sleep(200);
    expect((await request(t.url).post(`${API}/session/end`).set(h()).send({ session_id: 'e1' })).status).toBe(200);
    const result = await drained;
    expect(result.endedByShutdown).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('SIGTERM on the real server process', () => {
  it('drains, closes every ffmpeg child and upstream socket, and exits 0', async () => {
    const emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    const s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      // (WebM through ffmpeg, not the in-process default: SIGTERM must close every ffmpeg child)
      env: { LIVE_AUDIO_DRAIN_MS: '1500', LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '100', LIVE_AUDIO_WEBM_DECODER: 'ffmpeg' },
      startTimeoutMs: 20_000,
    }).catch(async (err: unknown) => {
      await emu.stop();
      throw err;
    });
    const { child, exited } = s;
    const key = s.keys.alice;
    try {
      const url = s.url;
      const h = { 'X-API-Key': key };
      expect((await request(url).post(`${API}/session/start`).set(h).send({ session_id: 'sig' })).status).toBe(200);
      expect((await request(url).post(`${API}/transcribe`).set(h).send({ session_id: 'sig', audio_data: rec.chunks[0].toString('base64') })).status).toBe(200);
      // The session's decoder and the warm pool's processes (default 2): every one must be gone after SIGTERM.
      const ffmpegs = childProcesses(child.pid!, 'ffmpeg');
      expect(ffmpegs.length).toBeGreaterThanOrEqual(1);
      expect(ffmpegs.length).toBeLessThanOrEqual(1 + 2);

      const sentAt = Date.now();
      child.kill('SIGTERM');
      let ready = 200;
      for (let i = 0; i < 20 && ready !== 503; i++) {
        ready = (await request(url).get('/ready')).status;
        if (ready !== 503) await sleep(25);
      }
      expect(ready).toBe(503);
      const refused = await request(url).post(`${API}/session/start`).set(h).send({ session_id: 'late' });
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('SERVER_SHUTTING_DOWN');
      expect((await request(url).get(`${API}/session/sig/status`).set(h)).body.data.status).toBe('active');

      const { code, signal, at } = await exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(at - sentAt).toBeGreaterThanOrEqual(1400);
      expect(at - sentAt).toBeLessThan(10_000);
      for (const pid of ffmpegs) expect(processAlive(pid)).toBe(false);
      await emu.waitFor(() => emu.connections.length > 0 && emu.connections.every((c) => c.closed !== undefined), 3000);
      const lines = s.logLines();
      expect(lines.some((l) => l.msg === 'session ended' && l.reason === 'server_shutdown' && l.sessionId === 'sig')).toBe(true);
      expect(lines.find((l) => l.msg === 'drained: all sessions ended and sockets closed')).toMatchObject({ endedByShutdown: 1, ffmpegAlive: 0 });
    } finally {
      await s.stop(0);
      await emu.stop();
    }
  }, 40_000);
});

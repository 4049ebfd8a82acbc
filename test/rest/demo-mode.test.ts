import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { loadConfig } from '../../src/config/config';
import { createLiveAudioServer, EMULATED_NOTICE, type LiveAudioServer } from '../../src/server';

const API = '/api/v1/live-audio';

function tone(ms: number): Buffer {
  const n = (ms * 16000) / 1000;
  const b = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  return b;
}

describe('offline demo mode (no Gemini key, no Redis)', () => {
  let dir: string;
  let server: LiveAudioServer;
  let url: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-demo-'));
    const config = loadConfig({ NODE_ENV: 'development', LOG_LEVEL: 'silent', LIVE_AUDIO_API_KEYS_FILE: path.join(dir, 'keys.json') });
    server = await createLiveAudioServer(config);
    url = `http://127.0.0.1:${await server.listen(0, '127.0.0.1')}`;
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates one development key, stored only as a hash, and a second start prints none', async () => {
    expect(server.devKey).not.toBeNull();
    expect(server.devKey!.key).toMatch(/^ak_[0-9a-f]{64}$/);
    const file = fs.readFileSync(path.join(dir, 'keys.json'), 'utf8');
    expect(file).not.toContain(server.devKey!.key);
    const again = await createLiveAudioServer(
      loadConfig({ NODE_ENV: 'development', LOG_LEVEL: 'silent', LIVE_AUDIO_API_KEYS_FILE: path.join(dir, 'keys.json') }),
    );
    expect(again.devKey).toBeNull();
    await again.close();
  });

  it('runs the emulator in-process and says so in /sessions', async () => {
    expect(server.emulator).toBeDefined();
    const r = await request(url).get(`${API}/sessions`).set('X-API-Key', server.devKey!.key);
    expect(r.status).toBe(200);
    expect(r.body.data.mode).toBe('emulated');
    expect(r.body.data.notice).toBe(EMULATED_NOTICE);
  });

  it('answers every endpoint with an honest emulated reply', async () => {
    const h = { 'X-API-Key': server.devKey!.key };
    const start = await request(url).post(`${API}/session/start`).set(h).send({ session_id: 'demo' });
    expect(start.status).toBe(200);
    expect(start.body.data.mode).toBe('emulated');
    const pcm = Buffer.concat([tone(800), Buffer.alloc(32000)]);
    let last: request.Response | undefined;
    for (let i = 0; i < 6 && !last?.body.turnComplete; i++) {
      last = await request(url)
        .post(`${API}/transcribe`)
        .set(h)
        .send({ session_id: 'demo', audio_data: (i === 0 ? pcm : Buffer.alloc(3200)).toString('base64'), format: 'pcm' });
      expect(last.status).toBe(200);
    }
    expect(last!.body.turnComplete).toBe(true);
    expect(last!.body.transcript).toMatch(/emulated/i);
    expect(last!.body.response).toMatch(/offline demo/i);
    expect((await request(url).get(`${API}/session/demo/status`).set(h)).body.data.status).toBe('active');
    expect((await request(url).post(`${API}/session/end`).set(h).send({ session_id: 'demo' })).body.data.status).toBe('ended');
  });
});

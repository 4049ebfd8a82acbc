import { startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { childProcesses, prng } from '../ops/helpers';
import { connect, wsUrl, type WsTestClient } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';
const SEED = Number(process.env.TEST_SEED ?? 20261130);

async function post(s: SpawnedServer, key: string, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${s.url}${API}${path}`, {
    method: 'POST',
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** 16 kHz mono s16le of `bytes` length (a sine, so it is audio, not silence). */
function pcm(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 2; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  return b;
}

/**
 * One key holder feeds audio through both doors (REST `/transcribe` and WebSocket `audio_chunk`) of a real spawned
 * server: both doors admit against the same per-user budget (the service's one rule), so alternating transports
 * buys nothing; another user's budget is untouched; the process stays healthy and keeps no child process.
 */
describe(`one audio admission rule for every door (spawned server, seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let server: SpawnedServer | undefined;
  const clients: WsTestClient[] = [];
  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    for (const c of clients) c.ws.terminate();
    await server?.stop();
    await emu.stop();
  });

  it('a key holder alternating REST and WebSocket cannot exceed the one budget; another user is unaffected', async () => {
    const rand = prng(SEED);
    // Chunk sizes vary with the seed (0.25-0.5 s of PCM each); the budget holds exactly the first two.
    const sizes = [0, 1, 2, 3].map(() => 2 * Math.round(4000 + rand() * 4000));
    const budget = sizes[0] + sizes[1];
    const s = (server = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      // Counts the server's children at the end: the warm decoder pool (its ffmpeg processes look the same) is off.
      env: { LIVE_AUDIO_DECODER_POOL_SIZE: '0', LIVE_AUDIO_MAX_AUDIO_BYTES_PER_MINUTE: String(budget), LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0' },
    }));
    const alice = s.keys.alice;
    const why = `seed ${SEED}, sizes ${sizes.join(',')}, budget ${budget}`;
    expect((await post(s, alice, '/session/start', { session_id: 'rest-door' })).status).toBe(200);
    const ws = await connect(wsUrl(s.url, { token: alice, auth_type: 'api_key' }));
    clients.push(ws);
    await ws.next('auth_success');
    ws.send({ type: 'start_session', session_id: 'ws-door' });
    await ws.next('session_started');

    // 1st chunk through REST, 2nd through the WebSocket: both admitted (the budget holds both).
    const r1 = await post(s, alice, '/transcribe', { session_id: 'rest-door', audio_data: pcm(sizes[0]).toString('base64'), format: 'pcm' });
    expect({ why, status: r1.status }).toEqual({ why, status: 200 });
    ws.send({ type: 'audio_chunk', audio_data: pcm(sizes[1]).toString('base64'), format: 'pcm' });
    ws.send({ type: 'get_rate_limits' });
    const st = await ws.next('rate_limit_status');
    // One budget: the WebSocket's status counts the REST chunk too.
    expect({ why, used: st.data.audioBytes.totalBytes }).toEqual({ why, used: budget });

    // The budget is spent: the 3rd chunk is refused on the WebSocket, the 4th on REST, with the same code.
    ws.send({ type: 'audio_chunk', audio_data: pcm(sizes[2]).toString('base64'), format: 'pcm' });
    const refused = await ws.next('rate_limit_exceeded');
    expect(refused).toMatchObject({ code: 'AUDIO_RATE_LIMITED' });
    expect(refused.retryAfter).toBeGreaterThanOrEqual(1);
    const r4 = await post(s, alice, '/transcribe', { session_id: 'rest-door', audio_data: pcm(sizes[3]).toString('base64'), format: 'pcm' });
    expect({ why, status: r4.status, code: r4.body.code, success: r4.body.success }).toEqual({ why, status: 429, code: 'AUDIO_RATE_LIMITED', success: false });

    // Another user has a budget of its own.
    const bob = s.keys.bob;
    expect((await post(s, bob, '/session/start', { session_id: 'bob' })).status).toBe(200);
    const b1 = await post(s, bob, '/transcribe', { session_id: 'bob', audio_data: pcm(sizes[0]).toString('base64'), format: 'pcm' });
    expect(b1.status).toBe(200);

    // The process is healthy and, once the sessions end, keeps no child process.
    ws.send({ type: 'end_session' });
    await ws.next('session_ended');
    await post(s, alice, '/session/end', { session_id: 'rest-door' });
    await post(s, bob, '/session/end', { session_id: 'bob' });
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    const deadline = Date.now() + 5_000;
    while (childProcesses(s.pid).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(childProcesses(s.pid)).toEqual([]);
  });
});

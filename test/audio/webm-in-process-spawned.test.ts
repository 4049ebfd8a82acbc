/**
 * In-process WebM/Opus decoding on a real spawned server process (the default, LIVE_AUDIO_WEBM_DECODER=in_process):
 * the 22 s Chromium recording posted in its 1 s chunks over REST (un-awaited POSTs) and over WebSocket, with seeded
 * jitter and one pair out of order (chunk 6 before chunk 5). The emulator must receive exactly the one-shot
 * in-process decode of the recording (but the framer's last < 20 ms), the user's words must come back as a turn, and
 * no ffmpeg may run for the sessions (sampled all along: none under the server, none under its launcher); /metrics
 * counts the stream as in-process, not as an ffmpeg process.
 */
import http from 'node:http';
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { inProcessDecode } from '../helpers/in-process-decode';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { suiteSeed, withSeed } from '../helpers/seed';
import { connectAuthed } from '../helpers/ws-test-client';
import { childProcesses, prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';

const API = '/api/v1/live-audio';
const SEED = suiteSeed();
/** Less than one 20 ms upstream frame may stay in the framer at the end. */
const CARRY_BYTES = 20 * 32;
const REPLY = 'Nice to meet you, Alex.';
const rec = loadRecording('chromium-long-22s');
const reference = inProcessDecode(Buffer.concat(rec.chunks));

jest.setTimeout(120_000);

/** The order the chunks leave in: as recorded, but chunk 6 before chunk 5. */
const ORDER = rec.chunks.map((_c, i) => (i === 5 ? 6 : i === 6 ? 5 : i));

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

describe(`WebM decoded in-process on a spawned server (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  /** Every ffmpeg seen under the server (or its launcher) while a test ran. */
  let ffmpegSeen: Set<number>;
  let sampler: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } }));
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      // (the default decoder: no LIVE_AUDIO_WEBM_DECODER; a pool size that ffmpeg WebM would fill at once)
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', LIVE_AUDIO_MAX_REALTIME_FACTOR: '8', LIVE_AUDIO_DECODER_POOL_SIZE: '2' },
    });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await emu?.stop();
  });
  beforeEach(() => {
    ffmpegSeen = new Set();
    sampler = setInterval(() => childProcesses(s.pid, 'ffmpeg').forEach((p) => ffmpegSeen.add(p)), 25);
  });
  afterEach(() => clearInterval(sampler));

  async function metrics(): Promise<string> {
    return (await request(s.url).get('/metrics')).text;
  }

  async function expectExactAudio(before: number, context: string): Promise<void> {
    await emu.waitFor(() => emu.totalAudioBytes() - before >= reference.length - CARRY_BYTES, 30_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const got = emu.receivedPcm().subarray(before);
    const n = reference.length - CARRY_BYTES;
    if (got.length < n || got.length > reference.length || !got.subarray(0, n).equals(reference.subarray(0, n))) {
      throw new Error(`${context}: got ${got.length / 32} ms, want ${reference.length / 32} ms, equal prefix: ${got.subarray(0, n).equals(reference.subarray(0, n))}`);
    }
  }

  it('REST: un-awaited POSTs with jitter and one pair out of order; exact audio, a turn with the words, no ffmpeg', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED);
      const sessionId = 'webm_in_process_rest';
      const h = { 'X-API-Key': s.keys.alice, 'Content-Type': 'application/json' };
      const conns = emu.connections.length;
      expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: sessionId })).status).toBe(200);
      const before = emu.totalAudioBytes();
      const answers: Array<Promise<{ status: number; body: string }>> = [];
      for (const i of ORDER) {
        const body = JSON.stringify({ session_id: sessionId, audio_data: rec.chunks[i]!.toString('base64'), format: 'webm' });
        answers.push(
          new Promise((resolve, reject) => {
            const req = http.request(`${s.url}${API}/transcribe`, { method: 'POST', agent: false, headers: { ...h, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
              let text = '';
              res.on('data', (d: Buffer) => (text += d.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            });
            req.on('error', reject);
            req.end(body);
          }),
        );
        await new Promise((r) => setTimeout(r, 120 + Math.floor(rnd() * 160)));
      }
      const done = await Promise.all(answers);
      expect(done.map((a) => a.status)).toEqual(ORDER.map(() => 200));
      const during = await metrics();
      expect(metric(during, 'live_audio_in_process_decoders')).toBe(1);
      expect(metric(during, 'live_audio_ffmpeg_processes_alive')).toBe(0);
      await expectExactAudio(before, 'REST');
      const upstream = emu.connections[conns]!;
      await emu.waitFor(() => upstream.turns > 0, 20_000);
      const transcript = await request(s.url).get(`${API}/session/${sessionId}/transcript`).set(h);
      expect(JSON.stringify(transcript.body)).toContain(rec.spokenText);
      const status = await request(s.url).get(`${API}/session/${sessionId}/status`).set(h);
      expect(status.body.data.audio).toMatchObject({ reorderedChunks: 1, skippedChunks: 0, lostMs: 0 });
      await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: sessionId });
      expect([...ffmpegSeen]).toEqual([]);
      const after = await metrics();
      expect(metric(after, 'live_audio_ffmpeg_processes_spawned_total')).toBe(0);
      expect(metric(after, 'live_audio_ffmpeg_processes_pooled')).toBe(0);
      expect(metric(after, 'live_audio_in_process_decoders')).toBe(0);
    }));

  it('WebSocket: the same recording with jitter and the pair out of order; exact audio, turn_complete with the words, no ffmpeg', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED + 1);
      const c = await connectAuthed(s.url, s.keys.alice);
      const before = emu.totalAudioBytes();
      c.send({ type: 'start_session', session_id: 'webm_in_process_ws' });
      await c.next('session_started');
      for (const i of ORDER) {
        c.send({ type: 'audio_chunk', audio_data: rec.chunks[i]!.toString('base64'), format: 'webm' });
        await new Promise((r) => setTimeout(r, 120 + Math.floor(rnd() * 160)));
      }
      await expectExactAudio(before, 'WebSocket');
      const done = await c.next('turn_complete', () => true, 20_000);
      expect(done.data).toMatchObject({ transcript: rec.spokenText, response: REPLY });
      c.send({ type: 'end_session' });
      await c.next('session_ended', () => true, 10_000);
      c.close();
      expect([...ffmpegSeen]).toEqual([]);
      expect(metric(await metrics(), 'live_audio_ffmpeg_processes_spawned_total')).toBe(0);
    }));
});

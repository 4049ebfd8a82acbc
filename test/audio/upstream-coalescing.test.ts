/**
 * Upstream coalescing (issue 13): audio decoded at the same moment leaves as one upstream message of at most
 * LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS (set to 1000 ms = 32,000 bytes here; the default is 100, the size Google recommends),
 * instead of one `realtimeInput` per 100 ms. On a real spawned server process with the emulator upstream:
 * - raw 16 kHz PCM chunks of seeded sizes, posted with seeded gaps: every byte reaches the model once, in order, in
 *   messages of 20 ms .. 1 s; a 1 s chunk is one message;
 * - a recorded Chromium WebM stream over WebSocket (real ffmpeg): all its audio arrives, no message above the bound;
 * - manual activity markers keep their place around coalesced audio;
 * - the attacker (one key holder posting the largest chunks back to back): messages stay within the bound, the
 *   pacer still holds the stream to its burst plus twice real time, /health answers, nothing is left behind;
 * - LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS=100 (the default) gives 20-100 ms messages.
 */
import fs from 'node:fs';
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type EmulatorConnectionRecord, type GeminiLiveEmulator } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { referenceDecode } from '../helpers/ffmpeg';
import { probeHealth, spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { connectAuthed } from '../helpers/ws-test-client';
import { childProcesses, prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { waitUntil } from '../helpers/live-probe';

const API = '/api/v1/live-audio';
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000_007);
const BYTES_PER_MS = 32;
const MAX_FRAME = 1000 * BYTES_PER_MS;

/** Seeded s16le PCM (random samples, so that any reordering or loss shows in a byte comparison). */
function seededPcm(rnd: () => number, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

/** The server's child processes (pid, name, state, command line), for a failure message. */
function describeChildren(pid: number): string {
  return childProcesses(pid)
    .map((c) => {
      try {
        const stat = fs.readFileSync(`/proc/${c}/stat`, 'utf8');
        const cmd = fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').join(' ').slice(0, 200);
        return `${c} ${/\((.*)\) (\S)/.exec(stat)?.slice(1).join(' ')} ${cmd}`;
      } catch {
        return `${c} (gone)`;
      }
    })
    .join('; ');
}

const audioSizes = (rec: EmulatorConnectionRecord) => rec.audioChunks;
const withSeed = async (fn: () => Promise<void>) => {
  try {
    await fn();
  } catch (err) {
    (err as Error).message = `[seed ${SEED}] ${(err as Error).message}`;
    throw err;
  }
};

describe(`upstream coalescing on a spawned server (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  const h = () => ({ 'X-API-Key': s.keys.alice, 'Content-Type': 'application/json' });

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'x', reply: 'OK.' } }));
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', LIVE_AUDIO_DECODER_POOL_SIZE: '0', LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '100000', LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: '1000' },
    });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await emu?.stop();
  });

  async function startRest(sessionId: string, extra: Record<string, unknown> = {}): Promise<EmulatorConnectionRecord> {
    const before = emu.connections.length;
    const r = await request(s.url).post(`${API}/session/start`).set(h()).send({ session_id: sessionId, ...extra });
    expect(r.status).toBe(200);
    await waitUntil(() => emu.connections.length > before, 10_000, 'the upstream connection');
    return emu.connections[emu.connections.length - 1]!;
  }
  const endRest = (sessionId: string) => request(s.url).post(`${API}/session/end`).set(h()).send({ session_id: sessionId });

  it('PCM chunks of seeded sizes: every byte arrives once and in order, in messages of 20 ms .. 1 s; a 1 s chunk is one message', () =>
    withSeed(async () => {
      const rnd = prng(SEED);
      const rec = await startRest('coalesce_pcm');
      // A 1 s chunk first (one message exactly), then seeded sizes from 10 ms to 2.5 s with seeded gaps.
      const sizes = [MAX_FRAME, ...Array.from({ length: 14 }, () => 2 * Math.floor((rnd() * 2500 * BYTES_PER_MS) / 2 + 160))];
      const sent: Buffer[] = [];
      for (const n of sizes) {
        const pcm = seededPcm(rnd, n);
        sent.push(pcm);
        const r = await request(s.url)
          .post(`${API}/transcribe`)
          .set(h())
          .send({ session_id: 'coalesce_pcm', audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000 });
        expect(r.status).toBe(200);
        if (sent.length === 1) {
          await waitUntil(() => rec.audioBytes >= MAX_FRAME, 10_000, 'the first chunk upstream');
          expect(audioSizes(rec)).toEqual([MAX_FRAME]);
        }
        await new Promise((res) => setTimeout(res, Math.floor(rnd() * 40)));
      }
      const all = Buffer.concat(sent);
      // What the framer still holds (< 20 ms) is flushed at the end of the session.
      await waitUntil(() => rec.audioBytes >= all.length - 640, 20_000, 'the audio upstream');
      expect((await endRest('coalesce_pcm')).status).toBe(200);
      await waitUntil(() => rec.closed !== undefined, 10_000, 'the upstream close');

      const got = Buffer.concat(rec.pcm);
      expect(got.length).toBeLessThanOrEqual(all.length);
      expect(all.length - got.length).toBeLessThan(640);
      expect(got.equals(all.subarray(0, got.length))).toBe(true);
      const frames = audioSizes(rec);
      for (const n of frames.slice(0, -1)) {
        expect(n).toBeGreaterThanOrEqual(640);
        expect(n).toBeLessThanOrEqual(MAX_FRAME);
      }
      // Coalesced: far fewer messages than 100 ms framing would have sent (one per whole second of each chunk).
      const hundredMs = sizes.reduce((k, n) => k + Math.ceil(n / 3200), 0);
      const atMost = sizes.reduce((k, n) => k + Math.ceil(n / MAX_FRAME), 0) + sizes.length;
      expect(frames.length).toBeLessThanOrEqual(atMost);
      expect(frames.length).toBeLessThan(hundredMs / 3);
    }), 60_000);

  it('a recorded Chromium stream over WebSocket (real ffmpeg): all of it arrives, no message above 1 s', () =>
    withSeed(async () => {
      const rnd = prng(SEED + 1);
      const recording = loadRecording('chromium-long-22s');
      const c = await connectAuthed(s.url, s.keys.alice);
      const before = emu.connections.length;
      c.send({ type: 'start_session', session_id: 'coalesce_ws' });
      await c.next('session_started');
      await waitUntil(() => emu.connections.length > before, 10_000, 'the upstream connection');
      const rec = emu.connections[emu.connections.length - 1]!;
      // A client on a real network: chunks bunched and spread at seeded moments (never reordered: one socket).
      for (const chunk of recording.chunks) {
        c.send({ type: 'audio_chunk', audio_data: chunk.toString('base64'), format: 'webm' });
        if (rnd() < 0.6) await new Promise((res) => setTimeout(res, Math.floor(rnd() * 120)));
      }
      const reference = referenceDecode(Buffer.concat(recording.chunks)).length;
      await waitUntil(() => rec.audioBytes >= reference * 0.98, 30_000, 'the decoded audio upstream');
      expect(Math.abs(rec.audioBytes - reference) / reference).toBeLessThan(0.02);
      const frames = audioSizes(rec);
      expect(Math.max(...frames)).toBeLessThanOrEqual(MAX_FRAME);
      expect(frames.slice(0, -1).every((n) => n >= 640 && n % 2 === 0)).toBe(true);
      c.send({ type: 'end_session' });
      await c.next('session_ended', () => true, 10_000);
      c.close();
      await waitUntil(() => childProcesses(s.pid, 'ffmpeg').length === 0, 15_000, 'the decoder to exit').catch((err: Error) => {
        throw new Error(`${err.message}: ${describeChildren(s.pid)}`);
      });
      console.log(`22 s WebM over WS: ${frames.length} upstream audio messages (100 ms framing: at least ${Math.ceil(reference / 3200)}); largest ${Math.max(...frames)} bytes`);
    }), 60_000);

  it('manual activity markers keep their place around coalesced audio', () =>
    withSeed(async () => {
      const rnd = prng(SEED + 2);
      const c = await connectAuthed(s.url, s.keys.alice);
      const before = emu.connections.length;
      c.send({ type: 'start_session', session_id: 'coalesce_vad', vad: { manual: true } });
      await c.next('session_started');
      await waitUntil(() => emu.connections.length > before, 10_000, 'the upstream connection');
      const rec = emu.connections[emu.connections.length - 1]!;
      const expected: string[] = [];
      let bytes = 0;
      for (let turn = 0; turn < 3; turn++) {
        c.send({ type: 'activity_start' });
        expected.push(`start@${bytes}`);
        const n = 2 * Math.floor((rnd() * 2000 * BYTES_PER_MS) / 2 + 320);
        c.send({ type: 'audio_chunk', audio_data: seededPcm(rnd, n).toString('base64'), format: 'pcm', sample_rate: 16000 });
        bytes += n;
        c.send({ type: 'activity_end' });
        expected.push(`end@${bytes}`);
      }
      await waitUntil(() => rec.messages.filter((m) => m.kind === 'activityEnd').length >= 3, 15_000, 'three activity ends');
      const got: string[] = [];
      let seen = 0;
      let audio = 0;
      for (const m of rec.messages) {
        if (m.kind === 'audio') seen += rec.audioChunks[audio++]!;
        else if (m.kind === 'activityStart') got.push(`start@${seen}`);
        else if (m.kind === 'activityEnd') got.push(`end@${seen}`);
      }
      expect(got).toEqual(expected);
      expect(Math.max(...rec.audioChunks)).toBeLessThanOrEqual(MAX_FRAME);
      c.send({ type: 'end_session' });
      await c.next('session_ended', () => true, 10_000);
      c.close();
    }), 60_000);

  it('the attacker: the largest PCM chunks back to back stay within the bound and the pacing, /health answers, nothing is left', () =>
    withSeed(async () => {
      const rnd = prng(SEED + 3);
      const rec = await startRest('coalesce_bomb');
      const probe = probeHealth(s.url);
      // 4 × 1 MiB of PCM (~33 s each): far more than the 5 s burst, posted at once.
      const t0 = Date.now();
      const posts = Array.from({ length: 4 }, () =>
        request(s.url)
          .post(`${API}/transcribe`)
          .set(h())
          .send({ session_id: 'coalesce_bomb', audio_data: seededPcm(rnd, 1024 * 1024).toString('base64'), format: 'pcm', sample_rate: 16000 }),
      );
      const answers = await Promise.all(posts);
      for (const a of answers) expect([200, 429, 503]).toContain(a.status);
      await waitUntil(() => Date.now() - t0 > 3000 && rec.audioBytes > 0, 20_000, 'three seconds of the bomb');
      const elapsed = Date.now() - t0;
      const sentMs = rec.audioBytes / BYTES_PER_MS;
      // The pacer's decode-bomb bound holds with coalesced frames: the 5 s burst plus twice real time (plus a frame).
      expect(sentMs).toBeLessThanOrEqual(5000 + 2 * elapsed + 1000);
      expect(Math.max(...rec.audioChunks)).toBeLessThanOrEqual(MAX_FRAME);
      const health = await probe.stop();
      expect(health.failures).toBe(0);
      expect((await endRest('coalesce_bomb')).status).toBe(200);
      await waitUntil(() => rec.closed !== undefined, 10_000, 'the upstream close');
      // The session's audio stops at its end (what waited is dropped, not sent after the close).
      const atEnd = rec.audioBytes;
      await new Promise((res) => setTimeout(res, 300));
      expect(rec.audioBytes).toBe(atEnd);
      await waitUntil(() => childProcesses(s.pid, 'ffmpeg').length === 0, 15_000, 'no decoder process left').catch((err: Error) => {
        throw new Error(`${err.message}: ${describeChildren(s.pid)}`);
      });
      console.log(`bomb: ${(sentMs / 1000).toFixed(1)} s of audio upstream in ${(elapsed / 1000).toFixed(1)} s; /health p99 ${health.p99Ms.toFixed(0)} ms`);
    }), 60_000);
});

describe('LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS=100 on a spawned server', () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'x', reply: 'OK.' } }));
    s = await spawnServer({ geminiBaseUrl: emu.baseUrl, env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', LIVE_AUDIO_DECODER_POOL_SIZE: '0', LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: '100' } });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await emu?.stop();
  });

  it('sends the 20-100 ms messages of before', async () => {
    const h = { 'X-API-Key': s.keys.alice, 'Content-Type': 'application/json' };
    expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: 'cap100' })).status).toBe(200);
    await waitUntil(() => emu.connections.length > 0, 10_000, 'the upstream connection');
    const rec = emu.connections[emu.connections.length - 1]!;
    const pcm = seededPcm(prng(SEED + 4), 2 * MAX_FRAME);
    const r = await request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: 'cap100', audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000 });
    expect(r.status).toBe(200);
    await waitUntil(() => rec.audioBytes >= pcm.length, 10_000, 'the audio upstream');
    expect(rec.audioChunks).toEqual(Array.from({ length: 20 }, () => 3200));
    expect(Buffer.concat(rec.pcm).equals(pcm)).toBe(true);
  }, 60_000);
});

describe('each upstream message is decoded once before the SDK parses it', () => {
  it('JSON frames (binary, text, pretty-printed) reach the consumer in order; a non-JSON frame is dropped without a crash', async () => {
    const { WebSocketServer } = await import('ws');
    const { GeminiLiveProvider } = await import('../../src/services/upstream/gemini-live-provider');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    const port = (wss.address() as { port: number }).port;
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => rejections.push(e);
    process.on('unhandledRejection', onRejection);
    wss.on('connection', (ws) => {
      ws.once('message', () => {
        // The real server: JSON in binary frames, pretty-printed; here also a text frame and two that are not JSON.
        ws.send(Buffer.from(JSON.stringify({ setupComplete: {} }, null, 2)));
        setTimeout(() => {
          ws.send(Buffer.from(JSON.stringify({ serverContent: { inputTranscription: { text: 'one' } } }, null, 2)));
          ws.send('{oops');
          ws.send(JSON.stringify({ serverContent: { inputTranscription: { text: 'twö' } } }));
          ws.send(Buffer.from([0xff, 0xfe, 0x7b]));
          ws.send(Buffer.from(JSON.stringify({ serverContent: { inputTranscription: { text: 'three' }, turnComplete: true } })));
        }, 20);
      });
    });
    const provider = new GeminiLiveProvider({ apiKey: 'k', baseUrl: `http://127.0.0.1:${port}`, setupTimeoutMs: 5000 });
    try {
      const conn = await provider.connect({ model: 'gemini-test', responseModality: 'text', inputTranscription: true, outputTranscription: false });
      const words: string[] = [];
      conn.on('inputTranscription', (t) => words.push(t));
      let done = false;
      conn.on('turnComplete', () => (done = true));
      conn.startDelivery();
      await waitUntil(() => done, 5000, 'the last message');
      await new Promise((r) => setTimeout(r, 50));
      expect(words).toEqual(['one', 'twö', 'three']);
      expect(rejections).toEqual([]);
      conn.close();
    } finally {
      process.off('unhandledRejection', onRejection);
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});

describe('the upstream backlog with coalesced frames', () => {
  it('keeps the newest audio of a frame larger than the backlog (not nothing), markers in place', async () => {
    const { PcmBacklog } = await import('../../src/services/upstream/pcm-backlog');
    const trims: Array<[number, number]> = [];
    const b = new PcmBacklog(300 * BYTES_PER_MS, (frame, rest) => trims.push([frame.length, rest.length]));
    const pcm = seededPcm(prng(SEED + 5), MAX_FRAME);
    b.pushActivity('start');
    b.push(pcm);
    expect(b.bufferedMs).toBe(300);
    expect(b.droppedMs).toBe(700);
    const second = seededPcm(prng(SEED + 6), 100 * BYTES_PER_MS);
    b.push(second);
    b.pushActivity('end');
    const items = b.drain();
    expect(items[0]).toEqual({ activity: 'start' });
    expect(Buffer.concat([items[1] as Buffer, items[2] as Buffer]).equals(Buffer.concat([pcm.subarray(pcm.length - 200 * BYTES_PER_MS), second]))).toBe(true);
    expect(items[3]).toEqual({ activity: 'end' });
    expect(trims).toEqual([
      [MAX_FRAME, 300 * BYTES_PER_MS],
      [300 * BYTES_PER_MS, 200 * BYTES_PER_MS],
    ]);
  });
});

/**
 * The server's own decoding thread failing, on a real spawned server process: the thread's entry is the
 * fault-injecting one (LIVE_AUDIO_DECODE_THREAD_ENTRY, honoured only with NODE_ENV=test), told by
 * FAULT_THREAD_OPTIONS to exit or to spin after some pushes. The 22 s Chromium recording goes in over REST
 * (un-awaited POSTs) and over WebSocket with seeded jitter:
 * - the thread exits mid-recording: no client error, the emulator receives as many samples as the one-shot decode
 *   (identical but for at most 600 ms after the loss, while the new decoder converges), `live_audio_decode_threads_lost_total` is 1;
 * - the thread hangs: the same, once the 5 s watchdog has terminated it;
 * - every thread dies on its first push: after 5 deaths the server decodes on the main thread and keeps serving.
 * And the setting itself: a server started with it outside NODE_ENV=test refuses to start, naming it.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { inProcessDecode } from '../helpers/in-process-decode';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { suiteSeed, withSeed } from '../helpers/seed';
import { connectAuthed } from '../helpers/ws-test-client';
import { prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import type { ThreadFaults } from './threads/fault-thread-entry';

const API = '/api/v1/live-audio';
const SEED = suiteSeed();
const FAULT_ENTRY = path.join(__dirname, 'threads', 'fault-thread-entry.ts');
/** Less than one 20 ms upstream frame may stay in the framer at the end. */
const CARRY_BYTES = 20 * 32;
const REPLY = 'Nice to meet you, Alex.';
const rec = loadRecording('chromium-long-22s');
const reference = inProcessDecode(Buffer.concat(rec.chunks));

jest.setTimeout(150_000);

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

type Transport = 'REST' | 'WebSocket';

describe(`the server's decoding thread dies or hangs, on a spawned server (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer | undefined;
  let markerDir: string | undefined;

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } }));
  });
  afterAll(async () => {
    await emu?.stop();
  });
  afterEach(async () => {
    await s?.stop();
    s = undefined;
    if (markerDir) fs.rmSync(markerDir, { recursive: true, force: true });
    markerDir = undefined;
  });

  async function serverWithFaults(faults: ThreadFaults): Promise<SpawnedServer> {
    markerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-thread-faults-'));
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      env: {
        ...NO_RATE_LIMITS,
        LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
        LIVE_AUDIO_MAX_REALTIME_FACTOR: '8',
        LIVE_AUDIO_DECODE_THREAD_ENTRY: FAULT_ENTRY,
        FAULT_THREAD_OPTIONS: JSON.stringify({ ...faults, markerDir }),
      },
    });
    return s;
  }

  async function metrics(srv: SpawnedServer): Promise<string> {
    return (await request(srv.url).get('/metrics')).text;
  }

  /** Sends the whole recording over REST (un-awaited POSTs, seeded jitter); every answer must be a 200. */
  async function overRest(srv: SpawnedServer, sessionId: string, rnd: () => number): Promise<void> {
    const h = { 'X-API-Key': srv.keys.alice, 'Content-Type': 'application/json' };
    expect((await request(srv.url).post(`${API}/session/start`).set(h).send({ session_id: sessionId })).status).toBe(200);
    const answers: Array<Promise<{ status: number; body: string }>> = [];
    for (const chunk of rec.chunks) {
      const body = JSON.stringify({ session_id: sessionId, audio_data: chunk.toString('base64'), format: 'webm' });
      answers.push(
        new Promise((resolve, reject) => {
          const req = http.request(`${srv.url}${API}/transcribe`, { method: 'POST', agent: false, headers: { ...h, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          });
          req.on('error', reject);
          req.end(body);
        }),
      );
      await new Promise((r) => setTimeout(r, 100 + Math.floor(rnd() * 120)));
    }
    const done = await Promise.all(answers);
    expect(done.filter((a) => a.status !== 200)).toEqual([]);
  }

  /** Runs the recording through one session on `transport`, and checks what the emulator got and what the client saw. */
  async function runSession(srv: SpawnedServer, transport: Transport, label: string, rnd: () => number): Promise<Buffer> {
    const before = emu.totalAudioBytes();
    const conns = emu.connections.length;
    if (transport === 'REST') {
      const sessionId = `thread_fault_${label}`;
      await overRest(srv, sessionId, rnd);
      await waitForAudio(before);
      await emu.waitFor(() => (emu.connections[conns]?.turns ?? 0) > 0, 30_000);
      const h = { 'X-API-Key': srv.keys.alice };
      const status = await request(srv.url).get(`${API}/session/${sessionId}/status`).set(h);
      expect(status.body.data.state).not.toBe('error');
      expect((await request(srv.url).post(`${API}/session/end`).set(h).send({ session_id: sessionId })).status).toBe(200);
    } else {
      const c = await connectAuthed(srv.url, srv.keys.alice);
      c.send({ type: 'start_session', session_id: `thread_fault_${label}` });
      await c.next('session_started');
      for (const chunk of rec.chunks) {
        c.send({ type: 'audio_chunk', audio_data: chunk.toString('base64'), format: 'webm' });
        await new Promise((r) => setTimeout(r, 100 + Math.floor(rnd() * 120)));
      }
      await waitForAudio(before);
      const done = await c.next('turn_complete', () => true, 30_000);
      expect(done.data).toMatchObject({ transcript: rec.spokenText });
      c.send({ type: 'end_session' });
      await c.next('session_ended', () => true, 10_000);
      expect(c.ofType('error')).toEqual([]);
      c.close();
    }
    return emu.receivedPcm().subarray(before);
  }

  async function waitForAudio(before: number): Promise<void> {
    await emu.waitFor(() => emu.totalAudioBytes() - before >= reference.length - CARRY_BYTES, 60_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
  }

  /**
   * As many samples as the one-shot decode (but the framer's last < 20 ms), and the same audio: identical up to the
   * loss, and identical again once the replacement's fresh libopus state has converged (within 600 ms, as after a
   * skipped chunk in test/rest/disorder-22s), so nothing was shifted, lost or given twice.
   */
  function expectSameAudio(got: Buffer, context: string): void {
    const n = Math.min(got.length, reference.length) - CARRY_BYTES;
    let first = 0;
    while (first < n && got[first] === reference[first]) first++;
    let last = n - 1;
    while (last >= first && got[last] === reference[last]) last--;
    const differsMs = first >= n ? 0 : (last + 1 - first) / 32;
    const summary = `${context}: got ${got.length / 32} ms, want ${reference.length / 32} ms; identical but for ${differsMs.toFixed(1)} ms from ${(first / 32).toFixed(0)} ms`;
    console.log(summary);
    expect({ summary, enough: got.length >= reference.length - CARRY_BYTES && got.length <= reference.length }).toEqual({ summary, enough: true });
    expect({ summary, withinResync: differsMs <= 600 }).toEqual({ summary, withinResync: true });
  }

  const cases: Array<{ name: string; faults: ThreadFaults; transport: Transport }> = [
    { name: 'exits mid-recording (REST)', faults: { exitAfterPushes: 8, faultyThreads: 1 }, transport: 'REST' },
    { name: 'exits mid-recording (WebSocket)', faults: { exitAfterPushes: 8, faultyThreads: 1 }, transport: 'WebSocket' },
    { name: 'hangs mid-recording (REST)', faults: { hangAfterPushes: 8, faultyThreads: 1 }, transport: 'REST' },
    { name: 'hangs mid-recording (WebSocket)', faults: { hangAfterPushes: 8, faultyThreads: 1 }, transport: 'WebSocket' },
  ];

  it.each(cases)('the thread $name: no client error, the whole recording upstream, the loss counted', ({ name, faults, transport }) =>
    withSeed(SEED, async () => {
      const srv = await serverWithFaults(faults);
      const got = await runSession(srv, transport, name.replace(/\W+/g, '_'), prng(SEED + name.length));
      expectSameAudio(got, `thread ${name}`);
      const m = await metrics(srv);
      expect(metric(m, 'live_audio_decode_threads_lost_total')).toBe(1);
      // The replacement is sound and serves the next session exactly.
      expect(metric(m, 'live_audio_decode_threads')).toBe(1);
      const next = await runSession(srv, transport, `${name.replace(/\W+/g, '_')}_next`, prng(SEED + 7));
      expect(next.subarray(0, reference.length - CARRY_BYTES).equals(reference.subarray(0, reference.length - CARRY_BYTES))).toBe(true);
      expect(metric(await metrics(srv), 'live_audio_decode_threads_lost_total')).toBe(1);
    }),
  );

  it('every thread dies on its first push: after 5 deaths the server decodes on the main thread, REST and WebSocket', () =>
    withSeed(SEED, async () => {
      const srv = await serverWithFaults({ exitAfterPushes: 0 });
      const first = await runSession(srv, 'REST', 'storm_rest', prng(SEED + 11));
      expectSameAudio(first, 'thread deaths storm, REST');
      const m = await metrics(srv);
      expect(metric(m, 'live_audio_decode_threads_lost_total')).toBe(5);
      expect(metric(m, 'live_audio_decode_threads')).toBe(0);
      const second = await runSession(srv, 'WebSocket', 'storm_ws', prng(SEED + 12));
      // Decoded on the main thread from its first byte: exactly the one-shot decode.
      expect(second.subarray(0, reference.length - CARRY_BYTES).equals(reference.subarray(0, reference.length - CARRY_BYTES))).toBe(true);
      expect(metric(await metrics(srv), 'live_audio_decode_threads_lost_total')).toBe(5);
      expect(srv.child.exitCode).toBeNull();
    }));

  it('the setting is refused outside NODE_ENV=test: the server does not start, and says why', async () => {
    const err = await spawnServer({
      env: { NODE_ENV: 'production', METRICS_PUBLIC: 'true', LIVE_AUDIO_DECODE_THREAD_ENTRY: FAULT_ENTRY },
      startTimeoutMs: 20_000,
    }).then(
      (srv) => {
        s = srv;
        return undefined;
      },
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/LIVE_AUDIO_DECODE_THREAD_ENTRY: tests only/);
  });
});

/**
 * The attacker's view: can one key's sessions make the server's (sound) decoding thread be dropped? A thread is
 * dropped when it exits or when the watchdog takes it for hung, and every stream on it (other keys' too) then
 * stalls and replays; five drops a minute put all decoding on the main thread. One key, under the default limits
 * (5 sessions at once, 20 starts a minute), starts its 20 sessions as fast as it can, each given a decode bomb
 * (15 min of valid Opus in 640 KB: ~200 ms of decoding per 128 KB the thread holds; over REST followed by 64 KB of
 * seeded random bytes) and ended at once, so the thread has the most work queued the key can give it; meanwhile
 * another key streams the 22 s recording, which must arrive upstream exactly.
 */
describe(`one key's sessions cannot get the decoding thread dropped (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } }));
    // The default entry, limits and budgets: only /transcribe's wait is off (it answers at once).
    s = await spawnServer({ geminiBaseUrl: emu.baseUrl, env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' } });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await emu?.stop();
  });

  it('20 sessions with a decode bomb each, started and ended back to back: no thread is lost, the other key gets its audio', () =>
    withSeed(SEED, async () => {
      const { opusWebmBomb } = await import('../security/audio-bombs');
      const bomb = opusWebmBomb(15).toString('base64');
      const rnd = prng(SEED + 99);
      const alice = { 'X-API-Key': s.keys.alice, 'Content-Type': 'application/json' };
      const bob = { 'X-API-Key': s.keys.bob, 'Content-Type': 'application/json' };
      const conns = emu.connections.length;
      expect((await request(s.url).post(`${API}/session/start`).set(bob).send({ session_id: 'victim' })).status).toBe(200);
      await emu.waitFor(() => emu.connections.length > conns, 10_000);
      const upstream = emu.connections[conns]!;
      const victim = (async () => {
        for (const chunk of rec.chunks) {
          const r = await request(s.url).post(`${API}/transcribe`).set(bob).send({ session_id: 'victim', audio_data: chunk.toString('base64'), format: 'webm' });
          expect(r.status).toBe(200);
          await new Promise((res) => setTimeout(res, 150 + Math.floor(rnd() * 100)));
        }
      })();
      const statuses: number[] = [];
      const t0 = performance.now();
      // Five lanes (the key's five sessions at once), each starting, feeding and ending four sessions back to back:
      // three lanes over WebSocket (the fastest way in: no HTTP per chunk), two over REST.
      await Promise.all(
        Array.from({ length: 5 }, async (_x, lane) => {
          if (lane < 3) {
            const c = await connectAuthed(s.url, s.keys.alice);
            for (let k = 0; k < 4; k++) {
              c.send({ type: 'start_session', session_id: `bomb_ws_${lane}_${k}` });
              await c.next('session_started', () => true, 10_000);
              statuses.push(200);
              c.send({ type: 'audio_chunk', audio_data: bomb, format: 'webm' });
              c.send({ type: 'end_session' });
              await c.next('session_ended', () => true, 20_000);
            }
            c.close();
            return;
          }
          for (let k = 0; k < 4; k++) {
            const id = `bomb_${lane}_${k}`;
            statuses.push((await request(s.url).post(`${API}/session/start`).set(alice).send({ session_id: id })).status);
            statuses.push((await request(s.url).post(`${API}/transcribe`).set(alice).send({ session_id: id, audio_data: bomb, format: 'webm' })).status);
            // Then bytes that are no WebM at all (seeded): the stream fails, never the thread.
            const garbage = Buffer.from(Array.from({ length: 64 * 1024 }, () => Math.floor(rnd() * 256)));
            statuses.push((await request(s.url).post(`${API}/transcribe`).set(alice).send({ session_id: id, audio_data: garbage.toString('base64'), format: 'webm' })).status);
            statuses.push((await request(s.url).post(`${API}/session/end`).set(alice).send({ session_id: id })).status);
          }
        }),
      );
      const attackMs = performance.now() - t0;
      await victim;
      const m = (await request(s.url).get('/metrics')).text;
      console.log(`attack: alice's answers ${JSON.stringify(countBy(statuses))} in ${attackMs.toFixed(0)} ms, threads lost ${metric(m, 'live_audio_decode_threads_lost_total')}`);
      expect(metric(m, 'live_audio_decode_threads_lost_total')).toBe(0);
      const n = reference.length - CARRY_BYTES;
      const got = () => Buffer.concat(upstream.pcm);
      await emu.waitFor(() => upstream.audioBytes >= n, 60_000).catch(() => undefined);
      expect(got().subarray(0, n).equals(reference.subarray(0, n))).toBe(true);
    }));
});

function countBy(xs: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

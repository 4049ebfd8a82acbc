/**
 * Issue 11, rows 4, 7 and 10, on a real spawned server process (its own ffmpeg children, its own event loop):
 * what one key holder can make the audio path cost, with `/health` probed throughout (fresh connection every
 * 50 ms; its latency is the event-loop delay a client feels) and the server's own event-loop delay read from
 * /metrics over the same stretch (see `underProbe` for what is asserted on each).
 *
 * - row 4a: FLAC in Matroska (10 h of audio in ~250 KB) is refused 415 AUDIO_UNSUPPORTED_CODEC before any ffmpeg;
 * - row 4b: a WebM holding 15 min of Opus in one chunk (decoded in-process, the default): the upstream gets at most
 *   the owner's audio budget, never faster than LIVE_AUDIO_MAX_REALTIME_FACTOR x real time after the burst, RSS
 *   stays bounded and comes back, the stream is cut with 429 AUDIO_RATE_LIMITED + Retry-After, and no ffmpeg runs;
 * - row 7: a respawn storm (PCM rate flipping on a WebSocket: an ffmpeg each; a new WebM head on every REST post: an
 *   in-process stream each) is held to the per-session decoder start budget and refused with
 *   AUDIO_DECODER_RESTART_LIMITED (429);
 * - row 10: a SIGSTOPped ffmpeg (WebM pinned to ffmpeg: LIVE_AUDIO_WEBM_DECODER=ffmpeg): no /transcribe waits past
 *   the stall deadline plus the bounded wait, the decoder is killed and replaced, and the session goes on.
 *
 * The emulator runs in a process of its own (its reply synthesis must not run in the server or the prober); what
 * reached the upstream is the server's own count of the audio it handed to the upstream socket.
 *
 * Budgets shortened for test time (and said so where used): the audio budget is 30 s/min in the bomb test (the
 * default 120 s only makes it take 57 s instead of 12.5 s), the stall deadline 2 s in the SIGSTOP test (default 5 s).
 */
import fs from 'node:fs';
import os from 'node:os';
import { probeHealth, spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { referenceDecode } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { childProcesses, processAlive, setProcessTreePriority } from '../ops/helpers';
import { connect } from '../helpers/ws-test-client';
import { flacInMatroska10h, opusWebmBomb } from './audio-bombs';
import { spawnEmulator, type EmulatorProcess } from './emulator-process';

const API = '/api/v1/live-audio';
const METRICS_TOKEN = 'metrics-token-for-the-audio-abuse-tests';
/**
 * These rows count the sessions' own decoder processes among the server's ffmpeg children, so the warm pool is
 * off here (its processes look the same); its own attacker's test is in test/audio/decoder-pool.test.ts.
 */
const NO_POOL = 'LIVE_AUDIO_DECODER_POOL_SIZE';
const MB = 1024 * 1024;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | null;
  ms: number;
}

async function post(server: SpawnedServer, path: string, body: unknown, key = server.keys.alice): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(`${server.url}${API}${path}`, {
    method: 'POST',
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, body: json, retryAfter: res.headers.get('retry-after'), ms: performance.now() - t0 };
}

async function metric(server: SpawnedServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

/** The server's own event-loop delay, max since the previous scrape (ms; monitorEventLoopDelay inside the server). */
const serverLoopMaxMs = async (server: SpawnedServer) => (await metric(server, 'live_audio_event_loop_delay_seconds{quantile="max"}')) * 1000;

/**
 * Probes /health during `attack` and reads the server's own event-loop delay over the same stretch.
 *
 * The bound (250 ms) is asserted on the server's event-loop delay, measured inside the server (which is what a
 * blocked loop shows, to the millisecond, however short the block), and on the p99 of the /health probes (what a
 * client feels). The probes' maximum is printed and held to 1 s only: it is a single sample taken by another
 * process, and with this machine shared (load 7-9 from other test runs on 2 cores) one probe now and then waited
 * 270-950 ms for the CPU while the server's own loop stayed below 230 ms; at load <= 3 the maximum was 29-214 ms.
 */
/**
 * What these tests measure is what the attack does to the server, not what other programs on the test machine do to
 * it: the server under attack (every thread of it, its ffmpeg launcher and the decoders they start) and this test
 * process (the prober) get a higher scheduling priority than the other test suites and tenants sharing the 2 cores.
 * The whole process tree is reniced (`setProcessTreePriority`): on Linux `os.setPriority(pid)` raises only the main
 * thread; the server's 11 other threads stayed at 0, and so did its ffmpeg launcher (started at boot) and every
 * ffmpeg it forked, while decoders forked in-process inherited -5 (read in /proc/<pid>/task/<tid>/stat during the
 * row-7 storm). The attack's own processes compete with the server exactly as in production. Needs CAP_SYS_NICE
 * (root in CI); without it the tests run unprioritised and say so.
 */
function prioritise(server: SpawnedServer): void {
  try {
    setProcessTreePriority(server.pid, -5);
  } catch (err) {
    console.log(`could not raise the priority of the server ${server.pid}: ${(err as Error).message}`);
  }
  try {
    os.setPriority(process.pid, -5);
  } catch (err) {
    console.log(`could not raise the priority of ${process.pid}: ${(err as Error).message}`);
  }
}

afterAll(() => {
  try {
    os.setPriority(process.pid, 0);
  } catch {
    /* was not raised */
  }
});

/**
 * A server that has served a recording already: its first decoder start (fluent-ffmpeg's capability probes, three
 * more processes) and the first run of every code path (compilation) are behind it. The attacks hit a running
 * server; what a cold start costs is not theirs.
 */
async function warmUp(server: SpawnedServer): Promise<void> {
  const bob = server.keys.bob; // another key: the attacker's budgets stay untouched
  expect((await post(server, '/session/start', { session_id: 'warm-up' }, bob)).status).toBe(200);
  for (const c of loadRecording('chromium-hello-1000ms').chunks.slice(0, 3)) {
    expect((await post(server, '/transcribe', { session_id: 'warm-up', audio_data: c.toString('base64') }, bob)).status).toBe(200);
  }
  expect((await post(server, '/session/end', { session_id: 'warm-up' }, bob)).status).toBe(200);
  await waitUntil('the warm-up decoder gone', () => childProcesses(server.pid, 'ffmpeg').length === 0, 10_000);
}

async function underProbe<T>(server: SpawnedServer, attack: () => Promise<T>): Promise<{ result: T; health: { maxMs: number; p99Ms: number; samples: number[]; failures: number }; loopMaxMs: number }> {
  prioritise(server);
  await serverLoopMaxMs(server); // opens the server's window
  const probe = probeHealth(server.url);
  try {
    const result = await attack();
    return { result, health: await probe.stop(), loopMaxMs: await serverLoopMaxMs(server) };
  } catch (err) {
    await probe.stop();
    throw err;
  }
}

function expectResponsive(what: string, r: { health: { maxMs: number; p99Ms: number; samples: number[]; failures: number }; loopMaxMs: number }): void {
  console.log(
    `${what}: server event-loop max ${r.loopMaxMs.toFixed(1)} ms; /health p99 ${r.health.p99Ms.toFixed(1)} ms, max ${r.health.maxMs.toFixed(1)} ms over ${r.health.samples.length} probes; load ${os.loadavg()[0]!.toFixed(2)}`,
  );
  expect(r.health.failures).toBe(0);
  expect(r.loopMaxMs).toBeLessThan(250);
  expect(r.health.p99Ms).toBeLessThan(250);
  expect(r.health.maxMs).toBeLessThan(1000);
}

interface SessionStatus {
  status: string;
  audio: Record<string, number>;
  upstream: { sentAudioMs: number; state: string };
}

async function status(server: SpawnedServer, sessionId: string): Promise<SessionStatus> {
  const res = await fetch(`${server.url}${API}/session/${sessionId}/status`, { headers: { 'X-API-Key': server.keys.alice } });
  const body = (await res.json()) as { data?: SessionStatus };
  if (res.status !== 200 || !body.data) throw new Error(`status ${res.status}: ${JSON.stringify(body)}`);
  return body.data;
}

/** Audio the server handed to the upstream (Gemini's) socket for a session, seconds. */
const upstreamSeconds = async (server: SpawnedServer, sessionId: string) => (await status(server, sessionId)).upstream.sentAudioMs / 1000;

/** A process's command line (Linux /proc), '' when it is gone. */
function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, pred: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

describe('audio attacks on a spawned server', () => {
  let server: SpawnedServer | undefined;
  let emu: EmulatorProcess | undefined;
  afterEach(async () => {
    await server?.stop();
    await emu?.stop();
    server = undefined;
    emu = undefined;
  });

  it('row 4a: FLAC in Matroska (10 h in ~250 KB) is refused 415 before any ffmpeg starts', async () => {
    const flac = flacInMatroska10h();
    expect(flac.length).toBeLessThan(300 * 1024);
    emu = await spawnEmulator();
    server = await spawnServer({ geminiBaseUrl: emu.baseUrl, env: { METRICS_TOKEN, [NO_POOL]: '0' } });
    const s = server;
    await warmUp(s);
    const spawnedBefore = await metric(s, 'live_audio_ffmpeg_processes_spawned_total');
    expect((await post(s, '/session/start', { session_id: 'flac' })).status).toBe(200);
    const flacB64 = flac.toString('base64'); // before the probe: the test process's own work must not delay it
    let ffmpegSeen = 0;
    const r = await underProbe(s, async () => {
      let watching = true;
      const watch = (async () => {
        while (watching) {
          ffmpegSeen = Math.max(ffmpegSeen, childProcesses(s.pid, 'ffmpeg').length);
          await sleep(2);
        }
      })();
      // Posted 10 times over ~1 s, so that the probes see it.
      for (let i = 0; i < 10; i++) {
        const format = ['webm', 'wav', undefined][i % 3];
        const a = await post(s, '/transcribe', { session_id: 'flac', audio_data: flacB64, ...(format ? { format } : {}) });
        expect(a.status).toBe(415);
        expect(a.body).toMatchObject({ success: false, code: 'AUDIO_UNSUPPORTED_CODEC' });
        expect(String(a.body.error)).toMatch(/A_FLAC/);
        await sleep(100);
      }
      watching = false;
      await watch;
    });
    expect(ffmpegSeen).toBe(0);
    expect(await metric(s, 'live_audio_ffmpeg_processes_spawned_total')).toBe(spawnedBefore);
    expectResponsive(`FLAC 10 h in ${Math.round(flac.length / 1024)} KB, refused 415 x10 with no ffmpeg`, r);
    // The session is not harmed: a real recording decodes afterwards.
    for (const c of loadRecording('chromium-hello-1000ms').chunks) {
      expect((await post(s, '/transcribe', { session_id: 'flac', audio_data: c.toString('base64') })).status).toBe(200);
    }
  }, 60_000);

  it('row 4b: a WebM holding 15 min of Opus is paced, cut at the audio budget, and costs bounded memory', async () => {
    const BUDGET_S = 30; // per minute (shortened from the default 120 for test time)
    const FACTOR = 2; // LIVE_AUDIO_MAX_REALTIME_FACTOR default
    const BURST_S = 5; // LIVE_AUDIO_PACING_BURST_MS default
    const bomb = opusWebmBomb(15);
    expect(bomb.length).toBeLessThan(700 * 1024);
    emu = await spawnEmulator();
    server = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      // (the status is polled every 100 ms: the per-user REST request limit, not under test here, is off)
      env: { METRICS_TOKEN, [NO_POOL]: '0', LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: String(BUDGET_S), LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0' },
    });
    const s = server;
    await warmUp(s);
    expect((await post(s, '/session/start', { session_id: 'bomb' })).status).toBe(200);
    const bombBody = { session_id: 'bomb', audio_data: bomb.toString('base64') };
    const laterChunk = { session_id: 'bomb', audio_data: loadRecording('chromium-hello-1000ms').chunks[0].toString('base64') };
    await sleep(300);
    const rssBefore = s.rss();
    const samples: Array<{ t: number; audioS: number; rss: number; ffmpeg: number }> = [];
    const t0 = performance.now();
    const r = await underProbe(s, async () => {
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const t = (performance.now() - t0) / 1000;
          samples.push({ t, audioS: await upstreamSeconds(s, 'bomb'), rss: s.rss(), ffmpeg: childProcesses(s.pid, 'ffmpeg').length });
          await sleep(100);
        }
      })();
      const first = await post(s, '/transcribe', bombBody);
      expect(first.status).toBe(200);
      expect(first.ms).toBeLessThan(3000); // the request does not wait for the bomb to be decoded
      await waitUntil('the budget cut', async () => (await status(s, 'bomb')).audio.budgetCuts >= 1, 40_000);
      const cutAt = (performance.now() - t0) / 1000;
      // The decoder of the cut stream is gone.
      await waitUntil('no ffmpeg left', () => childProcesses(s.pid, 'ffmpeg').length === 0, 5000);
      // More audio from this key is refused until the window frees.
      const next = await post(s, '/transcribe', laterChunk);
      expect(next.status).toBe(429);
      expect(next.body).toMatchObject({ code: 'AUDIO_RATE_LIMITED' });
      expect(Number(next.retryAfter)).toBeGreaterThanOrEqual(1);
      await sleep(3000); // let memory settle
      sampling = false;
      await sampler;
      return cutAt;
    });
    const cutAt = r.result;
    const rssAfter = s.rss();

    const upstreamS = await upstreamSeconds(s, 'bomb');
    const rssMax = Math.max(...samples.map((x) => x.rss));
    const worstPace = Math.max(...samples.map((x) => x.audioS - (BURST_S + FACTOR * x.t)));
    console.log(
      `decode bomb (15 min Opus in ${Math.round(bomb.length / 1024)} KB, budget ${BUDGET_S} s/min, factor ${FACTOR}): ` +
        `upstream ${upstreamS.toFixed(2)} s of audio, cut after ${cutAt.toFixed(1)} s, ` +
        `RSS before ${(rssBefore / MB).toFixed(1)} MB, max +${((rssMax - rssBefore) / MB).toFixed(1)} MB, after +${((rssAfter - rssBefore) / MB).toFixed(1)} MB, ` +
        `pace margin ${(-worstPace).toFixed(2)} s`,
    );
    expect(upstreamS).toBeLessThanOrEqual(BUDGET_S + 0.01);
    expect(upstreamS).toBeGreaterThan(BUDGET_S - 1);
    // Never faster than the factor after the burst (0.3 s of slack for the 100 ms sampling).
    expect(worstPace).toBeLessThanOrEqual(0.3);
    expect(cutAt).toBeGreaterThanOrEqual((BUDGET_S - BURST_S) / FACTOR - 1);
    expect(Math.max(...samples.map((x) => x.ffmpeg))).toBe(0); // decoded in-process
    expect(rssMax - rssBefore).toBeLessThan(100 * MB);
    expect(rssAfter - rssBefore).toBeLessThan(40 * MB);
    expectResponsive('decode bomb', r);
    expect(await metric(s, 'live_audio_audio_budget_cuts_total')).toBe(1);
  }, 90_000);

  it('row 7: a respawn storm from one key (PCM rate flipping over WebSocket, a new WebM head per REST post) is refused with 429', async () => {
    emu = await spawnEmulator();
    server = await spawnServer({ geminiBaseUrl: emu.baseUrl, env: { METRICS_TOKEN, [NO_POOL]: '0' } });
    const s = server;
    await warmUp(s);
    const spawnedBefore = await metric(s, 'live_audio_ffmpeg_processes_spawned_total');
    const head = loadRecording('chromium-hello-1000ms').chunks[0];
    const heads = Array.from({ length: 16 }, (_x, i) => {
      const chunk = Buffer.from(head);
      chunk[chunk.length - 40] ^= i + 1; // another packet byte: another recording, not a duplicate
      return { session_id: 'storm-rest', audio_data: chunk.toString('base64') };
    });
    let maxAlive = 0;
    const r = await underProbe(s, async () => {
      let watching = true;
      const watch = (async () => {
        while (watching) {
          maxAlive = Math.max(maxAlive, childProcesses(s.pid, 'ffmpeg').length);
          await sleep(5);
        }
      })();

      // WebSocket: 60 chunks of 100 ms PCM, the rate flipping every message (each flip needs another ffmpeg).
      const ws = await connect(`ws://127.0.0.1:${s.port}/ws/live-audio?token=${s.keys.alice}`);
      await ws.waitFor((m) => m.type === 'auth_success');
      await ws.ask({ type: 'start_session', session_id: 'storm-ws' }, ['session_started']);
      for (let i = 0; i < 60; i++) {
        const rate = i % 2 ? 24000 : 48000;
        ws.sendIfOpen({ type: 'audio_chunk', audio_data: Buffer.alloc((rate / 10) * 2, i).toString('base64'), format: 'pcm', sample_rate: rate, channels: 1 });
      }
      await waitUntil('60 answers', () => ws.messages.filter((m) => m.type === 'error').length >= 50, 15_000);
      const refusals = ws.messages.filter((m) => m.type === 'error' && m.code === 'AUDIO_DECODER_RESTART_LIMITED');
      expect(refusals.length).toBe(50);
      expect(Number(refusals[0]!.retryAfter)).toBeGreaterThanOrEqual(1);
      ws.ws.close();

      // REST: a different WebM head on every post (each one a new recording).
      expect((await post(s, '/session/start', { session_id: 'storm-rest' })).status).toBe(200);
      const answers: Answer[] = [];
      for (const body of heads) answers.push(await post(s, '/transcribe', body));
      expect(answers.slice(0, 10).map((a) => a.status)).toEqual(Array(10).fill(200));
      for (const a of answers.slice(10)) {
        expect(a.status).toBe(429);
        expect(a.body.code).toBe('AUDIO_DECODER_RESTART_LIMITED');
        expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
      }
      watching = false;
      await watch;
    });
    // 10 per session: the PCM flips started ffmpegs, the WebM heads in-process streams (no process).
    expect((await metric(s, 'live_audio_ffmpeg_processes_spawned_total')) - spawnedBefore).toBe(10);
    expect(maxAlive).toBeLessThanOrEqual(2);
    expectResponsive('respawn storm: 76 decoder starts asked, 20 made (10 per session: 10 ffmpeg, 10 in-process), 56 refused 429', r);
  }, 60_000);

  it('row 10: a SIGSTOPped ffmpeg is killed at the stall deadline and replaced; no request hangs; the session goes on', async () => {
    const STALL_MS = 2000; // LIVE_AUDIO_DECODER_STALL_MS, shortened from the default 5 s for test time
    const WAIT_MS = 1200; // LIVE_AUDIO_TRANSCRIBE_WAIT_MS default
    emu = await spawnEmulator();
    server = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      // (WebM through ffmpeg: an in-process decoder has no process to stop)
      env: { METRICS_TOKEN, [NO_POOL]: '0', LIVE_AUDIO_WEBM_DECODER: 'ffmpeg', LIVE_AUDIO_DECODER_STALL_MS: String(STALL_MS), LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0' },
    });
    const s = server;
    const rec = loadRecording('chromium-long-22s');
    const want = referenceDecode(Buffer.concat(rec.chunks)).length;
    const bodies = rec.chunks.map((c) => ({ session_id: 'stopped', audio_data: c.toString('base64') }));
    await warmUp(s);
    expect((await post(s, '/session/start', { session_id: 'stopped' })).status).toBe(200);
    let stopped = 0;
    try {
      const r = await underProbe(s, async () => {
        const pending: Array<Promise<Answer>> = [];
        for (let i = 0; i < rec.chunks.length; i++) {
          if (i === 5) {
            await Promise.all(pending); // the first five are through
            // The decoder (reading pipe:0), not a short-lived `ffmpeg -formats` capability probe.
            const decoders = () => childProcesses(s.pid, 'ffmpeg').filter((pid) => cmdline(pid).includes('pipe:0'));
            await waitUntil('the decoder', () => decoders().length === 1, 10_000);
            stopped = decoders()[0]!;
            process.kill(stopped, 'SIGSTOP');
          }
          pending.push(post(s, '/transcribe', bodies[i]));
          await sleep(250);
        }
        const answers = await Promise.all(pending);
        expect(answers.map((a) => a.status)).toEqual(rec.chunks.map(() => 200));
        await waitUntil('the stall report', async () => (await status(s, 'stopped')).audio.decoderStalls === 1, 10_000);
        await waitUntil('the stopped ffmpeg is gone', () => !processAlive(stopped), 5000);
        return Math.max(...answers.map((a) => a.ms));
      });
      const slowest = r.result;
      expect(slowest).toBeLessThan(STALL_MS + WAIT_MS + 1000);
      const replacement = childProcesses(s.pid, 'ffmpeg');
      expect(replacement).toHaveLength(1);
      expect(replacement[0]).not.toBe(stopped);
      // The session goes on: the whole recording reached the upstream (the chunks the stopped process never
      // answered were fed to its replacement).
      await waitUntil('the audio', async () => (await upstreamSeconds(s, 'stopped')) * 32000 >= want * 0.99, 15_000).catch(async (err: Error) => {
        const st = await status(s, 'stopped');
        const logs = s.logLines().filter((l) => /ffmpeg|decoder|stall|audio/.test(String(l.msg)));
        throw new Error(`${err.message}: got ${st.upstream.sentAudioMs} of ${want / 32} ms; ${JSON.stringify(st.audio)}; ${JSON.stringify(logs.slice(-12))}`);
      });
      const st = await status(s, 'stopped');
      expect(st.status).toBe('active');
      expect(st.audio).toMatchObject({ decoderStalls: 1, decoderRestarts: 1 });
      expect(await metric(s, 'live_audio_decoder_stalls_total')).toBe(1);
      console.log(`SIGSTOP: slowest /transcribe ${slowest.toFixed(0)} ms (bound ${STALL_MS + WAIT_MS} + 1000), upstream ${(await upstreamSeconds(s, 'stopped')).toFixed(2)} s of ${(want / 32000).toFixed(2)} s`);
      expectResponsive('SIGSTOPped decoder', r);
    } finally {
      if (stopped && processAlive(stopped)) process.kill(stopped, 'SIGKILL');
    }
  }, 90_000);
});

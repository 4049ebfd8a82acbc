/**
 * The ffmpeg launcher on a real spawned server (issue 13): a SIGKILLed server leaves no launcher and no ffmpeg; a
 * SIGKILLed launcher is replaced and its ffmpegs do not outlive it; a local stranger flooding the private socket
 * without the token gets no byte, starts no process and leaves nothing behind, while a session decodes on; its
 * metrics (up, restarts, starts by path and their duration) follow a SIGKILLed launcher.
 */
import fs from 'node:fs';
import net from 'node:net';
import request from 'supertest';
import { childProcesses, ffmpegLauncherOf, processAlive, prng } from '../ops/helpers';
import { spawnServer, timedGet, type SpawnedServer } from '../helpers/spawned-server';
import { waitFor } from './helpers';
import { HELLO, LONG, loadChunks } from '../helpers/fixtures';

const API = '/api/v1/live-audio';
const long = loadChunks(LONG);
const hello = loadChunks(HELLO);

const parentOf = (pid: number) => {
  try {
    return Number(/^\d+ \(.*\) \S (\d+)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))![1]);
  } catch {
    return 0;
  }
};
/** Its launcher has said ready `n` times (the first at start, before the server listens). */
const launcherReadyCount = (s: SpawnedServer) => s.logLines().filter((l) => l.msg === 'ffmpeg launcher ready').length;
const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
/** A process's state letter (R, S, T for stopped, Z...; '' when it is gone). */
const processState = (pid: number) => {
  try {
    return /^\d+ \(.*\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))![1];
  } catch {
    return '';
  }
};
/** The value of one sample line of a Prometheus text exposition (`name` with its labels as printed), NaN if absent. */
function metricValue(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}
async function waitForAsync(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function start(extra: Record<string, string> = {}): Promise<SpawnedServer> {
  return spawnServer({
    env: {
      LIVE_AUDIO_WEBM_DECODER: 'ffmpeg', // the launcher starts the WebM decoders this test watches
      LIVE_AUDIO_DECODER_LAUNCHER: 'true',
      LIVE_AUDIO_DECODER_POOL_SIZE: '2',
      LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '0',
      LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0',
      LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '0',
      LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
      ...extra,
    },
  });
}

async function openSessionWithAudio(s: SpawnedServer, id: string, chunks: Buffer[]): Promise<void> {
  const h = { 'X-API-Key': s.keys.alice };
  expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: id })).status).toBe(200);
  for (const c of chunks) {
    const r = await request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: id, format: 'webm', audio_data: c.toString('base64') });
    expect(r.status).toBe(200);
  }
}

describe('ffmpeg launcher on a spawned server', () => {
  let s: SpawnedServer | undefined;
  afterEach(async () => {
    await s?.stop();
    s = undefined;
  });

  it('kill -9 of the server mid-decode: the launcher and every ffmpeg die with it', async () => {
    s = await start();
    expect(launcherReadyCount(s)).toBe(1);
    for (let i = 0; i < 3; i++) await openSessionWithAudio(s, `k${i}`, long.slice(0, 3));
    const launcher = ffmpegLauncherOf(s.pid)!;
    await waitFor(() => childProcesses(s!.pid, 'ffmpeg').length >= 3, 10_000);
    const ffmpegs = childProcesses(s.pid, 'ffmpeg');
    for (const pid of ffmpegs) expect(parentOf(pid)).toBe(launcher); // none forked by the server itself
    process.kill(s.pid, 'SIGKILL');
    await s.exited;
    await waitFor(() => !processAlive(launcher) && ffmpegs.every((p) => !processAlive(p)), 10_000);
  }, 90_000);

  it('kill -9 of the launcher: its ffmpegs die, a new launcher takes the next starts, sessions go on', async () => {
    s = await start();
    expect(launcherReadyCount(s)).toBe(1);
    await openSessionWithAudio(s, 'l1', long.slice(0, 3));
    const first = ffmpegLauncherOf(s.pid)!;
    await waitFor(() => childProcesses(s!.pid, 'ffmpeg').length >= 1, 10_000);
    const ffmpegs = childProcesses(s.pid, 'ffmpeg');
    process.kill(first, 'SIGKILL');
    await waitFor(() => ffmpegs.every((p) => !processAlive(p)), 10_000);
    await waitFor(() => (ffmpegLauncherOf(s!.pid) ?? first) !== first, 20_000);
    const second = ffmpegLauncherOf(s.pid)!;
    await waitFor(() => launcherReadyCount(s!) === 2, 20_000);
    // The session may hear of the crash (422 AUDIO_DECODER_CRASHED, like any decoder crash, when a request is there to
    // carry it); its next chunks restart its decoder (primed); a new session decodes through the new launcher.
    const h = { 'X-API-Key': s.keys.alice };
    const statuses: Array<string | number> = [];
    for (const c of long.slice(3, 7)) {
      const r = await request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: 'l1', format: 'webm', audio_data: c.toString('base64') });
      statuses.push(r.status === 200 ? 200 : `${r.status} ${(r.body as { code?: string }).code}`);
    }
    expect(statuses.filter((x) => x !== 200).every((x) => x === '422 AUDIO_DECODER_CRASHED')).toBe(true);
    expect(statuses.filter((x) => x !== 200).length).toBeLessThanOrEqual(1);
    expect(statuses.slice(-2)).toEqual([200, 200]);
    const metrics = (await request(s.url).get('/metrics').set(h)).text;
    expect(Number(/^live_audio_decoder_restarts_total\{cause="failure"\} (\d+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    await openSessionWithAudio(s, 'l2', hello.slice(0, 2));
    await waitFor(() => childProcesses(second, 'ffmpeg').length >= 2, 10_000);
    for (const pid of childProcesses(s.pid, 'ffmpeg')) expect(parentOf(pid)).toBe(second);
    expect((await request(s.url).get('/health')).status).toBe(200);
  }, 90_000);

  it('kill -9 of the launcher shows on /metrics: it is down, a restart counts, decoders start in-process until the new one is ready', async () => {
    s = await start({ LIVE_AUDIO_DECODER_POOL_SIZE: '0' });
    const h = { 'X-API-Key': s.keys.alice };
    const scrape = async () => (await request(s!.url).get('/metrics').set(h)).text;
    const m0 = await scrape();
    expect(metricValue(m0, 'live_audio_ffmpeg_launcher_up')).toBe(1);
    expect(metricValue(m0, 'live_audio_ffmpeg_launcher_restarts_total')).toBe(0);
    expect(metricValue(m0, 'live_audio_ffmpeg_decoder_starts_total{path="launcher"}')).toBe(0);
    expect(metricValue(m0, 'live_audio_ffmpeg_decoder_starts_total{path="in_process"}')).toBe(0);

    const startsBy = async (path: string) => metricValue(await scrape(), `live_audio_ffmpeg_decoder_starts_total{path="${path}"}`);
    await openSessionWithAudio(s, 'm1', hello.slice(0, 2));
    await waitForAsync(async () => (await startsBy('launcher')) >= 1, 20_000); // its start may still be under way
    const m1 = await scrape();
    expect(metricValue(m1, 'live_audio_ffmpeg_decoder_starts_total{path="launcher"}')).toBe(1);
    expect(metricValue(m1, 'live_audio_ffmpeg_decoder_start_seconds_count{path="launcher"}')).toBe(1);
    expect(metricValue(m1, 'live_audio_ffmpeg_decoder_start_seconds_sum{path="launcher"}')).toBeGreaterThan(0);

    // SIGKILL the launcher and hold its replacement (SIGSTOP) before it says ready, so that the next start has no
    // launcher to go to. If the replacement was quicker than this test, kill that one too and try again.
    let killed = 0;
    let held: number | undefined;
    let m2 = '';
    while (held === undefined) {
      expect(killed).toBeLessThan(5);
      const current = ffmpegLauncherOf(s.pid)!;
      process.kill(current, 'SIGKILL');
      killed++;
      await waitFor(() => (ffmpegLauncherOf(s!.pid) ?? current) !== current, 20_000);
      const next = ffmpegLauncherOf(s.pid)!;
      process.kill(next, 'SIGSTOP');
      await waitFor(() => processState(next) === 'T', 5_000);
      await scrape(); // a full turn of the server's loop after the stop: a 'ready' sent before it has been read
      m2 = await scrape();
      if (metricValue(m2, 'live_audio_ffmpeg_launcher_up') === 0) held = next;
    }
    expect(metricValue(m2, 'live_audio_ffmpeg_launcher_restarts_total')).toBe(killed);

    await openSessionWithAudio(s, 'm2', hello.slice(0, 2));
    await waitForAsync(async () => (await startsBy('in_process')) >= 1, 20_000);
    const inProcess = childProcesses(s.pid, 'ffmpeg').filter((pid) => parentOf(pid) === s!.pid);
    expect(inProcess).toHaveLength(1); // m2's decoder, forked by the server itself
    const m3 = await scrape();
    expect(metricValue(m3, 'live_audio_ffmpeg_decoder_starts_total{path="in_process"}')).toBe(1);
    expect(metricValue(m3, 'live_audio_ffmpeg_decoder_start_seconds_count{path="in_process"}')).toBe(1);
    expect(metricValue(m3, 'live_audio_ffmpeg_decoder_starts_total{path="launcher"}')).toBe(1);
    expect(metricValue(m3, 'live_audio_ffmpeg_launcher_up')).toBe(0);

    // Let it go: it gets ready, and the next decoder starts through it again.
    process.kill(held, 'SIGCONT');
    await waitForAsync(async () => metricValue(await scrape(), 'live_audio_ffmpeg_launcher_up') === 1, 20_000);
    await openSessionWithAudio(s, 'm3', hello.slice(0, 2));
    await waitForAsync(async () => (await startsBy('launcher')) >= 2, 20_000);
    const m4 = await scrape();
    expect(metricValue(m4, 'live_audio_ffmpeg_decoder_starts_total{path="launcher"}')).toBe(2);
    expect(metricValue(m4, 'live_audio_ffmpeg_decoder_starts_total{path="in_process"}')).toBe(1);
    expect(metricValue(m4, 'live_audio_ffmpeg_launcher_restarts_total')).toBe(killed);
    expect(childProcesses(held, 'ffmpeg')).toHaveLength(1); // m3's
  }, 90_000);

  it('attacker: 300 local connections to the private socket without the token get no byte, start nothing, cost nothing lasting', async () => {
    s = await start({ LIVE_AUDIO_DECODER_POOL_SIZE: '0' });
    expect(launcherReadyCount(s)).toBe(1);
    const socketPath = String(s.logLines().find((l) => l.msg === 'ffmpeg launcher ready')!.socketPath);
    await openSessionWithAudio(s, 'victim', long.slice(0, 2));
    await waitFor(() => childProcesses(s!.pid, 'ffmpeg').length === 1, 10_000);
    const fdsBefore = fdCount(s.pid);
    const rssBefore = s.rss();
    const seed = Date.now() % 100_000;
    const rnd = prng(seed);
    let received = 0;
    const attempt = (i: number) =>
      new Promise<void>((resolve) => {
        const sock = net.connect({ path: socketPath });
        sock.on('data', (b) => (received += b.length));
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
        sock.on('connect', () => {
          const kind = i % 3;
          if (kind === 1) sock.write(Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256))));
          if (kind === 2) {
            const forged = Buffer.alloc(36);
            for (let j = 0; j < 32; j++) forged[j] = Math.floor(rnd() * 256);
            forged.writeUInt32BE(1 + (i % 8), 32); // ids the server really uses
            sock.write(forged);
          }
          // kind 0: silent (dropped at the handshake deadline)
        });
      });
    const h = { 'X-API-Key': s.keys.alice };
    const flood = Promise.all(Array.from({ length: 300 }, (_, i) => attempt(i)));
    const health: number[] = [];
    for (const c of long.slice(2, 8)) {
      const r = await request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: 'victim', format: 'webm', audio_data: c.toString('base64') });
      expect(r.status).toBe(200);
      const g = await timedGet(`${s.url}/health`);
      expect(g.status).toBe(200);
      health.push(g.ms);
    }
    await flood;
    expect({ seed, received }).toEqual({ seed, received: 0 });
    // No process was started for them: the victim's decoder is still the only ffmpeg.
    expect(childProcesses(s.pid, 'ffmpeg')).toHaveLength(1);
    await waitFor(() => fdCount(s!.pid) <= fdsBefore + 2, 20_000); // the silent ones go at the 5 s handshake deadline
    expect(s.rss() - rssBefore).toBeLessThan(20 * 1024 * 1024);
    expect(Math.max(...health)).toBeLessThan(1000);
  }, 90_000);
});

/**
 * The warm decoder pool (issue 13): ready ffmpeg processes ahead of the recordings that need them, handed over to a
 * session's decoder (the audio still decodes exactly), replaced when they die or age, bounded whatever the callers
 * do, and gone when no session is open and at shutdown. Real ffmpeg processes throughout; the attacker's test runs
 * on a spawned server.
 */
import request from 'supertest';
import { createFfmpegDecoderFactory, type FfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { DecoderPool } from '../../src/services/audio/decoder-pool';
import { childProcesses, processAlive, prng } from '../ops/helpers';
import { collect, decoderPids, similarity, spawnedForAttack, waitFor } from './helpers';
import { ffmpegBinary, referenceDecode } from '../helpers/ffmpeg';
import { HELLO, loadChunks } from '../helpers/fixtures';

const hello = loadChunks(HELLO);
const refHello = referenceDecode(Buffer.concat(hello));


describe('warm decoder pool', () => {
  const factories: FfmpegDecoderFactory[] = [];
  const pools: DecoderPool[] = [];
  afterEach(async () => {
    await Promise.all(factories.splice(0).map((f) => f.close()));
    await Promise.all(pools.splice(0).map((p) => p.close()));
    await waitFor(() => decoderPids().length === 0, 5000);
  });

  const newFactory = (poolSize: number, extra: { poolMaxAgeMs?: number } = {}) => {
    const f = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', poolSize, ...extra });
    factories.push(f);
    return f;
  };

  it('holds `size` ready processes while a session is open; a new recording takes one (no process start) and decodes exactly; the pool refills', async () => {
    const f = newFactory(2);
    expect(decoderPids()).toEqual([]); // nothing before a session opens
    const d = f.create('s1');
    const out = collect(d);
    await waitFor(() => f.pool!.stats().ready === 2, 10_000);
    const warm = decoderPids();
    expect(warm).toHaveLength(2);
    expect(f.processesAlive).toBe(0); // pooled processes are not decoders yet
    expect(f.processesPooled).toBe(2);

    await d.write(hello[0], { format: 'webm' });
    // The recording went to one of the processes that were already running.
    expect(warm).toContain(d.currentPid);
    expect(f.processesAlive).toBe(1);
    expect(f.processesSpawned).toBe(1);
    for (const c of hello.slice(1)) await d.write(c, { format: 'webm' });
    await d.close();
    expect(out.errors).toEqual([]);
    const sim = similarity(out.pcm(), refHello);
    expect(out.pcm().length).toBe(refHello.length);
    expect(sim.snrDb).toBeGreaterThan(60);
    expect(f.pool!.stats()).toMatchObject({ handedOver: 1 });
  }, 30_000);

  it('replaces a pooled process that dies unused (kill -9), after its back-off, and the next recording still takes a warm one', async () => {
    const f = newFactory(1);
    const d = f.create('s1');
    await waitFor(() => f.pool!.stats().ready === 1, 10_000);
    const [victim] = decoderPids();
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => f.pool!.stats().diedUnused === 1, 5000);
    // First back-off is 1 s; then a new process is ready.
    await waitFor(() => f.pool!.stats().ready === 1, 10_000);
    const [replacement] = decoderPids();
    expect(replacement).not.toBe(victim);
    await d.write(hello[0], { format: 'webm' });
    expect(d.currentPid).toBe(replacement);
    d.destroy();
  }, 30_000);

  it('a process that crashes as soon as it starts is retried with a growing back-off, never in a loop', async () => {
    // A "decoder" that exits at once: every pool start dies unused.
    const pool = new DecoderPool({
      ffmpegPath: '/bin/false',
      inputFormat: 'webm',
      codec: 'opus',
      size: 2,
      maxAgeMs: 60_000,
      backoffMs: 50,
      counters: { spawned: () => undefined, handedOver: () => undefined, handedOverExited: () => undefined },
    });
    pools.push(pool);
    pool.setActive(true);
    await new Promise((r) => setTimeout(r, 1500));
    const s = pool.stats();
    // 2 at once, then after 50, 100, 200, 400, 800 ms (each retry refills both): far from one per event-loop turn.
    expect(s.diedUnused).toBeGreaterThanOrEqual(2);
    expect(s.spawned + s.diedUnused).toBeLessThanOrEqual(2 * 14);
    expect(pool.take()).toBeUndefined();
  }, 10_000);

  it('spreads its starts out: none in the turns right after a take (the taken process is relaying its first audio), one per timer, later while the loop is busy', async () => {
    const pacing = { delayMs: 150, busyLateMs: 10, maxDeferMs: 1500 };
    const pool = new DecoderPool({
      ffmpegPath: ffmpegBinary(),
      inputFormat: 'webm',
      codec: 'opus',
      size: 2,
      maxAgeMs: 60_000,
      pacing,
      counters: { spawned: () => undefined, handedOver: () => undefined, handedOverExited: () => undefined },
    });
    pools.push(pool);
    pool.setActive(true);
    // Activation starts nothing at once, and the two starts are never in the same turn.
    expect(pool.stats()).toMatchObject({ starting: 0, ready: 0 });
    await waitFor(() => pool.stats().starting + pool.stats().ready === 1, 5000);
    expect(pool.stats().starting + pool.stats().ready).toBe(1);
    await waitFor(() => pool.stats().ready === 2, 10_000);

    const taken = pool.take();
    expect(taken).toBeDefined();
    taken!.kill();
    // The replacement waits `delayMs`: not in this turn, nor the next ones.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(pool.stats()).toMatchObject({ ready: 1, starting: 0 });

    // A busy loop (the main thread held for 300-500 ms, seeded) when the start falls due: it is put off, then made.
    const seed = Date.now() % 100_000;
    const spinMs = 300 + prng(seed)() * 200;
    const t0 = performance.now();
    while (performance.now() - t0 < spinMs) {
      /* the main thread is busy */
    }
    await waitFor(() => pool.stats().ready === 2, 10_000);
    const s = pool.stats();
    expect({ seed, deferred: s.startsDeferred > 0 }).toEqual({ seed, deferred: true });
    // Put off, never dropped: the replacement was started.
    expect({ seed, spawned: s.spawned }).toEqual({ seed, spawned: 3 });
  }, 40_000);

  it('replaces processes that reach their maximum age', async () => {
    const f = newFactory(1, { poolMaxAgeMs: 1000 });
    const d = f.create('s1');
    await waitFor(() => f.pool!.stats().ready === 1, 10_000);
    const [first] = decoderPids();
    await waitFor(() => f.pool!.stats().aged >= 1 && f.pool!.stats().ready === 1, 10_000);
    await waitFor(() => !processAlive(first!), 5000);
    expect(decoderPids()).not.toContain(first);
    d.destroy();
  }, 30_000);

  it('drains when the last session closes (no ffmpeg on an idle server) and starts again with the next one', async () => {
    const f = newFactory(2);
    const a = f.create('a');
    const b = f.create('b');
    await waitFor(() => f.pool!.stats().ready === 2, 10_000);
    await a.close();
    expect(f.pool!.stats().ready).toBe(2); // b is still open
    await b.close();
    await waitFor(() => decoderPids().length === 0, 5000);
    // (Counted as pooled until the stream saw its process's end, a moment after the OS did.)
    await waitFor(() => f.processesPooled === 0, 5000);
    const c = f.create('c');
    await waitFor(() => f.pool!.stats().ready === 2, 10_000);
    c.destroy();
    await waitFor(() => decoderPids().length === 0, 5000);
  }, 30_000);

  it('bounded: sessions opened and closed as fast as possible, each starting a recording, never make the pool start more than its budget', async () => {
    const seed = 1301;
    const rand = prng(seed);
    const f = newFactory(2);
    const t0 = performance.now();
    let maxDecoders = 0;
    for (let i = 0; i < 40; i++) {
      const d = f.create(`s${i}`);
      collect(d);
      if (rand() < 0.7) await d.write(hello[0], { format: 'webm' });
      maxDecoders = Math.max(maxDecoders, decoderPids().length);
      if (rand() < 0.5) d.destroy();
      else await d.close();
    }
    const elapsedS = (performance.now() - t0) / 1000;
    const s = f.pool!.stats();
    // Token bucket: a burst of 2 × size, then 4 × size per second.
    const bound = 4 + Math.ceil(8 * elapsedS) + 1;
    if (s.spawned > bound) throw new Error(`seed ${seed}: the pool started ${s.spawned} processes in ${elapsedS.toFixed(1)} s (budget ${bound})`);
    // Never more than one session's decoder (plus the one being flushed) and the pool, twice (drained, refilled).
    if (maxDecoders > 2 + 2 * 2) throw new Error(`seed ${seed}: ${maxDecoders} decoders at once`);
    await waitFor(() => decoderPids().length === 0, 5000);
  }, 60_000);
});

describe('warm decoder pool on a spawned server (attacker: one key holder opening and closing sessions fast)', () => {
  const server = spawnedForAttack({ LIVE_AUDIO_WEBM_DECODER: 'ffmpeg', LIVE_AUDIO_DECODER_POOL_SIZE: '2' });

  it('60 sessions started, given a recording and ended back to back: the pool stays within its budget, the process serves, and no ffmpeg is left', async () => {
    const s = server();
    const API = '/api/v1/live-audio';
    const h = { 'X-API-Key': s.keys.alice };
    const metric = async (name: string) => {
      const text = (await request(s.url).get('/metrics').set(h)).text;
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    };
    // One session stays open meanwhile (a server in use): the pool runs throughout. (Without it, sessions closed
    // faster than the pool's start pacing make it start nothing at all.)
    expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: 'pool_keep' })).status).toBe(200);
    const t0 = performance.now();
    let maxFfmpeg = 0;
    let maxPooled = 0;
    for (let i = 0; i < 60; i++) {
      const id = `pool_${i}`;
      expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: id })).status).toBe(200);
      const r = await request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: id, format: 'webm', audio_data: hello[0].toString('base64') });
      expect(r.status).toBe(200);
      maxFfmpeg = Math.max(maxFfmpeg, childProcesses(s.pid, 'ffmpeg').length);
      maxPooled = Math.max(maxPooled, await metric('live_audio_ffmpeg_processes_pooled'));
      expect((await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: id })).status).toBe(200);
    }
    const elapsedS = (performance.now() - t0) / 1000;
    const poolSpawned = await metric('live_audio_ffmpeg_pool_spawned_total');
    expect(poolSpawned).toBeGreaterThan(0);
    expect(poolSpawned).toBeLessThanOrEqual(4 + Math.ceil(8 * elapsedS) + 1);
    // Ready or starting (≤ size) plus those drained and not gone yet (≤ size: the refill waits a second after a drain).
    expect(maxPooled).toBeLessThanOrEqual(2 * 2);
    // One decoder per recording (a warm one or its own), nothing more: the pool's starts are its budget's. (At most:
    // with the ffmpeg launcher, a start still queued there when its session ended is dropped, not made.)
    const spawned = await metric('live_audio_ffmpeg_processes_spawned_total');
    expect(spawned).toBeGreaterThan(0);
    expect(spawned).toBeLessThanOrEqual(60);
    // (Ended sessions' decoders finish in the background, so the number alive at once is not the pool's to bound.)
    expect(maxFfmpeg).toBeGreaterThan(0);
    expect((await request(s.url).get('/health')).status).toBe(200);
    expect((await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: 'pool_keep' })).status).toBe(200);
    // The last session's end drains the pool: an idle server holds no ffmpeg.
    // (A pool start already under way when the drain came finishes, then is drained: wait for both to settle.)
    const idleBy = Date.now() + 10_000;
    while ((childProcesses(s.pid, 'ffmpeg').length > 0 || (await metric('live_audio_ffmpeg_processes_pooled')) > 0) && Date.now() < idleBy) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await metric('live_audio_ffmpeg_processes_pooled')).toBe(0);
    expect(childProcesses(s.pid, 'ffmpeg')).toEqual([]);
  }, 120_000);
});

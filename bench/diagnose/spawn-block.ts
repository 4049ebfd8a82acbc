/**
 * `npx tsx bench/diagnose/spawn-block.ts [recordings=30] [pool size=2] [ballast MB=150] [launcher=0|1]`: how long starting ffmpeg
 * blocks Node's main thread, and what that costs the work around it (issue 13's open finding).
 *
 * `child_process.spawn` is synchronous in the parent: libuv forks (page tables proportional to the parent's memory,
 * hence the ballast standing for a busy server's heap) and then waits until the child has called exec, which on a
 * loaded machine means until the child gets a CPU. In one process, with the real decoder factory and real ffmpeg:
 * `recordings` new WebM recordings one after another (each: a decoder, the hello recording's chunks, its first PCM,
 * destroy, a 300 ms pause), while a probe timer due every 10 ms stands for the relay's frames. Printed: each spawn
 * call's own duration (measured around `ChildProcess.prototype.spawn`: an instrument of this script only), the
 * probe's lateness (what a frame due then waited), the longest gap between two probe runs, the time from a
 * recording's first chunk to its first PCM, and the load average. `launcher=1`: the decoders are started by the
 * ffmpeg launcher (LIVE_AUDIO_DECODER_LAUNCHER), so the spawn calls counted here are the launcher's own start only.
 */
import { ChildProcess } from 'node:child_process';
import { startTimerProbe } from './timer-probe';
import { createFfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { loadChunks } from '../../test/helpers/fixtures';
import { benchFfmpeg } from '../common';
import { loadAverages } from '../proc';
import { dist, fmtDist } from '../stats';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const recordings = Number(process.argv[2] ?? 30);
  const poolSize = Number(process.argv[3] ?? 2);
  const ballastMb = Number(process.argv[4] ?? 150);
  const useLauncher = process.argv[5] === '1';
  const loadBefore = loadAverages();

  // A server's memory: half in Buffers, half in small JS objects (both touched, so resident).
  const ballast: unknown[] = [];
  for (let i = 0; i < ballastMb / 2; i++) ballast.push(Buffer.alloc(1 << 20, i & 0xff));
  for (let i = 0; i < ballastMb * 4000; i++) ballast.push({ i, s: `object ${i}` });

  const spawnMs: number[] = [];
  const proto = ChildProcess.prototype as unknown as { spawn: (...a: unknown[]) => unknown };
  const original = proto.spawn;
  proto.spawn = function timedSpawn(this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    try {
      return original.apply(this, a);
    } finally {
      spawnMs.push(performance.now() - t0);
    }
  };

  const chunks = loadChunks('chromium-hello-1000ms');
  const factory = createFfmpegDecoderFactory({ ffmpegPath: benchFfmpeg(), poolSize, poolMaxAgeMs: 600_000, useLauncher });
  await factory.launcher?.whenReady();
  // One session open throughout (a server in use): the pool runs.
  const keep = factory.create('keepalive');
  await sleep(2000);

  const probe = startTimerProbe(10);
  const { lateness, loop: h } = probe;
  const spawnsBefore = spawnMs.length;

  const firstPcm: number[] = [];
  for (let i = 0; i < recordings; i++) {
    const d = factory.create(`r${i}`);
    const t0 = performance.now();
    const got = new Promise<number>((resolve) => d.once('pcm', () => resolve(performance.now() - t0)));
    for (const c of chunks) await d.write(c, { format: 'webm' });
    firstPcm.push(await got);
    d.destroy();
    await sleep(300);
  }

  probe.stop();
  keep.destroy();
  await factory.close();
  proto.spawn = original;
  const starts = spawnMs.slice(spawnsBefore);
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const out = {
    recordings,
    pool_size: poolSize,
    launcher: useLauncher,
    ballast_mb: ballastMb,
    rss_mb: Math.round(process.memoryUsage().rss / 1e6),
    spawns: starts.length,
    spawn_call: fmtDist(dist(starts)),
    probe_lateness: fmtDist(dist(lateness)),
    probe_late_over_5ms: lateness.filter((v) => v > 5).length,
    probe_max_gap: ms(probe.maxGap()),
    loop_delay: `p50 ${ms(h.percentile(50) / 1e6)} / p99 ${ms(h.percentile(99) / 1e6)} / max ${ms(h.max / 1e6)}`,
    first_pcm: fmtDist(dist(firstPcm)),
    load_before: loadBefore,
    load_after: loadAverages(),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  ballast.length = 0;
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`spawn-block failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

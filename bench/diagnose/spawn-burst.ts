/**
 * `npx tsx bench/diagnose/spawn-burst.ts [starts=100] [launcher=1|0] [ballast MB=150] [bound ms]`: a burst of decoder
 * starts (the bench's 100 sessions starting their recordings together) and what it does to a timer on the main
 * thread (issue 13). In one process with the real decoder factory and real ffmpeg: `starts` new WebM recordings
 * begin in the same turn of the event loop (each: a decoder and the hello recording's chunks), while a probe
 * timer due every 10 ms stands for the relay's frames. Printed: the probe's lateness and longest gap, the time
 * from the burst to each recording's first PCM, the load average. With a `bound`, exits 1 when the probe's worst
 * lateness exceeds it (the launcher's claim: a burst of starts does not block the main thread).
 */
import { startTimerProbe } from './timer-probe';
import { createFfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { loadChunks } from '../../test/helpers/fixtures';
import { benchFfmpeg } from '../common';
import { loadAverages } from '../proc';
import { dist, fmtDist } from '../stats';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const starts = Number(process.argv[2] ?? 100);
  const useLauncher = (process.argv[3] ?? '1') === '1';
  const ballastMb = Number(process.argv[4] ?? 150);
  const bound = process.argv[5] === undefined ? undefined : Number(process.argv[5]);
  const loadBefore = loadAverages();

  // A server's memory: half in Buffers, half in small JS objects (both touched, so resident).
  const ballast: unknown[] = [];
  for (let i = 0; i < ballastMb / 2; i++) ballast.push(Buffer.alloc(1 << 20, i & 0xff));
  for (let i = 0; i < ballastMb * 4000; i++) ballast.push({ i, s: `object ${i}` });

  const chunks = loadChunks('chromium-hello-1000ms');
  const factory = createFfmpegDecoderFactory({ ffmpegPath: benchFfmpeg(), useLauncher, restartsPerMinute: 0 });
  await factory.launcher?.whenReady();
  await sleep(500);

  const probe = startTimerProbe(10);
  const { lateness, loop: h } = probe;
  await sleep(200);

  const t0 = performance.now();
  const decoders = Array.from({ length: starts }, (_, i) => factory.create(`b${i}`));
  const errors: string[] = [];
  let gotPcm = 0;
  const firstPcm = decoders.map(
    (d) =>
      new Promise<number>((resolve) => {
        d.once('pcm', () => {
          gotPcm++;
          resolve(performance.now() - t0);
        });
        d.on('error', (e) => errors.push(`${e.code}: ${e.message}`));
      }),
  );
  // Each recording's chunks in order (a recording's first chunk alone may give no PCM until more follows).
  await Promise.all(
    decoders.map(async (d) => {
      for (const c of chunks) await d.write(c, { format: 'webm' });
    }),
  );
  const giveUp = setTimeout(() => {
    process.stderr.write(`spawn-burst: ${starts - gotPcm} recordings gave no PCM within 60 s; errors: ${errors.join(', ') || 'none'}\n`);
    process.exit(2);
  }, 60_000);
  const pcmMs = await Promise.all(firstPcm);
  clearTimeout(giveUp);
  await sleep(200);

  probe.stop();
  for (const d of decoders) d.destroy();
  const launcherStats = factory.launcher?.stats();
  await factory.close();
  const worst = Math.max(...lateness);
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const out = {
    starts,
    launcher: useLauncher,
    launched: launcherStats?.launched ?? 0,
    fell_back_in_process: launcherStats?.refused ?? 0,
    ballast_mb: ballastMb,
    rss_mb: Math.round(process.memoryUsage().rss / 1e6),
    probe_lateness: fmtDist(dist(lateness)),
    probe_worst_ms: +worst.toFixed(1),
    probe_max_gap: ms(probe.maxGap()),
    loop_delay: `p50 ${ms(h.percentile(50) / 1e6)} / p99 ${ms(h.percentile(99) / 1e6)} / max ${ms(h.max / 1e6)}`,
    first_pcm_after_burst: fmtDist(dist(pcmMs)),
    bound_ms: bound,
    load_before: loadBefore,
    load_after: loadAverages(),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  ballast.length = 0;
  if (bound !== undefined && worst > bound) {
    process.stderr.write(`spawn-burst: the probe timer was ${worst.toFixed(1)} ms late, over the bound of ${bound} ms\n`);
    process.exit(1);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`spawn-burst failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

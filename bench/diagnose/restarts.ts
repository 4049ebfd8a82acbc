/**
 * Diagnosis of the latency of chunks that start a new recording (a new ffmpeg): the same load as `npm run bench`,
 * against a build of the server with timers around the decoder's stream changes (timed-server.ts).
 *
 *   npx tsx bench/diagnose/restarts.ts [sessions=200] [rest|ws] [seconds=30]
 */
import path from 'node:path';
import { hostPlan, log } from '../common';
import { ChunkPlan, loadRecording } from '../fixture';
import type { Transport } from '../load';
import { describeRun, runLoadBench } from '../load-bench';
import { BUILD_DIR, buildBundles, REPO_ROOT, startStack } from '../stack';
import type { ConnectionLag } from '../upstream-lag';
import { dist, fmtDist } from '../stats';
import type { RestartTimings } from './timed-server';

async function main(): Promise<void> {
  const sessions = Number(process.argv[2] ?? 200);
  const transport = (process.argv[3] ?? 'rest') as Transport;
  const seconds = Number(process.argv[4] ?? 30);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved at run time (an optional or CommonJS-only module)
  const esbuild = require('esbuild') as typeof import('esbuild');
  const timedServer = path.join(BUILD_DIR, 'timed-server.js');
  await esbuild.build({
    entryPoints: [path.join(REPO_ROOT, 'bench', 'diagnose', 'timed-server.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    outfile: timedServer,
    logLevel: 'error',
  });
  const rec = loadRecording();
  const bundles = { ...(await buildBundles()), server: timedServer };
  const stack = await startStack({ bundles, plan: hostPlan(rec, true) });
  // The timings line is long: gather all of stdout, parse it once the server stopped.
  let stdout = '';
  stack.server.proc.stdout?.on('data', (d: Buffer | string) => (stdout += d.toString()));
  try {
    log(`${sessions} ${transport} sessions for ${seconds} s against the timed server`);
    // The same run as `npm run bench`, so the lag of the restart chunks and their timings come from one run.
    const r = await runLoadBench({
      sessions,
      transport,
      durationS: seconds,
      plan: new ChunkPlan(rec),
      target: { baseUrl: stack.baseUrl, wsUrl: stack.wsUrl, apiKey: stack.apiKey },
      serverPid: stack.server.pid,
      emulatorPid: stack.emulator.pid,
      upstreamLags: async () => ((await (await fetch(`${stack.emulatorControlUrl}/lag`)).json()) as { connections: ConnectionLag[] }).connections,
    });
    for (const l of describeRun(r)) log(l);
    await stack.server.stop();
  } finally {
    await stack.stop();
  }
  const m = /TIMINGS (\{.*\})/.exec(stdout);
  if (!m) throw new Error('the timed server printed no timings');
  const timings = JSON.parse(m[1]) as RestartTimings;
  log(`old stream: stdin closed → exited, output drained: ${fmtDist(dist(timings.oldStreamEndMs))}`);
  log(`new recording: stream created → ffmpeg spawned: ${fmtDist(dist(timings.createdToSpawnedMs))}`);
  log(`  (first stream of a session, start phase: ${fmtDist(dist(timings.firstStreamCreatedToSpawnedMs))})`);
  log(`ffmpeg spawned → first PCM: ${fmtDist(dist(timings.spawnedToFirstPcmMs))}`);
  log(`header chunk: write() → accepted by the new ffmpeg: ${fmtDist(dist(timings.headerChunkAcceptedMs))}`);
  log(`other chunks: write() → first PCM: ${fmtDist(dist(timings.continuationToPcmMs))}`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

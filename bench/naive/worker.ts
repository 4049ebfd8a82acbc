/**
 * Runs one decoding design under load in a process of its own (so its CPU, and its ffmpeg children's, can be
 * measured from outside): N sessions, each writing the recording's chunks at real time (random phase) for the
 * given duration, looping as new recordings.
 *
 *   node naiveWorker.js <config.json>
 *
 * Prints `BEGIN` when the first session starts and `END <json>` once every session closed and its processes
 * exited; then waits to be stopped (SIGTERM), so the parent can take its last /proc sample.
 */
import fs from 'node:fs';
import path from 'node:path';
import { designFactory, type ChunkDone, type DesignName, type DesignSession } from './decoders';
import { dist, type Dist } from '../stats';

export interface WorkerConfig {
  design: DesignName;
  sessions: number;
  durationS: number;
  recordingDir: string;
  chunkEndMs: number[];
  loopMs: number;
  timesliceMs: number;
  ffmpegPath: string;
  startWindowMs: number;
}

export interface WorkerResult {
  design: DesignName;
  sessions: number;
  chunksWritten: number;
  chunksDone: number;
  chunksFailed: number;
  chunksSkipped: number;
  latencyMs: Dist;
  sendLagMaxMs: number;
  samplesDelivered: number;
  samplesExpected: number;
  sessionSeconds: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as WorkerConfig;
  const chunks = fs
    .readdirSync(cfg.recordingDir)
    .filter((f) => /^chunk-\d+\.webm$/.test(f))
    .sort()
    .map((f) => fs.readFileSync(path.join(cfg.recordingDir, f)));
  const per = chunks.length;
  const cumEndMs = (n: number) => Math.floor(n / per) * cfg.loopMs + cfg.chunkEndMs[n % per];
  const done: ChunkDone[] = [];
  const create = designFactory(cfg.design, cfg.ffmpegPath);
  let written = 0;
  let sendLagMax = 0;
  let expectedSamples = 0;

  process.stdout.write('BEGIN\n');
  const slot = cfg.startWindowMs / cfg.sessions;
  const sessions = await Promise.all(
    Array.from(
      { length: cfg.sessions },
      (_, i) =>
        new Promise<DesignSession>((resolve) => {
          setTimeout(() => {
            const s = create({ cumEndMs, onChunk: (d) => done.push(d) });
            const t0 = performance.now();
            const end = t0 + cfg.durationS * 1000;
            let n = 0;
            const tick = () => {
              const scheduled = t0 + n * cfg.timesliceMs;
              if (scheduled >= end) return resolve(s);
              sendLagMax = Math.max(sendLagMax, performance.now() - scheduled);
              expectedSamples += (cumEndMs(n) - (n > 0 ? cumEndMs(n - 1) : 0)) * 16;
              s.write(n, chunks[n % per]);
              written++;
              n++;
              setTimeout(tick, Math.max(0, t0 + n * cfg.timesliceMs - performance.now()));
            };
            tick();
          }, i * slot + Math.random() * slot);
        }),
    ),
  );
  await Promise.all(sessions.map((s) => s.close()));

  const result: WorkerResult = {
    design: cfg.design,
    sessions: cfg.sessions,
    chunksWritten: written,
    chunksDone: done.length,
    chunksFailed: done.filter((d) => d.failed && !d.skipped).length,
    chunksSkipped: done.filter((d) => d.skipped).length,
    latencyMs: dist(done.filter((d) => !d.skipped).map((d) => d.latencyMs)),
    sendLagMaxMs: sendLagMax,
    samplesDelivered: sessions.reduce((t, s) => t + s.samplesOut, 0),
    samplesExpected: expectedSamples,
    sessionSeconds: cfg.sessions * cfg.durationS,
  };
  process.stdout.write(`END ${JSON.stringify(result)}\n`);
  // Stay alive (idle) until the parent has read /proc.
  setInterval(() => undefined, 60_000);
  process.once('SIGTERM', () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

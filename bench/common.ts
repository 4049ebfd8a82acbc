/** Helpers shared by the bench modes: the emulator plan, output, the machine line, one load run on a fresh stack. */
import { ChunkPlan, ffmpegPath, type Recording } from './fixture';
import { runLoadBench, type LoadBenchResult } from './load-bench';
import { describeFloor, ffmpegBuild, measureFloor, type FloorMeasurement } from './floor';
import { loadAverages, machineDescription } from './proc';
import { startStack, type Bundles } from './stack';
import type { EmulatorHostPlan } from './emulator-host';
import type { ConnectionLag } from './upstream-lag';

export const BENCH_REPLY = 'Nice to meet you, Alex. Let us start the interview.';

export function hostPlan(rec: Recording, track: boolean): EmulatorHostPlan {
  return { timesliceMs: rec.timesliceMs, chunkEndMs: rec.chunkEndMs, loopMs: rec.loopMs, userTranscript: rec.spokenText, reply: BENCH_REPLY, track };
}

export function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** The ffmpeg the bench's server runs: `FFMPEG_PATH` of the server settings, else the bundled static build. */
export function benchFfmpeg(serverEnv: Record<string, string> = {}): string {
  return serverEnv.FFMPEG_PATH ?? ffmpegPath();
}

/** What the figures depend on: the machine (CPU, cores, load), Node, the ffmpeg build. */
export function environmentLines(ffmpeg: string): string[] {
  const m = machineDescription();
  const b = ffmpegBuild(ffmpeg);
  return [
    `machine: ${m.cores} × ${m.cpuModel}, ${m.memTotalGb} GB, Linux ${m.kernel}; load average ${loadAverages()}`,
    `node: ${process.version} (${process.execPath})`,
    `ffmpeg: ${b.path}: ${b.version}`,
  ];
}

/** The machine in one line (the cluster bench's header). */
export function environmentLine(): string {
  return environmentLines(ffmpegPath()).join('; ');
}

/** Measures the floor with the bench's ffmpeg and logs it (see bench/floor.ts). */
export function floorFor(rec: Recording, ffmpeg: string): FloorMeasurement {
  const f = measureFloor(ffmpeg, Buffer.concat(rec.chunks), rec.loopMs / 1000);
  log(describeFloor(ffmpegBuild(ffmpeg), f));
  return f;
}

/** One load run on a fresh stack. */
export async function loadOnFreshStack(
  bundles: Bundles,
  rec: Recording,
  opts: {
    sessions: number;
    transport: 'rest' | 'ws';
    durationS: number;
    serverNodeArgs?: string[];
    serverEnv?: Record<string, string>;
    floorMsPerAudioS?: number;
  },
): Promise<LoadBenchResult> {
  const stack = await startStack({ bundles, plan: hostPlan(rec, true), serverNodeArgs: opts.serverNodeArgs, serverEnv: opts.serverEnv });
  try {
    return await runLoadBench({
      sessions: opts.sessions,
      transport: opts.transport,
      durationS: opts.durationS,
      plan: new ChunkPlan(rec),
      target: { baseUrl: stack.baseUrl, wsUrl: stack.wsUrl, apiKey: stack.apiKey },
      serverPid: stack.server.pid,
      emulatorPid: stack.emulator.pid,
      floorMsPerAudioS: opts.floorMsPerAudioS,
      upstreamLags: async () => ((await (await fetch(`${stack.emulatorControlUrl}/lag`)).json()) as { connections: ConnectionLag[] }).connections,
      log: (l) => log(`  · ${l}`),
    });
  } finally {
    await stack.stop();
  }
}

/** Helpers shared by the bench modes: the emulator plan, output, the machine line, one load run on a fresh stack. */
import { execFileSync } from 'node:child_process';
import { ChunkPlan, ffmpegPath, type Recording } from './fixture';
import { runLoadBench, type LoadBenchResult } from './load-bench';
import { loadAverage1, machineDescription } from './proc';
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

export function environmentLine(): string {
  const m = machineDescription();
  let ff = 'unknown';
  try {
    ff = execFileSync(ffmpegPath(), ['-version'], { encoding: 'utf8' }).split('\n')[0].split(' ').slice(0, 3).join(' ');
  } catch {
    // reported as unknown
  }
  return `machine: ${m.cores} × ${m.cpuModel}, ${m.memTotalGb} GB, Linux ${m.kernel}, Node ${process.version}, ${ff}; load average ${loadAverage1()}`;
}

/** One load run on a fresh stack. */
export async function loadOnFreshStack(
  bundles: Bundles,
  rec: Recording,
  opts: { sessions: number; transport: 'rest' | 'ws'; durationS: number; serverNodeArgs?: string[]; serverEnv?: Record<string, string> },
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
      upstreamLags: async () => ((await (await fetch(`${stack.emulatorControlUrl}/lag`)).json()) as { connections: ConnectionLag[] }).connections,
      log: (l) => log(`  · ${l}`),
    });
  } finally {
    await stack.stop();
  }
}

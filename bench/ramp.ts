/**
 * Ramp mode: raise the number of concurrent sessions (a fresh server per step) until they fall behind real time
 * (steady-phase upstream lag p99 over 100 ms, or sessions failing), then bisect between the last step held and the
 * first one lost. Reports the largest N held.
 */
import type { BenchArgs } from './cli-args';
import type { Recording } from './fixture';
import { describeRun, keptUp, type LoadSummary } from './load-bench';
import { log, loadOnFreshStack } from './common';
import type { Bundles } from './stack';

export function nextRampLevel(n: number): number {
  if (n < 200) return Math.min(200, n * 2);
  if (n < 600) return n + 100;
  return n + 200;
}

export function held(s: LoadSummary): boolean {
  return keptUp(s);
}

export interface RampResult {
  /** The largest N held, per transport (the capacity on this machine). */
  capacity_sessions: number;
  mode: 'ramp';
  transport: 'rest' | 'ws';
  duration_s: number;
  max_sessions_held: number;
  first_lost: number | null;
  cpu_pct_at_max: number | null;
  steps: Pick<
    LoadSummary,
    'sessions' | 'kept_up' | 'lag_p99_ms' | 'lag_max_ms' | 'relay_p99_ms' | 'cpu_pct' | 'node_cpu_pct' | 'ffmpeg_cpu_pct' | 'cost_ratio' | 'errors'
  >[];
}

/** One ramp over one transport; `floorMsPerAudioS` gives each step's cost ratio. */
export async function runRamp(
  bundles: Bundles,
  rec: Recording,
  args: BenchArgs & { transport: 'rest' | 'ws' },
  floorMsPerAudioS?: number,
): Promise<RampResult> {
  const steps: RampResult['steps'] = [];
  const byN = new Map<number, LoadSummary>();
  const step = async (n: number): Promise<boolean> => {
    log(`ramp: ${n} sessions`);
    const r = await loadOnFreshStack(bundles, rec, { sessions: n, transport: args.transport, durationS: args.durationS, serverEnv: args.serverEnv, floorMsPerAudioS });
    for (const l of describeRun(r)) log(`    ${l}`);
    const s = r.summary;
    byN.set(n, s);
    steps.push({
      sessions: n,
      kept_up: s.kept_up,
      lag_p99_ms: s.lag_p99_ms,
      lag_max_ms: s.lag_max_ms,
      relay_p99_ms: s.relay_p99_ms,
      cpu_pct: s.cpu_pct,
      node_cpu_pct: s.node_cpu_pct,
      ffmpeg_cpu_pct: s.ffmpeg_cpu_pct,
      cost_ratio: s.cost_ratio,
      errors: s.errors,
    });
    log(`ramp: ${n} ${args.transport} sessions ${held(s) ? 'held' : 'LOST'} (lag p99 ${s.lag_p99_ms} ms, server CPU ${s.cpu_pct}% of one core, cost ratio ${s.cost_ratio})`);
    return held(s);
  };

  let good = 0;
  let bad: number | null = null;
  for (let n = args.sessions; n <= args.maxSessions; n = nextRampLevel(n)) {
    if (await step(n)) good = n;
    else {
      bad = n;
      break;
    }
  }
  // Two bisection steps between the last held and the first lost level.
  for (let i = 0; i < 2 && bad !== null && bad - good > Math.max(20, good * 0.1); i++) {
    const mid = Math.round((good + bad) / 2 / 10) * 10;
    if (mid <= good || mid >= bad) break;
    if (await step(mid)) good = mid;
    else bad = mid;
  }
  return {
    capacity_sessions: good,
    mode: 'ramp',
    transport: args.transport,
    duration_s: args.durationS,
    max_sessions_held: good,
    first_lost: bad,
    cpu_pct_at_max: good ? (byN.get(good)?.cpu_pct ?? null) : null,
    steps,
  };
}

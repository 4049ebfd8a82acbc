/**
 * A timer due every `periodMs`, standing for the relay's frames, plus Node's event-loop delay histogram: what a
 * frame due during some work waited. Start it, do the work, `stop()`, then read the figures.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface TimerProbe {
  /** How late each run of the timer was, ms. */
  readonly lateness: number[];
  /** The longest gap between two runs, ms. */
  maxGap(): number;
  /** The event-loop delay histogram (ns). */
  readonly loop: IntervalHistogram;
  stop(): void;
}

export function startTimerProbe(periodMs = 10): TimerProbe {
  const lateness: number[] = [];
  let maxGap = 0;
  let last = performance.now();
  let due = last + periodMs;
  const timer = setInterval(() => {
    const t = performance.now();
    lateness.push(Math.max(0, t - due));
    maxGap = Math.max(maxGap, t - last);
    last = t;
    due = t + periodMs;
  }, periodMs);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  return {
    lateness,
    maxGap: () => maxGap,
    loop,
    stop: () => {
      loop.disable();
      clearInterval(timer);
    },
  };
}

import type { Registry } from 'prom-client';

export interface WindowSummaryOptions {
  name: string;
  help: string;
  /** Quantiles exported, e.g. [0.5, 0.9, 0.99]. */
  percentiles: readonly number[];
  /** The window: quantiles cover the last `maxAgeSeconds × (ageBuckets − 1) / ageBuckets` to `maxAgeSeconds`. */
  maxAgeSeconds: number;
  ageBuckets: number;
  /** Samples kept per age bucket (fixed memory: 8 bytes each); beyond it a bucket keeps a uniform sample of what it saw. */
  samplesPerBucket?: number;
  registers?: Registry[];
  /** Clock (tests). */
  now?: () => number;
  /** Uniform [0, 1) source for the sampling beyond `samplesPerBucket` (tests pass a seeded one). */
  random?: () => number;
}

/** One value of a metric as prom-client's registry formats it. */
interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

export const DEFAULT_SAMPLES_PER_BUCKET = 4096;

/**
 * A Prometheus summary of quantiles over a sliding window, exported exactly as prom-client's `Summary` with
 * `maxAgeSeconds`/`ageBuckets` (same `# TYPE … summary`, `{quantile="…"}` lines, cumulative `_sum` and `_count`),
 * for the hot path's latencies (one observation per audio chunk and two per `/transcribe`). prom-client pushed every
 * observation into one t-digest per age bucket (five tree insertions and, now and then, a compression each): 3-4 %
 * of the main thread's busy time under REST load. Here an observation is one store into a fixed array; the
 * quantiles are computed when scraped (a sort of at most `ageBuckets × samplesPerBucket` numbers), and they are the
 * window's exact order statistics (nearest rank) while no bucket holds more than `samplesPerBucket` samples, a
 * uniform sample of them beyond. Memory is fixed at construction, whatever the traffic.
 */
export class WindowSummary {
  readonly name: string;
  readonly help: string;
  readonly type = 'summary';
  readonly aggregator = 'sum';
  private readonly percentiles: readonly number[];
  private readonly buckets: Float64Array[];
  /** Observations each bucket saw since it was cleared (it stores at most `samplesPerBucket` of them). */
  private readonly seen: number[];
  private readonly rotateEveryMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private current = 0;
  private rotatedAt: number;
  private sum = 0;
  private count = 0;

  constructor(o: WindowSummaryOptions) {
    this.name = o.name;
    this.help = o.help;
    this.percentiles = [...o.percentiles];
    const perBucket = Math.max(1, Math.floor(o.samplesPerBucket ?? DEFAULT_SAMPLES_PER_BUCKET));
    const n = Math.max(1, Math.floor(o.ageBuckets));
    this.buckets = Array.from({ length: n }, () => new Float64Array(perBucket));
    this.seen = new Array<number>(n).fill(0);
    this.rotateEveryMs = (o.maxAgeSeconds * 1000) / n;
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.rotatedAt = this.now();
    for (const r of o.registers ?? []) r.registerMetric(this as never);
  }

  observe(value: number): void {
    this.rotate();
    const i = this.current;
    const b = this.buckets[i];
    const k = this.seen[i]++;
    if (k < b.length) {
      b[k] = value;
    } else {
      // Reservoir sampling: every observation of this bucket is kept with the same probability.
      const j = Math.floor(this.random() * (k + 1));
      if (j < b.length) b[j] = value;
    }
    this.sum += value;
    this.count++;
  }

  /** Samples held now (bounded by `ageBuckets × samplesPerBucket`). */
  held(): number {
    this.rotate();
    let n = 0;
    for (let i = 0; i < this.buckets.length; i++) n += Math.min(this.seen[i], this.buckets[i].length);
    return n;
  }

  /** The window's quantile `q` (nearest rank), or undefined when the window is empty. */
  quantile(q: number): number | undefined {
    const sorted = this.window();
    return sorted.length ? rank(sorted, q) : undefined;
  }

  reset(): void {
    this.seen.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  /** prom-client's registry reads this (the shape of its own metrics' `get()`). */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const sorted = this.window();
    const values: MetricValue[] = this.percentiles.map((q) => ({ labels: { quantile: q }, value: sorted.length ? rank(sorted, q) : 0 }));
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  private window(): Float64Array {
    const out = new Float64Array(this.held());
    let o = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      const n = Math.min(this.seen[i], this.buckets[i].length);
      out.set(this.buckets[i].subarray(0, n), o);
      o += n;
    }
    return out.sort();
  }

  /** Every `rotateEveryMs` the oldest bucket is cleared and becomes the current one. */
  private rotate(): void {
    const t = this.now();
    if (t - this.rotatedAt < this.rotateEveryMs) return;
    // After a silence longer than the window, every bucket is cleared once (not once per elapsed period).
    const steps = Math.min(this.buckets.length, Math.floor((t - this.rotatedAt) / this.rotateEveryMs));
    for (let s = 0; s < steps; s++) {
      this.current = (this.current + 1) % this.buckets.length;
      this.seen[this.current] = 0;
    }
    this.rotatedAt += Math.floor((t - this.rotatedAt) / this.rotateEveryMs) * this.rotateEveryMs;
  }
}

function rank(sorted: Float64Array, q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

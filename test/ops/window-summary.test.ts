/**
 * The sliding-window summary behind `live_audio_*_recent_seconds`: exact quantiles of the window, the window's
 * rotation, fixed memory whatever is observed, and the exposition prom-client's registry writes for it (what the
 * bench and dashboards read). Random values are seeded; the seed is printed.
 */
import { Registry } from 'prom-client';
import { WindowSummary } from '../../src/observability/window-summary';
import { prng } from './helpers';

const SEED = Number(process.env.TEST_SEED ?? 1301);

const exact = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};

describe(`WindowSummary (seed ${SEED})`, () => {
  it('gives the exact nearest-rank quantiles of what it holds', () => {
    const rnd = prng(SEED);
    const s = new WindowSummary({ name: 'x', help: 'x', percentiles: [0.5, 0.9, 0.99], maxAgeSeconds: 60, ageBuckets: 5, now: () => 0 });
    const xs = Array.from({ length: 3000 }, () => rnd() * 0.2);
    for (const x of xs) s.observe(x);
    for (const q of [0.5, 0.9, 0.99]) expect(s.quantile(q)).toBe(exact(xs, q));
    expect(new WindowSummary({ name: 'y', help: 'y', percentiles: [0.5], maxAgeSeconds: 60, ageBuckets: 5 }).quantile(0.5)).toBeUndefined();
  });

  it('forgets what is older than the window, one age bucket at a time', () => {
    let t = 0;
    const s = new WindowSummary({ name: 'x', help: 'x', percentiles: [0.5], maxAgeSeconds: 60, ageBuckets: 5, now: () => t });
    s.observe(10); // bucket of [0, 12 s)
    t = 12_000;
    s.observe(1); // [12, 24 s)
    t = 59_999;
    expect(s.held()).toBe(2);
    expect(s.quantile(0.99)).toBe(10);
    t = 60_000; // the first bucket is cleared and becomes the current one
    expect(s.held()).toBe(1);
    expect(s.quantile(0.99)).toBe(1);
    t = 60_000 + 10 * 60_000; // a long silence clears everything
    expect(s.held()).toBe(0);
    s.observe(3);
    expect(s.quantile(0.5)).toBe(3);
  });

  it('holds at most ageBuckets × samplesPerBucket samples however much is observed; beyond, a uniform sample', () => {
    const rnd = prng(SEED + 1);
    const s = new WindowSummary({ name: 'x', help: 'x', percentiles: [0.5], maxAgeSeconds: 60, ageBuckets: 5, samplesPerBucket: 1000, now: () => 0, random: rnd });
    const xs: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      const x = rnd();
      xs.push(x);
      s.observe(x);
    }
    expect(s.held()).toBe(1000);
    // A uniform sample of 1,000 from U(0,1): its median is within ±0.06 of 0.5 (> 99.99 % of the time).
    expect(Math.abs(s.quantile(0.5)! - 0.5)).toBeLessThan(0.06);
  });

  it("is exposed by prom-client's registry as a summary: quantile lines, cumulative _sum and _count", async () => {
    const r = new Registry();
    const s = new WindowSummary({ name: 'live_audio_test_recent_seconds', help: 'test', percentiles: [0.5, 0.99], maxAgeSeconds: 60, ageBuckets: 5, registers: [r] });
    for (const x of [0.125, 0.25, 0.5, 1]) s.observe(x);
    const text = await r.metrics();
    expect(text).toContain('# TYPE live_audio_test_recent_seconds summary');
    expect(text).toMatch(/^live_audio_test_recent_seconds\{quantile="0\.5"\} 0\.25$/m);
    expect(text).toMatch(/^live_audio_test_recent_seconds\{quantile="0\.99"\} 1$/m);
    expect(text).toMatch(/^live_audio_test_recent_seconds_sum 1\.875$/m);
    expect(text).toMatch(/^live_audio_test_recent_seconds_count 4$/m);
  });
});

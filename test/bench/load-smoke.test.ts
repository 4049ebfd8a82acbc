/**
 * Smoke test of the benchmark's load generator (bench/): 2 REST sessions × 3 s against an in-process server with
 * the in-process emulator. It checks the summary line's shape and that the measurements are really taken (audio
 * reached the emulator, the server's relay latency was scraped), not any timing goal.
 */
import { ChunkPlan, ffmpegPath, loadRecording } from '../../bench/fixture';
import { measureFloor } from '../../bench/floor';
import { REQUIRED_SUMMARY_FIELDS, runLoadBench, summaryLine } from '../../bench/load-bench';
import { BENCH_LIMITS_ENV } from '../../bench/stack';
import { UpstreamLagTracker } from '../../bench/upstream-lag';
import { startTestServer, type TestServer } from '../helpers/test-server';

describe('bench load generator (smoke)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: BENCH_LIMITS_ENV });
  });
  afterAll(async () => t.close());

  it('runs 2 sessions for 3 s and prints a summary line with every field', async () => {
    const rec = loadRecording();
    const plan = new ChunkPlan(rec);
    const floor = measureFloor(ffmpegPath(), Buffer.concat(rec.chunks), rec.loopMs / 1000, 3);
    // One ffmpeg decoding Opus: more than nothing, far less than real time (1000 ms per audio second).
    expect(floor.msPerAudioS).toBeGreaterThan(0);
    expect(floor.msPerAudioS).toBeLessThan(200);
    const tracker = new UpstreamLagTracker(() => t.emu.connections, { timesliceMs: rec.timesliceMs, chunkEndMs: rec.chunkEndMs, loopMs: rec.loopMs });
    const r = await runLoadBench({
      sessions: 2,
      transport: 'rest',
      durationS: 3,
      plan,
      target: { baseUrl: t.url, wsUrl: `ws://127.0.0.1:${t.port}/ws/live-audio`, apiKey: t.keys.alice },
      serverPid: process.pid,
      upstreamLags: async () => tracker.lags(),
      floorMsPerAudioS: floor.msPerAudioS,
      startWindowMs: 200,
      settleMs: 300,
    });

    const line = summaryLine(r);
    expect(line).not.toContain('\n');
    const parsed = JSON.parse(line) as Record<string, unknown>;
    for (const field of REQUIRED_SUMMARY_FIELDS) expect(parsed).toHaveProperty(field);
    expect(parsed).toMatchObject({ sessions: 2, transport: 'rest', duration_s: 3, sessions_started: 2, errors: 0 });
    expect(typeof parsed.kept_up).toBe('boolean');
    for (const f of [
      'relay_p50_ms',
      'relay_p99_ms',
      'transcribe_p50_ms',
      'transcribe_p99_ms',
      'transcribe_handling_p50_ms',
      'transcribe_handling_p99_ms',
      'cpu_pct',
      'rss_mb',
      'children_rss_mb',
      'mb_per_session',
      'floor_ms_per_audio_s',
      'cost_ratio',
    ]) {
      expect(typeof parsed[f]).toBe('number');
    }
    // The ratio is the run's CPU per session-second over the floor measured above.
    expect(parsed.cost_ratio as number).toBeCloseTo((parsed.cpu_ms_per_session_s as number) / floor.msPerAudioS, 0);
    // /transcribe's own handling excludes the designed wait, so it is below the whole server time.
    expect(r.details.transcribeHandling.p50).toBeLessThan(r.details.transcribeServer.p50);
    // The relay latency came from the server's summary, the lag from audio that reached the emulator.
    expect(parsed.relay_p50_ms as number).toBeGreaterThan(0);
    expect(r.details.upstreamConnections).toBe(2);
    expect(r.details.lagAllMs.n).toBeGreaterThanOrEqual(2 * 3);
    expect(r.details.transcribeClientMs.n).toBeGreaterThanOrEqual(2 * 3);
  }, 30_000);
});

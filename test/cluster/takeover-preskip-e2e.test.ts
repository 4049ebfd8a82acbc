/**
 * A takeover keeps a recording's OpusHead pre-skip where it belongs: at the recording's head, dropped once.
 * Chromium writes a pre-skip of 0; other recorders (Firefox, ffmpeg) write 312 (6.5 ms at 48 kHz, 104 samples at
 * 16 kHz). Here the 22 s Chromium recording's OpusHead is patched to 312, so the owner drops 104 samples at its
 * start; the owner is killed (kill -9) mid-recording and the next chunk goes to the other instance, which takes the
 * session over from Redis and primes a new decoder with the stored init segment. That decoder continues the
 * recording: it must not drop the pre-skip again. On real processes: a real redis-server, two spawned instances
 * (in-process WebM decoding, the default), the emulator.
 *
 * Measured: where in the recording the new upstream's audio sits. The owner's upstream got the in-process decode of
 * the chunks before the kill (`prefix` samples); the new upstream's audio must line up with the one-shot decode from
 * `prefix` on (best lag 0 within +/- 400 samples, correlation > 0.99 over 6 s); with the pre-skip dropped again it
 * sits 104 samples later.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import type { StoredTurn } from '../../src/cluster/cluster-sessions';
import { loadRecording } from '../helpers/fixtures';
import { inProcessDecode } from '../helpers/in-process-decode';
import { LIVE_AUDIO_API as API } from '../helpers/frontend-client';
import { clusterForFile, FAST_HEARTBEATS, keyHeaders, until } from '../helpers/cluster';
import { suiteSeed } from '../helpers/seed';
import { prng } from '../ops/helpers';
import { samples } from '../audio/helpers';

jest.setTimeout(180_000);

const SEED = suiteSeed();
const NON_CHROME_PRE_SKIP = 312;

/** The recording with its OpusHead's pre-skip set to `preSkip` (48 kHz samples). */
function withPreSkip(chunks: Buffer[], preSkip: number): Buffer[] {
  const head = Buffer.from(chunks[0]!);
  const at = head.indexOf(Buffer.from('OpusHead'));
  if (at < 0) throw new Error('no OpusHead in the first chunk');
  head.writeUInt16LE(preSkip, at + 10);
  return [head, ...chunks.slice(1)];
}

const chunks = withPreSkip(loadRecording('chromium-long-22s').chunks, NON_CHROME_PRE_SKIP);
const spokenText = loadRecording('chromium-long-22s').spokenText;
const reference = inProcessDecode(Buffer.concat(chunks));

/** The lag (samples) in [-maxLag, maxLag] at which `got` best matches `ref` from `at` on, and its correlation. */
function bestLag(got: Int16Array, ref: Int16Array, at: number, n: number, maxLag: number): { lag: number; corr: number } {
  let best = { lag: 0, corr: -2 };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let syy = 0;
    let sxy = 0;
    for (let i = 0; i < n; i++) {
      const x = got[i]!;
      const y = ref[at + lag + i]!;
      sx += x;
      sy += y;
      sxx += x * x;
      syy += y * y;
      sxy += x * y;
    }
    const cov = sxy - (sx * sy) / n;
    const corr = cov / Math.sqrt((sxx - (sx * sx) / n) * (syy - (sy * sy) / n));
    if (corr > best.corr) best = { lag, corr };
  }
  return best;
}

const fc = clusterForFile({ instances: 2, nginx: false, env: { ...FAST_HEARTBEATS, LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '1000' } });
const cluster = fc.cluster;

it(`a takeover does not drop a non-Chrome recording's pre-skip again (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const [a, b] = cluster.instances;
  const headers = keyHeaders(cluster).alice();
  const sessionId = `preskip_${SEED}_${Date.now()}`;
  const KILL_BEFORE = 5 + Math.floor(rnd() * 10); // the first chunk posted after the kill (of 22)
  cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: spokenText, reply: 'OK.' } }));
  const connsBefore = cluster.emulator.connections.length;
  expect((await request(a!.server.url).post(`${API}/session/start`).set(headers).send({ session_id: sessionId, response_modality: 'text' })).status).toBe(200);
  const post = (url: string, i: number) =>
    request(url).post(`${API}/transcribe`).set(headers).send({ session_id: sessionId, audio_data: chunks[i]!.toString('base64'), format: 'webm' });

  for (let i = 0; i < KILL_BEFORE; i++) {
    expect((await post(a!.server.url, i)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100 + rnd() * 100));
  }
  // The owner decodes the recording's head, dropping the pre-skip once: its upstream gets exactly this.
  const prefix = inProcessDecode(Buffer.concat(chunks.slice(0, KILL_BEFORE)));
  expect(prefix.equals(reference.subarray(0, prefix.length))).toBe(true);
  const first = () => cluster.emulator.connections[connsBefore]!;
  await until(() => (first() && first().audioBytes >= prefix.length - 20 * 32 ? true : undefined), 20_000, `the owner's audio upstream (seed ${SEED})`);
  await until(async () => {
    const r = await fc.records.get({ principal: 'key:alice', sessionId });
    return r && (r.turn as StoredTurn).unsentMs < 20 && r.resumptionHandle ? true : undefined;
  }, 10_000, `the owner's record to settle (seed ${SEED})`);
  a!.server.child.kill('SIGKILL');
  await a!.server.exited;

  for (let i = KILL_BEFORE; i < chunks.length; i++) {
    const r = await post(b!.server.url, i);
    expect({ i, status: r.status, code: r.body.code }).toEqual({ i, status: 200, code: undefined });
    await new Promise((res) => setTimeout(res, 100 + rnd() * 100));
  }
  const second = () => cluster.emulator.connections[connsBefore + 1]!;
  const restBytes = reference.length - prefix.length;
  await until(() => (second() && second().audioBytes >= restBytes - 20 * 32 ? true : undefined), 30_000, `the rest of the recording upstream (seed ${SEED})`);
  expect(second().resumedFrom).toBeDefined();

  const got = samples(Buffer.concat(second().pcm));
  const ref = samples(reference);
  const at = prefix.length / 2;
  // 6 s from 0.5 s after the resume point (past the fresh decoder's first frames).
  const from = 8000;
  const n = Math.min(6 * 16_000, got.length - from - 400);
  const m = bestLag(got.subarray(from), ref, at + from, n, 400);
  console.log(
    `takeover with pre-skip ${NON_CHROME_PRE_SKIP} (seed ${SEED}): killed before chunk ${KILL_BEFORE}, resumed audio ${got.length} samples ` +
      `(the rest of the one-shot decode: ${restBytes / 2}), best lag ${m.lag} samples, correlation ${m.corr.toFixed(5)}`,
  );
  expect(m.corr).toBeGreaterThan(0.99);
  expect(m.lag).toBe(0);
  await request(b!.server.url).post(`${API}/session/end`).set(headers).send({ session_id: sessionId });
});

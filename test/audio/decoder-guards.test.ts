/**
 * The decoder's own bounds, with real ffmpeg: a stopped (SIGSTOP) process is killed at the stall deadline and
 * replaced, with the input it never answered fed again; held output is not a stall; input waiting for held output is
 * bounded (AUDIO_BACKLOG_FULL); a session may start only so many decoders a minute (AUDIO_DECODER_RESTART_LIMITED).
 */
import { createFfmpegDecoderFactory, type FfmpegSessionDecoder } from '../../src/services/audio/ffmpeg-session-decoder';
import { AudioLimitError } from '../../src/services/audio/session-audio-decoder';
import { collect, pseudoRandomBytes, rejection, waitFor } from './helpers';
import { ffmpegBinary, referenceDecode } from '../helpers/ffmpeg';
import { loadChunks } from '../helpers/fixtures';

const created: FfmpegSessionDecoder[] = [];
afterEach(() => created.splice(0).forEach((d) => d.destroy()));
const pids: number[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
});

function make(opts: Parameters<typeof createFfmpegDecoderFactory>[0] extends infer O ? Partial<O> : never = {}) {
  const factory = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', ...opts });
  const dec = factory.create('guards');
  created.push(dec);
  return { factory, dec, out: collect(dec) };
}

const hello = loadChunks('chromium-hello-1000ms');
const refHello = referenceDecode(Buffer.concat(hello));
const long = loadChunks('chromium-long-22s');
const refLong = referenceDecode(Buffer.concat(long));

describe('stall deadline', () => {
  it('a SIGSTOPped ffmpeg is killed after LIVE_AUDIO_DECODER_STALL_MS, replaced, and the unanswered chunks decode', async () => {
    const { factory, dec, out } = make({ stallMs: 1500 }); // (a loaded machine may take ~1 s to start ffmpeg)
    await dec.write(hello[0]!, { format: 'webm' });
    await dec.write(hello[1]!, { format: 'webm' });
    await waitFor(() => out.pcm().length >= 2 * 32000 - 3200);
    const stopped = dec.currentPid!;
    pids.push(stopped);
    process.kill(stopped, 'SIGSTOP');
    const t0 = Date.now();
    for (const c of hello.slice(2)) await dec.write(c, { format: 'webm' }); // nothing blocks the writer
    await waitFor(() => dec.stats().stalls === 1, 5000);
    const detectedMs = Date.now() - t0;
    expect(detectedMs).toBeGreaterThanOrEqual(1450);
    expect(detectedMs).toBeLessThan(1500 + 2000);
    await waitFor(() => dec.currentPid !== undefined && dec.currentPid !== stopped, 3000);
    await waitFor(() => out.pcm().length >= refHello.length - 2 * 32, 15_000).catch(() => undefined);
    await dec.close();
    expect(out.errors).toEqual([]); // reported as a stall (stats, metrics, log), not as a failed request
    // Everything the stopped process never answered was fed to its replacement: the sample count is the whole recording.
    expect(Math.abs(out.pcm().length - refHello.length)).toBeLessThanOrEqual(2 * 16 * 2);
    expect(out.pcm().subarray(0, 2 * 32000 - 3200).equals(refHello.subarray(0, 2 * 32000 - 3200))).toBe(true);
    expect(dec.stats()).toMatchObject({ stalls: 1, restarts: 1, spawns: 2 });
    expect(factory.processesAlive).toBe(0);
  });

  it('chunks keep coming while it stalls and is replaced: every one decodes once, in order', async () => {
    const { dec, out } = make({ stallMs: 1500 });
    for (const c of long.slice(0, 3)) await dec.write(c, { format: 'webm' });
    await waitFor(() => out.pcm().length >= 2 * 32000, 10_000);
    const stopped = dec.currentPid!;
    pids.push(stopped);
    process.kill(stopped, 'SIGSTOP');
    // One chunk every 150 ms: some before the stall is noticed, one the very moment it is (while the stopped
    // process is being killed), some while it is replaced, some after.
    const rest = long.slice(3);
    dec.on('audioEvent', (e) => {
      if (e.kind === 'decoder_stall' && rest.length) void dec.write(rest.shift()!, { format: 'webm' });
    });
    while (rest.length) {
      await dec.write(rest.shift()!, { format: 'webm' });
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitFor(() => dec.stats().stalls === 1, 5000);
    await waitFor(() => out.pcm().length >= refLong.length - 2 * 32, 15_000).catch(() => undefined);
    await dec.close();
    expect(Math.abs(out.pcm().length - refLong.length)).toBeLessThanOrEqual(2 * 32);
    // Before the stop and after the replacement has converged, the PCM is the reference itself.
    expect(out.pcm().subarray(0, 2 * 32000).equals(refLong.subarray(0, 2 * 32000))).toBe(true);
    const tail = 5 * 32000;
    expect(out.pcm().subarray(-tail - 64, -64).equals(refLong.subarray(-tail - 64, -64))).toBe(true);
  });

  it('stopped while its output was held: nothing it never delivered is lost, nothing is doubled', async () => {
    const { dec, out } = make({ stallMs: 1500 });
    await dec.write(long[0]!, { format: 'webm' });
    await waitFor(() => out.pcm().length > 0);
    dec.pauseOutput(); // the pacer holds the output: decoded audio waits in ffmpeg's pipes (22 s do not fit)
    for (const c of long.slice(1)) await dec.write(c, { format: 'webm' });
    await new Promise((r) => setTimeout(r, 200));
    const stopped = dec.currentPid!;
    pids.push(stopped);
    process.kill(stopped, 'SIGSTOP');
    dec.resumeOutput();
    await waitFor(() => dec.stats().stalls === 1, 5000);
    await waitFor(() => dec.currentPid !== undefined && dec.currentPid !== stopped, 3000);
    // Let the replacement decode what it was given (close() would kill it after 2 s on a loaded machine).
    await waitFor(() => out.pcm().length >= refLong.length - 2 * 32, 15_000).catch(() => undefined);
    await dec.close();
    // Whatever the stopped process had not handed over is decoded again by its replacement; what it had handed
    // over is not repeated. The replacement starts with a fresh Opus state (a few hundred ms differ in value).
    expect(Math.abs(out.pcm().length - refLong.length)).toBeLessThanOrEqual(2 * 32);
  });

  it('held output is no stall: a decoder paused for longer than the deadline goes on when released', async () => {
    const { dec, out } = make({ stallMs: 1000 });
    await dec.write(hello[0]!, { format: 'webm' });
    await waitFor(() => out.pcm().length > 0, 10_000); // started
    dec.pauseOutput();
    for (const c of hello.slice(1)) await dec.write(c, { format: 'webm' });
    await new Promise((r) => setTimeout(r, 2500));
    expect(dec.stats().stalls).toBe(0);
    const held = out.pcm().length;
    expect(held).toBeLessThan(refHello.length); // ffmpeg is back-pressured, not drained into memory
    dec.resumeOutput();
    await dec.close();
    expect(out.pcm().equals(refHello)).toBe(true);
  });
});

describe('bounds', () => {
  it('input waiting for held output is bounded: more is refused with AUDIO_BACKLOG_FULL (429)', async () => {
    const { dec } = make({ maxQueuedInputBytes: 64 * 1024 });
    dec.pauseOutput();
    await dec.write(hello[0]!, { format: 'webm' });
    let refused: unknown;
    let accepted = 0;
    for (let i = 0; i < 100 && !refused; i++) {
      try {
        await dec.write(pseudoRandomBytes(32000, i), { format: 'pcm', sampleRate: 24000 });
        accepted += 32000;
      } catch (e) {
        refused = e;
      }
    }
    // What ffmpeg, its pipes and Node's stream buffers absorb before the input queue grows, plus the 64 KiB bound.
    expect(accepted).toBeLessThan(1024 * 1024);
    expect(refused).toBeInstanceOf(AudioLimitError);
    expect((refused as AudioLimitError).code).toBe('AUDIO_BACKLOG_FULL');
    expect((refused as AudioLimitError).retryAfterSec).toBeGreaterThanOrEqual(1);
  });

  it('a respawn storm (PCM rate flipping) is refused after the per-session start budget', async () => {
    const { factory, dec } = make({ restartsPerMinute: 10 });
    const outcomes: string[] = [];
    for (let i = 0; i < 14; i++) {
      const rate = i % 2 ? 24000 : 48000;
      try {
        await dec.write(pseudoRandomBytes(rate / 10 * 2, i), { format: 'pcm', sampleRate: rate });
        outcomes.push('ok');
      } catch (e) {
        outcomes.push((e as AudioLimitError).code);
      }
    }
    expect(outcomes.slice(0, 10)).toEqual(Array(10).fill('ok'));
    expect(outcomes.slice(10)).toEqual(Array(4).fill('AUDIO_DECODER_RESTART_LIMITED'));
    expect(factory.processesSpawned).toBe(10);
    const err = await rejection(dec.write(pseudoRandomBytes(4800, 99), { format: 'pcm', sampleRate: 8000 }));
    expect(err.code).toBe('AUDIO_DECODER_RESTART_LIMITED');
    expect((err as unknown as AudioLimitError).retryAfterSec).toBeGreaterThan(50);
    // 16 kHz mono needs no process: still accepted.
    await dec.write(pseudoRandomBytes(3200, 7), { format: 'pcm', sampleRate: 16000 });
  });
});

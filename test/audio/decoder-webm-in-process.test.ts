/**
 * The session decoder with browser WebM/Opus decoded in-process (LIVE_AUDIO_WEBM_DECODER=in_process, the default):
 * the same routing, ordering, priming and bounds as with ffmpeg, and no process at all. (The ffmpeg path keeps its
 * own tests: decoder-webm, decoder-guards, decoder-pool, ... pinned to `webmDecoder: 'ffmpeg'`.)
 */
import { createFfmpegDecoderFactory, type FfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { AudioDecodeError, AudioLimitError } from '../../src/services/audio/session-audio-decoder';
import { collect, decoderPids, headerThenGarbage, rejection, similarity } from './helpers';
import { webmPrimingBytes, WebmResumeTracker } from '../../src/services/audio/webm-resume';
import { suiteSeed } from '../helpers/seed';
import { prng } from '../ops/helpers';
import { ffmpegBinary } from '../helpers/ffmpeg';
import { HELLO, LONG, SHORT, loadChunks } from '../helpers/fixtures';
import { inProcessDecode } from '../helpers/in-process-decode';

const SEED = suiteSeed();
const hello = loadChunks(HELLO);
const short = loadChunks(SHORT);
const long = loadChunks(LONG);
const refHello = inProcessDecode(Buffer.concat(hello));
const refShort = inProcessDecode(Buffer.concat(short));

const created: Array<{ destroy(): void }> = [];
const factories: FfmpegDecoderFactory[] = [];
afterEach(async () => {
  created.splice(0).forEach((d) => d.destroy());
  await Promise.all(factories.splice(0).map((f) => f.close()));
});

function newFactory(extra: Partial<Parameters<typeof createFfmpegDecoderFactory>[0]> = {}) {
  const factory = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), ...extra });
  factories.push(factory);
  const create = (label: string) => {
    const d = factory.create(label);
    created.push(d);
    return d;
  };
  return { factory, create };
}

describe('session decoder, WebM/Opus decoded in-process', () => {
  it.each([
    [HELLO, hello, refHello],
    [SHORT, short, refShort],
  ])('%s fed chunk by chunk equals the one-shot decode; no process is started', async (_name, chunks, ref) => {
    const { factory, create } = newFactory({ poolSize: 2 });
    const dec = create('s1');
    const out = collect(dec);
    for (const c of chunks) {
      await dec.write(c, { format: 'webm' });
      expect(factory.inProcessStreams).toBe(1);
    }
    expect(decoderPids()).toEqual([]); // no pool either: it only serves ffmpeg WebM
    expect(factory.pool).toBeUndefined();
    await dec.close();
    expect(out.errors).toEqual([]);
    expect(out.pcm().equals(ref)).toBe(true);
    expect(out.chunks.every((c) => c.length % 2 === 0)).toBe(true);
    expect(factory.processesSpawned).toBe(0);
    expect(factory.processesAlive).toBe(0);
    expect(factory.processesPooled).toBe(0);
    expect(factory.inProcessStreams).toBe(0);
    expect(dec.currentPid).toBeUndefined();
    expect(dec.stats()).toMatchObject({ spawns: 1, restarts: 0, container: 'webm' });
  });

  it('overlapping un-awaited writes keep their order; a second EBML header starts a new stream after the first', async () => {
    const { create } = newFactory();
    const dec = create('s2');
    const out = collect(dec);
    const first = hello.slice(0, 3);
    await Promise.all([...first, ...short].map((c) => dec.write(c, { format: 'webm' })));
    await dec.close();
    expect(out.errors).toEqual([]);
    expect(out.pcm().equals(Buffer.concat([inProcessDecode(Buffer.concat(first)), refShort]))).toBe(true);
    expect(dec.stats()).toMatchObject({ spawns: 2 });
  });

  it('header + garbage → AUDIO_DECODE_FAILED after the good audio; the next chunks decode on a primed restart', async () => {
    const { factory, create } = newFactory();
    const dec = create('s3');
    const out = collect(dec);
    const err = await headerThenGarbage(dec, out, hello[0]!);
    expect(err).toBeInstanceOf(AudioDecodeError);
    expect(err.code).toBe('AUDIO_DECODE_FAILED');
    const before = out.pcm().length;
    expect(before).toBeGreaterThanOrEqual(30000);
    expect(out.pcm().equals(refHello.subarray(0, before))).toBe(true);
    for (const c of hello.slice(1)) await dec.write(c, { format: 'webm' });
    await dec.close();
    const after = out.pcm().subarray(before);
    expect(after.length).toBe(refHello.length - before);
    // A fresh libopus state mid-stream converges on the one-shot decode within 600 ms (as ffmpeg's does).
    const from = 600 * 32;
    expect(after.subarray(from).equals(refHello.subarray(before + from))).toBe(true);
    expect(dec.stats()).toMatchObject({ restarts: 1, spawns: 2 });
    expect(factory.decodeErrors).toBe(1);
    expect(factory.processesSpawned).toBe(0);
  });

  it('held output stops decoding; input waiting for it is bounded (AUDIO_BACKLOG_FULL); released, every accepted chunk decodes', async () => {
    const { create } = newFactory({ maxQueuedInputBytes: 64 * 1024 });
    const dec = create('s4');
    const out = collect(dec);
    dec.pauseOutput();
    const accepted: Buffer[] = [];
    let refused: unknown;
    for (const c of long) {
      try {
        await dec.write(c, { format: 'webm' });
        accepted.push(c);
      } catch (e) {
        refused = e;
        break;
      }
    }
    expect(refused).toBeInstanceOf(AudioLimitError);
    expect((refused as AudioLimitError).code).toBe('AUDIO_BACKLOG_FULL');
    expect(accepted.length).toBeGreaterThanOrEqual(3);
    expect(accepted.length).toBeLessThanOrEqual(6); // 64 KiB of ~16 KB chunks, one over at most
    await new Promise((r) => setTimeout(r, 50));
    expect(out.pcm().length).toBe(0);
    expect(dec.inputPending()).toBe(true);
    dec.resumeOutput();
    await dec.close();
    expect(out.pcm().equals(inProcessDecode(Buffer.concat(accepted)))).toBe(true);
  });

  it('destroy() stops at once: nothing more is emitted and the stream is released', async () => {
    const { factory, create } = newFactory();
    const dec = create('s5');
    const out = collect(dec);
    for (const c of long.slice(0, 5)) await dec.write(c, { format: 'webm' });
    dec.destroy();
    const n = out.pcm().length;
    await new Promise((r) => setTimeout(r, 50));
    expect(out.pcm().length).toBe(n);
    expect(factory.inProcessStreams).toBe(0);
    expect((await rejection(dec.write(long[5]!, { format: 'webm' }))).message).toMatch(/destroyed/);
  });

  it("LIVE_AUDIO_WEBM_DECODER=ffmpeg: the same recording goes to one ffmpeg (the setting's other value)", async () => {
    const { factory, create } = newFactory({ webmDecoder: 'ffmpeg' });
    const dec = create('s6');
    const out = collect(dec);
    for (const c of short) await dec.write(c, { format: 'webm' });
    await dec.close();
    expect(out.errors).toEqual([]);
    expect(factory.processesSpawned).toBe(1);
    expect(factory.inProcessStreams).toBe(0);
    expect(Math.abs(out.pcm().length - refShort.length)).toBeLessThanOrEqual(960 * 2);
  });

  // A takeover primes a fresh decoder with the recording's head (webmPrimingBytes, written as resumesStream): the
  // recording began on the dead instance, which dropped its OpusHead pre-skip; the new stream must not drop it again.
  // Chromium's pre-skip is 0; other recorders write 312 (104 samples at 16 kHz), patched in here.
  it.each([0, 1])(`a stream primed for a takeover keeps a non-Chrome pre-skip (312) dropped once (decoding threads: %i; seed ${SEED})`, async (threads) => {
    const chunks = [Buffer.from(long[0]!), ...long.slice(1)];
    const at = chunks[0]!.indexOf(Buffer.from('OpusHead'));
    chunks[0]!.writeUInt16LE(312, at + 10);
    const ref = inProcessDecode(Buffer.concat(chunks));
    const k = 2 + Math.floor(prng(SEED)() * (chunks.length - 4));
    const tracker = new WebmResumeTracker();
    for (const c of chunks.slice(0, k)) tracker.push(c);
    const prefix = inProcessDecode(Buffer.concat(chunks.slice(0, k)));
    const { create } = newFactory({ decodeThreads: threads });
    const dec = create(`preskip${threads}`);
    const out = collect(dec);
    await dec.write(webmPrimingBytes(tracker.initSegment!, tracker.resumePoint()), { format: 'webm', resumesStream: true });
    for (const c of chunks.slice(k)) await dec.write(c, { format: 'webm' });
    await dec.close();
    expect(out.errors).toEqual([]);
    const got = out.pcm();
    // Every sample after the split, none dropped (104 fewer with the pre-skip dropped again); the same audio.
    expect({ k, samples: got.length / 2 }).toEqual({ k, samples: (ref.length - prefix.length) / 2 });
    expect(similarity(got, ref.subarray(prefix.length)).corr).toBeGreaterThan(0.99);
  });
});

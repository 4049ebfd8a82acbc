import pino from 'pino';
import { createFfmpegDecoderFactory, FfmpegSessionDecoder } from '../../src/services/audio/ffmpeg-session-decoder';
import { AudioDecodeError, AudioTooLargeError } from '../../src/services/audio/session-audio-decoder';
import { summariseStderr } from '../../src/services/audio/ffmpeg-stream';
import { collect, headerThenGarbage, pseudoRandomBytes, resplit, simpleBlockPayloads, rejection, similarity, waitFor } from './helpers';
import { ffmpegBinary, referenceDecode } from '../helpers/ffmpeg';
import { HELLO, SHORT, loadChunks } from '../helpers/fixtures';
import { LogCapture } from '../helpers/log-capture';

const hello = loadChunks(HELLO);
const short = loadChunks(SHORT);
const refHello = referenceDecode(Buffer.concat(hello));
const refShort = referenceDecode(Buffer.concat(short));

const created: Array<{ destroy(): void }> = [];
afterEach(() => created.splice(0).forEach((d) => d.destroy()));

function newFactory(extra: { maxChunkBytes?: number } = {}) {
  const factory = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', ...extra });
  return {
    create(label: string) {
      const d = factory.create(label);
      created.push(d);
      return d;
    },
    get processesAlive() {
      return factory.processesAlive;
    },
    get processesSpawned() {
      return factory.processesSpawned;
    },
    get decodeErrors() {
      return factory.decodeErrors;
    },
  };
}


describe('FfmpegSessionDecoder: WebM/Opus from MediaRecorder', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (r: unknown) => unhandled.push(r);
  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => process.off('unhandledRejection', onUnhandled));
  afterEach(() => expect(unhandled).toEqual([]));

  it('references decode to the expected lengths', () => {
    expect(refHello.length).toBe(192000); // 6.0 s at 16 kHz
    expect(refShort.length).toBe(96000); // 3.0 s
  });

  it.each([
    [HELLO, hello, refHello],
    [SHORT, short, refShort],
  ])('%s fed chunk by chunk (awaited) equals the one-shot reference decode', async (_name, chunks, ref) => {
    const factory = newFactory();
    const dec = factory.create('s1');
    const out = collect(dec);
    for (const c of chunks) await dec.write(c, { format: 'webm' });
    await dec.close();
    const pcm = out.pcm();
    expect(out.errors).toEqual([]);
    expect(Math.abs(pcm.length - ref.length) / ref.length).toBeLessThanOrEqual(0.02);
    expect(pcm.length).toBe(ref.length); // in practice identical
    expect(pcm.equals(ref)).toBe(true);
    expect(out.chunks.every((c) => c.length % 2 === 0)).toBe(true);
    expect(factory.processesSpawned).toBe(1);
    expect(factory.processesAlive).toBe(0);
    expect(dec.processesAlive).toBe(0);
  });

  it('overlapping un-awaited writes keep their order', async () => {
    const factory = newFactory();
    const dec = factory.create('s2');
    const out = collect(dec);
    const writes = hello.map((c) => dec.write(c, { format: 'webm' }));
    const closed = dec.close(); // queued behind the writes
    await Promise.all([...writes, closed]);
    const pcm = out.pcm();
    expect(pcm.length).toBe(refHello.length);
    const sim = similarity(refHello, pcm);
    expect(sim.corr).toBeGreaterThan(0.999);
    expect(pcm.equals(refHello)).toBe(true);
  });

  it('emits each chunk\'s audio while the session is running (no buffering until close)', async () => {
    const dec = newFactory().create('live');
    const out = collect(dec);
    await dec.write(hello[0]!, { format: 'webm' });
    await waitFor(() => out.pcm().length >= 30000, 3000);
    await dec.write(hello[1]!, { format: 'webm' });
    await waitFor(() => out.pcm().length >= 62000, 3000);
    expect(dec.processesAlive).toBe(1);
    await dec.close();
  });

  it('uses the expected ffmpeg command line (no -fflags nobuffer)', async () => {
    const log = new LogCapture();
    const logger = pino({ level: 'debug' }, log);
    const factory = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', logger });
    const dec = factory.create('cmd');
    await dec.write(short[0]!, { format: 'webm' });
    await dec.close();
    const started: any = log.lines().find((l) => l.msg === 'ffmpeg started');
    // Demuxer and decoder forced, no protocol but the pipe.
    expect(started.args).toContain('-hide_banner -loglevel repeat+error -protocol_whitelist pipe -f webm -c:a opus -i pipe:0');
    expect(started.args).toMatch(/-ac 1 .*-ar 16000 .*-f s16le pipe:1$/);
    expect(started.args).not.toContain('nobuffer');
    expect(started.session).toBe('cmd');
  });

  it('refuses a continuation chunk without a header, random bytes and empty chunks up front', async () => {
    const factory = newFactory();
    const dec = factory.create('s3');
    const e1 = await rejection(dec.write(hello[3]!, { format: 'webm' }));
    expect(e1).toBeInstanceOf(AudioDecodeError);
    expect(e1.code).toBe('AUDIO_STREAM_NO_HEADER');
    expect(e1.message).toBe(
      'Audio chunk is a continuation of a WebM stream whose first chunk (with the header) was not received; start a new recording',
    );
    const e2 = await rejection(dec.write(pseudoRandomBytes(16000, 7), { format: 'webm' }));
    expect(e2.code).toBe('AUDIO_INVALID');
    expect(e2.message).toMatch(/^Audio data is not a WebM stream/);
    expect((await rejection(dec.write(Buffer.alloc(0), { format: 'webm' }))).code).toBe('AUDIO_INVALID');
    expect((await rejection(dec.write(hello[0]!, { format: 'mp3' as never }))).code).toBe('AUDIO_UNSUPPORTED_FORMAT');
    expect(factory.processesSpawned).toBe(0);
    // Still usable afterwards.
    const out = collect(dec);
    for (const c of short) await dec.write(c, { format: 'webm' });
    await dec.close();
    expect(out.pcm().equals(refShort)).toBe(true);
  });

  it('refuses chunks above maxChunkBytes with AudioTooLargeError', async () => {
    const dec = newFactory({ maxChunkBytes: 10000 }).create('big');
    const err = await rejection(dec.write(hello[0]!, { format: 'webm' }));
    expect(err).toBeInstanceOf(AudioTooLargeError);
    expect((err as unknown as AudioTooLargeError).maxBytes).toBe(10000);
    await dec.close();
  });

  it('header chunk + garbage → error event AUDIO_DECODE_FAILED; the next continuation decodes on a decoder primed with the head', async () => {
    const factory = newFactory();
    const dec = factory.create('s4');
    const out = collect(dec);
    const err = await headerThenGarbage(dec, out, hello[0]!);
    expect(err).toBeInstanceOf(AudioDecodeError);
    expect(err.code).toBe('AUDIO_DECODE_FAILED');
    expect(err.message).toMatch(/^Audio could not be decoded: the WebM stream is corrupt \(/);
    expect(err.message).not.toMatch(/\/|0x[0-9a-f]{6,}/); // no paths, no pointers
    await waitFor(() => dec.processesAlive === 0);
    // The audio decoded before the garbage was delivered.
    const before = out.pcm().length;
    expect(before).toBeGreaterThanOrEqual(30000);
    // No dead session: the next chunks of the recording decode (the session kept the head).
    for (const c of hello.slice(1)) await dec.write(c, { format: 'webm' });
    await dec.close();
    const after = out.pcm().subarray(before);
    expect(after.length).toBe(refHello.length - before); // everything after the first chunk, sample count exact
    // A fresh Opus decoder state converges on the reference within ~0.5 s (measured: last differing sample at
    // 489 ms after the restart); from then on the PCM is the reference itself.
    const from = 600 * 32;
    expect(after.subarray(from).equals(refHello.subarray(before + from))).toBe(true);
    expect(factory.decodeErrors).toBe(1);
    expect(factory.processesSpawned).toBe(2);
    expect(dec.stats()).toMatchObject({ restarts: 1, spawns: 2 });
    expect(factory.processesAlive).toBe(0);
  });

  it('a truncated head is refused up front (its codec cannot be checked), before any ffmpeg', async () => {
    const factory = newFactory();
    const dec = factory.create('s5');
    const err = await rejection(dec.write(hello[0]!.subarray(0, 100), { format: 'webm' }));
    expect(err.code).toBe('AUDIO_INVALID');
    expect(err.message).toMatch(/must hold its whole head/);
    expect((await rejection(dec.write(hello[1]!, { format: 'webm' }))).code).toBe('AUDIO_STREAM_NO_HEADER');
    expect(factory.processesSpawned).toBe(0);
    await dec.close();
  });

  /** The hello recording with `count` Opus packets (from block 20 on) made invalid (code-3 packet, 0 frames). */
  function helloWithBadPackets(count: number): Buffer[] {
    const all = Buffer.from(Buffer.concat(hello));
    for (const b of simpleBlockPayloads(all).slice(20, 20 + count)) {
      all[b.start] = all[b.start]! | 0x03;
      all[b.start + 1] = 0x00;
    }
    return resplit(all, hello.map((c) => c.length));
  }

  it('an isolated corrupt Opus packet is skipped by ffmpeg and only logged', async () => {
    const dec = newFactory().create('opus1');
    const out = collect(dec);
    for (const c of helloWithBadPackets(1)) await dec.write(c, { format: 'webm' });
    await dec.close();
    expect(out.errors).toEqual([]);
    // One 60 ms packet (960 samples) lost at most.
    expect(refHello.length - out.pcm().length).toBeLessThanOrEqual(1920);
  });

  it('persistent decode errors from ffmpeg → AUDIO_DECODE_FAILED with the stderr summarised', async () => {
    const factory = newFactory();
    const dec = factory.create('opus6');
    const out = collect(dec);
    const errP = out.nextError();
    const chunks = helloWithBadPackets(8);
    for (const c of chunks.slice(0, 3)) await dec.write(c, { format: 'webm' });
    const err = await errP;
    expect(err.code).toBe('AUDIO_DECODE_FAILED');
    expect(err.message).toBe('Audio could not be decoded: Error parsing Opus packet header.');
    await waitFor(() => dec.processesAlive === 0);
    // The session goes on: the next chunk restarts the decoder, primed with the recording's head.
    const before = out.pcm().length;
    await dec.write(chunks[5]!, { format: 'webm' });
    await waitFor(() => out.pcm().length > before);
    expect(dec.stats().restarts).toBe(1);
    await dec.close();
  });

  it('summariseStderr strips pointers and paths', () => {
    expect(
      summariseStderr([
        '[matroska,webm @ 0x3a634bc0] Invalid track number 8545',
        '[matroska,webm @ 0x3a634bc0] Invalid track number 8545',
        '/tmp/secret/dir/input.webm: Invalid data found when processing input',
        'pipe:0: Function not implemented',
        'ignored fourth line',
      ]),
    ).toBe('matroska,webm: Invalid track number 8545; <path>: Invalid data found when processing input; Function not implemented');
    expect(summariseStderr(['x'.repeat(400)]).length).toBe(300);
  });

  it('kill -9 of ffmpeg → error event AUDIO_DECODER_CRASHED, node survives, the next chunks decode on a primed restart', async () => {
    const factory = newFactory();
    const dec = factory.create('s6') as FfmpegSessionDecoder;
    const out = collect(dec);
    await dec.write(hello[0]!, { format: 'webm' });
    await waitFor(() => dec.currentPid !== undefined); // writes resolve once queued; the process is being spawned
    const pid = dec.currentPid;
    expect(typeof pid).toBe('number');
    expect(factory.processesAlive).toBe(1);
    const errP = out.nextError();
    process.kill(pid!, 'SIGKILL');
    const err = await errP;
    expect(err.code).toBe('AUDIO_DECODER_CRASHED');
    expect(err.message).toMatch(/SIGKILL/);
    expect(factory.processesAlive).toBe(0);
    expect(dec.currentPid).toBeUndefined();
    // Writes racing with the crash must not produce unhandled rejections either; they decode on a new process.
    const mid = out.pcm().length;
    const racing = [hello[1]!, hello[2]!].map((c) => dec.write(c, { format: 'webm' }).catch((e: AudioDecodeError) => e.code));
    expect(await Promise.all(racing)).toEqual(['in_order', 'in_order']);
    await waitFor(() => out.pcm().length >= mid + 2 * 32000 - 3200);
    expect(factory.processesSpawned).toBe(2);
    const before = out.pcm().length;
    for (const c of short) await dec.write(c, { format: 'webm' });
    await dec.close();
    // The restarted hello stream's last samples come out when it is flushed for the new recording, then short: at
    // most the 100 ms the wait above left out, plus what the stream held back (a 20 ms frame and 1 ms of resampler).
    const pcm = out.pcm();
    expect(pcm.length - before).toBeLessThanOrEqual(refShort.length + 3200 + 21 * 32);
    expect(pcm.subarray(pcm.length - refShort.length).equals(refShort)).toBe(true);
    expect(factory.decodeErrors).toBe(1);
  });

  it('a second EBML header restarts the stream; both streams come out complete and in order', async () => {
    const factory = newFactory();
    const dec = factory.create('s7');
    const out = collect(dec);
    const first = hello.slice(0, 3);
    const refFirst = referenceDecode(Buffer.concat(first));
    const writes = [...first, ...short].map((c) => dec.write(c, { format: 'webm' }));
    await Promise.all(writes);
    await dec.close();
    const pcm = out.pcm();
    expect(out.errors).toEqual([]);
    expect(pcm.length).toBe(refFirst.length + refShort.length);
    expect(pcm.equals(Buffer.concat([refFirst, refShort]))).toBe(true);
    expect(factory.processesSpawned).toBe(2);
    expect(factory.processesAlive).toBe(0);
  });

  it('switching webm → pcm flushes the WebM stream first', async () => {
    const factory = newFactory();
    const dec = factory.create('s8');
    const out = collect(dec);
    const raw = pseudoRandomBytes(3200, 9);
    await Promise.all([...short.map((c) => dec.write(c, { format: 'webm' })), dec.write(raw, { format: 'pcm' })]);
    await dec.close();
    expect(out.pcm().equals(Buffer.concat([refShort, raw]))).toBe(true);
    expect(factory.processesSpawned).toBe(1);
  });

  it('destroy() kills at once, emits nothing more, and processesAlive returns to 0', async () => {
    const factory = newFactory();
    const dec = factory.create('s9');
    const out = collect(dec);
    await dec.write(hello[0]!, { format: 'webm' });
    await waitFor(() => factory.processesAlive === 1);
    const pending = dec.write(hello[1]!, { format: 'webm' });
    dec.destroy();
    await pending;
    const n = out.pcm().length;
    await waitFor(() => factory.processesAlive === 0);
    expect(dec.processesAlive).toBe(0);
    expect(out.errors).toEqual([]);
    await new Promise((r) => setTimeout(r, 50));
    expect(out.pcm().length).toBe(n);
    await expect(dec.write(hello[2]!, { format: 'webm' })).rejects.toThrow(/destroyed/);
    await dec.close(); // no-op
  });

  it('close() is idempotent and refuses later writes', async () => {
    const factory = newFactory();
    const dec = factory.create('s10');
    await dec.write(short[0]!, { format: 'webm' });
    const a = dec.close();
    const b = dec.close();
    expect(a).toBe(b);
    await a;
    expect(factory.processesAlive).toBe(0);
    await expect(dec.write(short[1]!, { format: 'webm' })).rejects.toThrow(/closed/);
  });

  it('an error with no listener does not throw', async () => {
    const factory = newFactory();
    const dec = factory.create('s11');
    await dec.write(hello[0]!, { format: 'webm' });
    await dec.write(pseudoRandomBytes(20000, 43), { format: 'webm' });
    await waitFor(() => factory.decodeErrors === 1);
    await dec.close();
  });
});

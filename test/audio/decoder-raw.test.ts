import { createFfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { buildWav, collect, rejection, waitFor, pseudoRandomBytes, rms, sineSamples, zeroCrossingsPerSecond, type TestSampleFormat } from './helpers';
import { ffmpegBinary } from '../helpers/ffmpeg';

const created: Array<{ destroy(): void }> = [];
afterEach(() => created.splice(0).forEach((d) => d.destroy()));

function setup() {
  const factory = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary() });
  const dec = factory.create('raw');
  created.push(dec);
  return { factory, dec, out: collect(dec) };
}


/** Sample counts measured in this suite (print with AUDIO_TEST_REPORT=1). */
const measured: string[] = [];
afterAll(() => {
  if (process.env.AUDIO_TEST_REPORT) console.log(`measured sample counts:\n${measured.join('\n')}`);
});

describe('FfmpegSessionDecoder: WAV', () => {
  it.each<[string, number, number, TestSampleFormat]>([
    ['48 kHz stereo s16', 48000, 2, 's16'],
    ['8 kHz mono s16', 8000, 1, 's16'],
    ['44.1 kHz mono float32', 44100, 1, 'f32'],
    ['24 kHz stereo s24', 24000, 2, 's24'],
    ['22.05 kHz mono u8', 22050, 1, 'u8'],
    ['96 kHz 6-channel s32', 96000, 6, 's32'],
  ])('%s, 1 s in 1 file → 16000 samples of the same 440 Hz tone', async (label, rate, channels, format) => {
    const { factory, dec, out } = setup();
    const data = sineSamples({ rate, channels, seconds: 1, format, freq: 440, amplitude: 0.5 });
    await dec.write(buildWav({ rate, channels, format, data }), { format: 'wav' });
    await dec.close();
    const pcm = out.pcm();
    const n = pcm.length / 2;
    measured.push(`wav ${label}: ${n} samples (expected 16000)`);
    expect(Math.abs(n - 16000)).toBeLessThanOrEqual(16); // within 1 ms
    expect(zeroCrossingsPerSecond(pcm)).toBeGreaterThan(860);
    expect(zeroCrossingsPerSecond(pcm)).toBeLessThan(900);
    expect(rms(pcm)).toBeGreaterThan(0.5 * 32767 * 0.707 * 0.6);
    expect(out.errors).toEqual([]);
    expect(factory.processesSpawned).toBe(1);
    expect(factory.processesAlive).toBe(0);
  });

  it('consecutive WAV files with the same format share one process; a format change restarts it in order', async () => {
    const { factory, dec, out } = setup();
    const a = sineSamples({ rate: 48000, channels: 2, seconds: 0.5, format: 's16', freq: 300 });
    const b = sineSamples({ rate: 8000, channels: 1, seconds: 0.5, format: 's16', freq: 1000 });
    const writes = [
      dec.write(buildWav({ rate: 48000, channels: 2, format: 's16', data: a }), { format: 'wav' }),
      dec.write(buildWav({ rate: 48000, channels: 2, format: 's16', data: a }), { format: 'wav' }),
      dec.write(buildWav({ rate: 8000, channels: 1, format: 's16', data: b }), { format: 'wav' }),
    ];
    await Promise.all(writes);
    await dec.close();
    const pcm = out.pcm();
    const n = pcm.length / 2;
    measured.push(`wav 2×0.5 s @48k stereo + 0.5 s @8k: ${n} samples (expected 24000)`);
    expect(Math.abs(n - 24000)).toBeLessThanOrEqual(32);
    expect(factory.processesSpawned).toBe(2);
    // First second at 300 Hz, last half second at 1000 Hz.
    expect(zeroCrossingsPerSecond(pcm.subarray(0, 32000))).toBeLessThan(650);
    expect(zeroCrossingsPerSecond(pcm.subarray(pcm.length - 12000))).toBeGreaterThan(1900);
  });

  it('a 16 kHz mono s16 WAV is passed through without a process', async () => {
    const { factory, dec, out } = setup();
    const data = sineSamples({ rate: 16000, channels: 1, seconds: 0.3, format: 's16' });
    await dec.write(buildWav({ rate: 16000, channels: 1, format: 's16', data }), { format: 'wav' });
    await dec.close();
    expect(out.pcm().equals(data)).toBe(true);
    expect(factory.processesSpawned).toBe(0);
  });

  it('rejects lying WAV headers with AUDIO_INVALID and stays usable', async () => {
    const { factory, dec } = setup();
    const data = sineSamples({ rate: 48000, channels: 2, seconds: 0.1, format: 's16' });
    const bad = [
      buildWav({ rate: 48000, channels: 2, format: 's16', data, magic: 'RIFX' }),
      buildWav({ rate: 48000, channels: 2, format: 's16', data, blockAlign: 6 }),
      buildWav({ rate: 48000, channels: 0, format: 's16', data, blockAlign: 0 }),
      buildWav({ rate: 48000, channels: 12, format: 's16', data: Buffer.alloc(2400) }),
      buildWav({ rate: 1000, channels: 2, format: 's16', data }),
      buildWav({ rate: 48000, channels: 2, format: 's16', data: data.subarray(0, 1001) }),
      pseudoRandomBytes(500, 3),
    ];
    for (const b of bad) expect((await rejection(dec.write(b, { format: 'wav' }))).code).toBe('AUDIO_INVALID');
    expect(factory.processesSpawned).toBe(0);
  });
});

describe('FfmpegSessionDecoder: raw PCM', () => {
  it('16 kHz mono is passed through byte for byte without spawning ffmpeg', async () => {
    const { factory, dec, out } = setup();
    const parts = [pseudoRandomBytes(3200, 1), pseudoRandomBytes(640, 2), pseudoRandomBytes(32000, 3)];
    await Promise.all(parts.map((p, i) => dec.write(p, i === 1 ? { format: 'pcm', sampleRate: 16000, channels: 1 } : { format: 'pcm' })));
    await dec.close();
    expect(out.pcm().equals(Buffer.concat(parts))).toBe(true);
    expect(factory.processesSpawned).toBe(0);
  });

  it('24 kHz mono is resampled by one long-lived ffmpeg to the right length', async () => {
    const { factory, dec, out } = setup();
    const all = sineSamples({ rate: 24000, channels: 1, seconds: 1.5, format: 's16', freq: 440 });
    for (let i = 0; i < all.length; i += 9600) await dec.write(all.subarray(i, i + 9600), { format: 'pcm', sampleRate: 24000 });
    await waitFor(() => dec.processesAlive === 1); // writes resolve once queued; the process is being spawned
    expect(dec.processesAlive).toBe(1);
    await dec.close();
    const n = out.pcm().length / 2;
    measured.push(`pcm 1.5 s @24k in 200 ms pieces: ${n} samples (expected 24000)`);
    expect(Math.abs(n - 24000) / 24000).toBeLessThanOrEqual(0.01);
    expect(zeroCrossingsPerSecond(out.pcm())).toBeGreaterThan(860);
    expect(factory.processesSpawned).toBe(1);
    expect(factory.processesAlive).toBe(0);
    expect(out.chunks.every((c) => c.length % 2 === 0)).toBe(true);
  });

  it('stereo 48 kHz raw PCM is down-mixed and resampled', async () => {
    const { dec, out } = setup();
    await dec.write(sineSamples({ rate: 48000, channels: 2, seconds: 1, format: 's16' }), { format: 'pcm', sampleRate: 48000, channels: 2 });
    await dec.close();
    expect(Math.abs(out.pcm().length / 2 - 16000)).toBeLessThanOrEqual(16);
  });

  it('a large chunk respects backpressure and is decoded completely', async () => {
    const { dec, out } = setup();
    const big = sineSamples({ rate: 48000, channels: 2, seconds: 20, format: 's16' }); // 3.84 MB
    await dec.write(big, { format: 'pcm', sampleRate: 48000, channels: 2 });
    await dec.close();
    expect(Math.abs(out.pcm().length / 2 - 320000)).toBeLessThanOrEqual(16);
  });

  it('rejects odd byte counts, partial frames and impossible parameters', async () => {
    const { factory, dec } = setup();
    const cases: Array<[Buffer, { sampleRate?: number; channels?: number }]> = [
      [Buffer.alloc(641), {}],
      [Buffer.alloc(642), { channels: 2 }],
      [Buffer.alloc(640), { sampleRate: 7999 }],
      [Buffer.alloc(640), { sampleRate: 192001 }],
      [Buffer.alloc(640), { sampleRate: 22050.5 }],
      [Buffer.alloc(640), { channels: 0 }],
      [Buffer.alloc(640 * 9), { channels: 9 }],
      [Buffer.alloc(0), {}],
    ];
    for (const [buf, p] of cases) expect((await rejection(dec.write(buf, { format: 'pcm', ...p }))).code).toBe('AUDIO_INVALID');
    expect(factory.processesSpawned).toBe(0);
  });

  it('pcm 16 kHz → 24 kHz → 16 kHz keeps order across stream switches', async () => {
    const { dec, out } = setup();
    const a = pseudoRandomBytes(6400, 11);
    const b24 = sineSamples({ rate: 24000, channels: 1, seconds: 0.5, format: 's16' });
    const c = pseudoRandomBytes(6400, 12);
    await Promise.all([
      dec.write(a, { format: 'pcm' }),
      dec.write(b24, { format: 'pcm', sampleRate: 24000 }),
      dec.write(c, { format: 'pcm' }),
    ]);
    await dec.close();
    const pcm = out.pcm();
    expect(pcm.subarray(0, a.length).equals(a)).toBe(true);
    expect(pcm.subarray(pcm.length - c.length).equals(c)).toBe(true);
    expect(Math.abs((pcm.length - a.length - c.length) / 2 - 8000)).toBeLessThanOrEqual(16);
  });
});

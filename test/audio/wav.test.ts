import { parseWav } from '../../src/services/audio/wav';
import { pcmToWav } from '../../src/services/audio/wav-writer';
import { AudioDecodeError } from '../../src/services/audio/session-audio-decoder';
import { buildWav, sineSamples } from './helpers';

const s16mono = sineSamples({ rate: 16000, channels: 1, seconds: 0.1, format: 's16' });
const s16stereo = sineSamples({ rate: 48000, channels: 2, seconds: 0.1, format: 's16' });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AudioDecodeError);
    return (e as AudioDecodeError).code;
  }
  return undefined;
}

describe('parseWav', () => {
  it('parses the common formats', () => {
    const cases = [
      { rate: 48000, channels: 2, format: 's16' as const, sf: 's16le', bits: 16 },
      { rate: 8000, channels: 1, format: 'u8' as const, sf: 'u8', bits: 8 },
      { rate: 44100, channels: 1, format: 's24' as const, sf: 's24le', bits: 24 },
      { rate: 22050, channels: 2, format: 's32' as const, sf: 's32le', bits: 32 },
      { rate: 16000, channels: 1, format: 'f32' as const, sf: 'f32le', bits: 32 },
      { rate: 192000, channels: 8, format: 's16' as const, sf: 's16le', bits: 16 },
    ];
    for (const c of cases) {
      const data = sineSamples({ rate: c.rate, channels: c.channels, seconds: 0.05, format: c.format });
      const w = parseWav(buildWav({ rate: c.rate, channels: c.channels, format: c.format, data }));
      expect(w).toMatchObject({ sampleFormat: c.sf, sampleRate: c.rate, channels: c.channels, bitsPerSample: c.bits });
      expect(w.data.equals(data)).toBe(true);
    }
  });

  it('tolerates extra and odd-sized chunks, WAVE_FORMAT_EXTENSIBLE, RF64 and streaming data sizes', () => {
    const extra = [
      { id: 'LIST', body: Buffer.from('INFOISFT\x05\0\0\0test\0', 'latin1') },
      { id: 'odd ', body: Buffer.from([1, 2, 3]) },
      { id: 'fact', body: Buffer.alloc(4) },
    ];
    expect(parseWav(buildWav({ rate: 16000, channels: 1, format: 's16', data: s16mono, extraChunks: extra })).data.equals(s16mono)).toBe(true);
    const ext = parseWav(buildWav({ rate: 48000, channels: 2, format: 'f32', extensible: true, data: Buffer.alloc(800) }));
    expect(ext.sampleFormat).toBe('f32le');
    expect(parseWav(buildWav({ rate: 16000, channels: 1, format: 's16', data: s16mono, magic: 'RF64', dataSize: 0xffffffff })).data.length).toBe(s16mono.length);
    for (const dataSize of [0, 0xffffffff, s16mono.length * 4]) {
      expect(parseWav(buildWav({ rate: 16000, channels: 1, format: 's16', data: s16mono, dataSize })).data.length).toBe(s16mono.length);
    }
    // Declared size smaller than the rest of the file (a trailing chunk): only the declared data.
    const wav = Buffer.concat([buildWav({ rate: 16000, channels: 1, format: 's16', data: s16mono }), Buffer.from('LIST\x04\0\0\0abcd', 'latin1')]);
    expect(parseWav(wav).data.length).toBe(s16mono.length);
  });

  it('rejects lying or broken headers with AUDIO_INVALID', () => {
    const good = { rate: 48000, channels: 2, format: 's16' as const, data: s16stereo };
    expect(codeOf(() => parseWav(Buffer.from('RIFF')))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, magic: 'RIFX' })))).toBe('AUDIO_INVALID');
    const noWave = buildWav(good);
    noWave.write('AVI ', 8, 'latin1');
    expect(codeOf(() => parseWav(noWave))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, blockAlign: 3 })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, blockAlign: 2 })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, channels: 0, blockAlign: 0 })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, channels: 9, data: Buffer.alloc(18 * 10) })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, rate: 4000 })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, rate: 400000 })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, bitsPerSample: 12, blockAlign: 3 })))).toBe('AUDIO_INVALID');
    // Data not a whole number of frames (stereo s16 = 4 bytes), also after truncation to what is present.
    expect(codeOf(() => parseWav(buildWav({ ...good, data: s16stereo.subarray(0, 402) })))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, data: s16stereo.subarray(0, 402), dataSize: 100000 })))).toBe('AUDIO_INVALID');
    // Structure problems.
    const fmtTruncated = buildWav(good);
    fmtTruncated.writeUInt32LE(10, 16);
    expect(codeOf(() => parseWav(fmtTruncated))).toBe('AUDIO_INVALID');
    const dataFirst = Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVEdata\x04\0\0\0\0\0\0\0', 'latin1')]);
    expect(codeOf(() => parseWav(dataFirst))).toBe('AUDIO_INVALID');
    const noData = buildWav(good).subarray(0, 12 + 8 + 16);
    expect(codeOf(() => parseWav(noData))).toBe('AUDIO_INVALID');
    expect(codeOf(() => parseWav(buildWav({ ...good, extraChunks: [{ id: 'LIST', body: Buffer.alloc(4) }] }).fill(0xff, 12 + 24 + 4, 12 + 24 + 8)))).toBe('AUDIO_INVALID');
  });

  it('refuses non-PCM encodings with AUDIO_UNSUPPORTED_FORMAT', () => {
    expect(codeOf(() => parseWav(buildWav({ rate: 8000, channels: 1, format: 'u8', formatTag: 0x11, data: Buffer.alloc(100) })))).toBe('AUDIO_UNSUPPORTED_FORMAT');
    expect(codeOf(() => parseWav(buildWav({ rate: 8000, channels: 1, format: 'f32', bitsPerSample: 64, data: Buffer.alloc(80) })))).toBe('AUDIO_UNSUPPORTED_FORMAT');
  });
});

describe('pcmToWav', () => {
  it('writes a 44-byte header that parseWav reads back', () => {
    const pcm = sineSamples({ rate: 24000, channels: 1, seconds: 0.1, format: 's16' });
    const wav = pcmToWav(pcm, 24000);
    expect(wav.length).toBe(44 + pcm.length);
    expect(wav.toString('latin1', 0, 4)).toBe('RIFF');
    expect(wav.readUInt32LE(4)).toBe(36 + pcm.length);
    expect(wav.readUInt32LE(28)).toBe(48000);
    const back = parseWav(wav);
    expect(back).toMatchObject({ sampleRate: 24000, channels: 1, sampleFormat: 's16le', blockAlign: 2 });
    expect(back.data.equals(pcm)).toBe(true);
  });

  it('drops a trailing partial frame and validates arguments', () => {
    expect(pcmToWav(Buffer.alloc(7), 16000).length).toBe(44 + 6);
    expect(pcmToWav(Buffer.alloc(7), 16000, 2).length).toBe(44 + 4);
    expect(() => pcmToWav(Buffer.alloc(2), 0)).toThrow(RangeError);
    expect(() => pcmToWav(Buffer.alloc(2), 16000, 0)).toThrow(RangeError);
  });
});

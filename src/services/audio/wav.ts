import { AudioDecodeError } from './session-audio-decoder';

/** Raw sample formats that ffmpeg reads with `-f <format>` (all little-endian, interleaved). */
export type RawSampleFormat = 'u8' | 's16le' | 's24le' | 's32le' | 'f32le';

export const MIN_SAMPLE_RATE = 8000;
export const MAX_SAMPLE_RATE = 192000;
export const MAX_CHANNELS = 8;

export interface ParsedWav {
  sampleFormat: RawSampleFormat;
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Bytes per frame (all channels of one sample instant). */
  blockAlign: number;
  /** The interleaved sample data (a view into the input buffer). */
  data: Buffer;
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function invalid(detail: string): AudioDecodeError {
  return new AudioDecodeError('AUDIO_INVALID', `Audio data is not a valid WAV file: ${detail}`);
}

function unsupported(detail: string): AudioDecodeError {
  return new AudioDecodeError('AUDIO_UNSUPPORTED_FORMAT', `WAV encoding not supported: ${detail}`);
}

/** Validates a declared sample rate / channel count (shared by WAV and raw PCM). Returns an error text or null. */
export function checkRateAndChannels(sampleRate: number, channels: number): string | null {
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS) {
    return `channel count ${channels} is outside 1..${MAX_CHANNELS}`;
  }
  if (!Number.isInteger(sampleRate) || sampleRate < MIN_SAMPLE_RATE || sampleRate > MAX_SAMPLE_RATE) {
    return `sample rate ${sampleRate} is outside ${MIN_SAMPLE_RATE}..${MAX_SAMPLE_RATE} Hz`;
  }
  return null;
}

/**
 * Parses a complete RIFF/WAVE file held in memory and returns its format and sample data.
 *
 * Tolerates: extra chunks before/after `fmt `/`data` (LIST, fact, bext, ...), odd-sized chunks with their pad byte,
 * `RF64` magic, a `data` size of 0 or 0xFFFFFFFF (streaming writers) meaning "to the end of the buffer", and a
 * `data` size larger than what is present (truncated to the bytes present). The RIFF size and the byte-rate field
 * are not used and therefore not checked.
 *
 * Rejects with `AudioDecodeError('AUDIO_INVALID')`: bad magic, missing/short `fmt `, `data` before `fmt `, no `data`
 * chunk, channels 0 or > 8, rate outside 8000..192000, impossible bits per sample or block align, sample data that is
 * not a whole number of frames. Non-PCM encodings (ADPCM, A-law, 64-bit float, ...) → `AUDIO_UNSUPPORTED_FORMAT`.
 */
export function parseWav(buf: Buffer): ParsedWav {
  if (buf.length < 12) throw invalid('too short for a RIFF header');
  const riff = buf.toString('latin1', 0, 4);
  if ((riff !== 'RIFF' && riff !== 'RF64') || buf.toString('latin1', 8, 12) !== 'WAVE') {
    throw invalid('missing RIFF/WAVE magic');
  }

  let fmt: Omit<ParsedWav, 'data'> | null = null;
  let pos = 12;
  while (pos + 8 <= buf.length) {
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (fmt) throw invalid('more than one fmt chunk');
      if (size < 16 || body + size > buf.length) throw invalid('fmt chunk is truncated');
      fmt = parseFmt(buf.subarray(body, body + size));
    } else if (id === 'data') {
      if (!fmt) throw invalid('data chunk before the fmt chunk');
      const present = buf.length - body;
      const len = size === 0 || size === 0xffffffff || size > present ? present : size;
      if (len % fmt.blockAlign !== 0) {
        throw invalid(`sample data (${len} bytes) is not a whole number of ${fmt.blockAlign}-byte frames`);
      }
      return { ...fmt, data: buf.subarray(body, body + len) };
    } else if (size === 0xffffffff || body + size > buf.length) {
      throw invalid(`chunk '${printable(id)}' runs past the end of the file before any data chunk`);
    }
    pos = body + size + (size & 1);
  }
  throw invalid(fmt ? 'no data chunk' : 'no fmt chunk');
}

function parseFmt(f: Buffer): Omit<ParsedWav, 'data'> {
  let tag = f.readUInt16LE(0);
  const channels = f.readUInt16LE(2);
  const sampleRate = f.readUInt32LE(4);
  const blockAlign = f.readUInt16LE(12);
  const bitsPerSample = f.readUInt16LE(14);

  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (f.length < 40) throw invalid('WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated');
    const validBits = f.readUInt16LE(18);
    if (validBits > bitsPerSample) throw invalid(`valid bits ${validBits} exceed container bits ${bitsPerSample}`);
    tag = f.readUInt16LE(24); // first two bytes of the SubFormat GUID
  }

  const rangeError = checkRateAndChannels(sampleRate, channels);
  if (rangeError) throw invalid(rangeError);

  let sampleFormat: RawSampleFormat;
  if (tag === WAVE_FORMAT_PCM) {
    const byBits: Record<number, RawSampleFormat> = { 8: 'u8', 16: 's16le', 24: 's24le', 32: 's32le' };
    const sf = byBits[bitsPerSample];
    if (!sf) throw invalid(`${bitsPerSample} bits per sample is not possible for PCM (8, 16, 24 or 32)`);
    sampleFormat = sf;
  } else if (tag === WAVE_FORMAT_IEEE_FLOAT) {
    if (bitsPerSample === 64) throw unsupported('64-bit float samples (use 32-bit float or integer PCM)');
    if (bitsPerSample !== 32) throw invalid(`${bitsPerSample} bits per sample is not possible for float`);
    sampleFormat = 'f32le';
  } else {
    throw unsupported(`format tag 0x${tag.toString(16).padStart(4, '0')} (only PCM and IEEE float)`);
  }

  const expectedAlign = (channels * bitsPerSample) / 8;
  if (blockAlign !== expectedAlign) {
    throw invalid(`block align ${blockAlign} is impossible for ${channels} channel(s) of ${bitsPerSample} bits`);
  }
  return { sampleFormat, sampleRate, channels, bitsPerSample, blockAlign };
}

function printable(id: string): string {
  return id.replace(/[^\x20-\x7e]/g, '?');
}

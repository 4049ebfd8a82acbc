import type { AudioDecodeError, SessionAudioDecoder } from '../../src/services/audio/session-audio-decoder';
import fs from 'node:fs';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { childProcesses } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';

export interface Collector {
  pcm(): Buffer;
  chunks: Buffer[];
  errors: AudioDecodeError[];
  nextError(timeoutMs?: number): Promise<AudioDecodeError>;
}

export function collect(decoder: SessionAudioDecoder): Collector {
  const chunks: Buffer[] = [];
  const errors: AudioDecodeError[] = [];
  const waiters: Array<(e: AudioDecodeError) => void> = [];
  decoder.on('pcm', (b) => chunks.push(Buffer.from(b)));
  decoder.on('error', (e) => {
    errors.push(e);
    waiters.splice(0).forEach((w) => w(e));
  });
  return {
    chunks,
    errors,
    pcm: () => Buffer.concat(chunks),
    nextError: (timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no error event')), timeoutMs);
        waiters.push((e) => {
          clearTimeout(t);
          resolve(e);
        });
      }),
  };
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function samples(buf: Buffer): Int16Array {
  const copy = Buffer.from(buf);
  return new Int16Array(copy.buffer, copy.byteOffset, copy.length >> 1);
}

/** SNR (dB) of b against a over their common length, and Pearson correlation. */
export function similarity(a: Buffer, b: Buffer): { snrDb: number; corr: number } {
  const x = samples(a);
  const y = samples(b);
  const n = Math.min(x.length, y.length);
  let sig = 0;
  let noise = 0;
  let sx = 0;
  let sy = 0;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - y[i]!;
    sig += x[i]! * x[i]!;
    noise += d * d;
    sx += x[i]!;
    sy += y[i]!;
    sxy += x[i]! * y[i]!;
    sxx += x[i]! * x[i]!;
    syy += y[i]! * y[i]!;
  }
  const cov = sxy - (sx * sy) / n;
  const corr = cov / Math.sqrt((sxx - (sx * sx) / n) * (syy - (sy * sy) / n));
  return { snrDb: noise === 0 ? Infinity : 10 * Math.log10(sig / noise), corr };
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function pseudoRandomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

export type TestSampleFormat = 'u8' | 's16' | 's24' | 's32' | 'f32';

/** Interleaved sample bytes of a sine (same signal on every channel). */
export function sineSamples(opts: {
  rate: number;
  channels: number;
  seconds: number;
  format: TestSampleFormat;
  freq?: number;
  amplitude?: number;
}): Buffer {
  const { rate, channels, seconds, format } = opts;
  const freq = opts.freq ?? 440;
  const amp = opts.amplitude ?? 0.5;
  const frames = Math.round(rate * seconds);
  const bytes = { u8: 1, s16: 2, s24: 3, s32: 4, f32: 4 }[format];
  const out = Buffer.alloc(frames * channels * bytes);
  let o = 0;
  for (let i = 0; i < frames; i++) {
    const v = amp * Math.sin((2 * Math.PI * freq * i) / rate);
    for (let c = 0; c < channels; c++) {
      switch (format) {
        case 'u8':
          out.writeUInt8(Math.round(128 + v * 127), o);
          break;
        case 's16':
          out.writeInt16LE(Math.round(v * 32767), o);
          break;
        case 's24':
          out.writeIntLE(Math.round(v * 8388607), o, 3);
          break;
        case 's32':
          out.writeInt32LE(Math.round(v * 2147483647), o);
          break;
        case 'f32':
          out.writeFloatLE(v, o);
          break;
      }
      o += bytes;
    }
  }
  return out;
}

export interface WavSpec {
  rate: number;
  channels: number;
  format: TestSampleFormat;
  data: Buffer;
  /** Override header fields to produce lying headers. */
  formatTag?: number;
  blockAlign?: number;
  bitsPerSample?: number;
  dataSize?: number;
  magic?: string;
  /** Chunks inserted between fmt and data. */
  extraChunks?: Array<{ id: string; body: Buffer }>;
  extensible?: boolean;
}

/** Builds a WAV file, allowing every header field to lie. */
export function buildWav(spec: WavSpec): Buffer {
  const bits = spec.bitsPerSample ?? { u8: 8, s16: 16, s24: 24, s32: 32, f32: 32 }[spec.format];
  const tag = spec.formatTag ?? (spec.format === 'f32' ? 3 : 1);
  const blockAlign = spec.blockAlign ?? (spec.channels * bits) / 8;
  let fmt: Buffer;
  if (spec.extensible) {
    fmt = Buffer.alloc(40);
    fmt.writeUInt16LE(0xfffe, 0);
    fmt.writeUInt16LE(22, 16);
    fmt.writeUInt16LE(bits, 18);
    fmt.writeUInt32LE(spec.channels === 1 ? 4 : 3, 20);
    fmt.writeUInt16LE(tag, 24);
    Buffer.from('000000001000800000aa00389b71', 'hex').copy(fmt, 26);
  } else {
    fmt = Buffer.alloc(16);
    fmt.writeUInt16LE(tag, 0);
  }
  fmt.writeUInt16LE(spec.channels, 2);
  fmt.writeUInt32LE(spec.rate, 4);
  fmt.writeUInt32LE(spec.rate * blockAlign, 8);
  fmt.writeUInt16LE(blockAlign, 12);
  fmt.writeUInt16LE(bits, 14);
  const parts: Buffer[] = [chunk('fmt ', fmt)];
  for (const c of spec.extraChunks ?? []) parts.push(chunk(c.id, c.body));
  const dataHdr = Buffer.alloc(8);
  dataHdr.write('data', 0, 'latin1');
  dataHdr.writeUInt32LE(spec.dataSize ?? spec.data.length, 4);
  parts.push(dataHdr, spec.data);
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(12);
  head.write(spec.magic ?? 'RIFF', 0, 'latin1');
  head.writeUInt32LE(4 + body.length, 4);
  head.write('WAVE', 8, 'latin1');
  return Buffer.concat([head, body]);
}

function chunk(id: string, body: Buffer): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.write(id, 0, 'latin1');
  hdr.writeUInt32LE(body.length, 4);
  return Buffer.concat([hdr, body, body.length & 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

/** Zero crossings per second of 16 kHz mono s16 PCM (≈ 2 × frequency for a sine). */
export function zeroCrossingsPerSecond(pcm: Buffer, rate = 16000): number {
  const s = samples(pcm);
  let z = 0;
  for (let i = 1; i < s.length; i++) if (s[i - 1]! < 0 !== s[i]! < 0) z++;
  return z / (s.length / rate);
}

export function rms(pcm: Buffer): number {
  const s = samples(pcm);
  let acc = 0;
  for (const v of s) acc += v * v;
  return Math.sqrt(acc / Math.max(1, s.length));
}

/** Offsets of the SimpleBlock payloads (after track, timecode, flags) in a whole WebM stream. */
export function simpleBlockPayloads(all: Buffer): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  const vint = (p: number, isId: boolean) => {
    const f = all[p]!;
    let len = 1;
    let mask = 0x80;
    while (!(f & mask)) {
      len++;
      mask >>= 1;
    }
    let v = isId ? f : f & (mask - 1);
    let ones = (f & (mask - 1)) === mask - 1;
    for (let i = 1; i < len; i++) {
      v = v * 256 + all[p + i]!;
      if (all[p + i] !== 0xff) ones = false;
    }
    return { v, len, unknown: !isId && ones };
  };
  const masters = new Set([0x18538067, 0x1f43b675]);
  let p = 0;
  while (p < all.length) {
    const id = vint(p, true);
    const size = vint(p + id.len, false);
    const body = p + id.len + size.len;
    if (masters.has(id.v)) {
      p = body;
      continue;
    }
    if (id.v === 0xa3) out.push({ start: body + 4, end: body + size.v });
    p = body + size.v;
  }
  return out;
}

/** Splits `all` back into pieces of the given sizes. */
export function resplit(all: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  for (const n of sizes) {
    out.push(all.subarray(p, p + n));
    p += n;
  }
  return out;
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<AudioDecodeError> {
  try {
    await p;
  } catch (e) {
    return e as AudioDecodeError;
  }
  throw new Error('expected a rejection');
}

/**
 * A spawned server for a describe block's attacker tests (started before them, stopped after): per-key and per-IP
 * limits lifted, so one key holder goes as fast as he can; /transcribe answers without waiting for news.
 */
export function spawnedForAttack(env: Record<string, string>): () => SpawnedServer {
  let s: SpawnedServer | undefined;
  beforeAll(async () => {
    s = await spawnServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', ...env } });
  }, 60_000);
  afterAll(async () => s?.stop());
  return () => {
    if (!s) throw new Error('the spawned server did not start');
    return s;
  };
}

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

/** ffmpeg children of `pid` (default: this process) that decode from a pipe: the decoders, pooled or not, not fluent-ffmpeg's capability probes. */
export const decoderPids = (pid = process.pid) => childProcesses(pid, 'ffmpeg').filter((p) => cmdline(p).includes('pipe:0'));

/**
 * Writes a recording's header chunk, then 20 KB of garbage as its continuation, and returns the error event that
 * follows (the decoder keeps going: its next chunks decode on a restart primed with the head).
 */
export async function headerThenGarbage(dec: SessionAudioDecoder, out: Collector, header: Buffer): Promise<AudioDecodeError> {
  await dec.write(header, { format: 'webm' });
  const errP = out.nextError();
  await dec.write(pseudoRandomBytes(20000, 42), { format: 'webm' });
  return errP;
}

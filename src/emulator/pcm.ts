/**
 * Small helpers for raw 16-bit little-endian mono PCM (the only audio format the Live API speaks).
 * Used by the emulator (reply tone, VAD) and by tests (tone generator, chunking).
 */

/** Native input rate of the Live API. */
export const INPUT_SAMPLE_RATE = 16_000;
/** Output rate of the Live API (`audio/pcm;rate=24000`). */
export const OUTPUT_SAMPLE_RATE = 24_000;

/** Number of samples in `ms` milliseconds at `sampleRate` (rounded to a whole sample). */
export function samplesFor(ms: number, sampleRate: number): number {
  return Math.round((sampleRate * ms) / 1000);
}

/** Byte length of `ms` milliseconds of s16le mono PCM. */
export function pcmBytesFor(ms: number, sampleRate: number = INPUT_SAMPLE_RATE): number {
  return samplesFor(ms, sampleRate) * 2;
}

/** Duration in milliseconds of `bytes` bytes of s16le mono PCM. */
export function pcmDurationMs(bytes: number, sampleRate: number = INPUT_SAMPLE_RATE): number {
  return (bytes / 2 / sampleRate) * 1000;
}

export interface ToneOptions {
  freqHz?: number; // default 440
  amplitude?: number; // peak, int16 scale; default 8000
  sampleRate?: number; // default 16000
  /** Sample index the tone starts at, so consecutive calls continue the same wave. Default 0. */
  startSample?: number;
}

/** A sine tone as s16le mono PCM. Deterministic: the same arguments always give the same bytes. */
export function tonePcm(ms: number, opts: ToneOptions = {}): Buffer {
  const { freqHz = 440, amplitude = 8000, sampleRate = INPUT_SAMPLE_RATE, startSample = 0 } = opts;
  const n = samplesFor(ms, sampleRate);
  const out = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const v = Math.round(amplitude * Math.sin((2 * Math.PI * freqHz * (startSample + i)) / sampleRate));
    out.writeInt16LE(Math.max(-32768, Math.min(32767, v)), i * 2);
  }
  return out;
}

/** Digital silence as s16le mono PCM. */
export function silencePcm(ms: number, sampleRate: number = INPUT_SAMPLE_RATE): Buffer {
  return Buffer.alloc(samplesFor(ms, sampleRate) * 2);
}

/** Cuts PCM into chunks of `chunkMs` (the last one may be shorter). */
export function chunkPcm(pcm: Buffer, chunkMs: number, sampleRate: number = INPUT_SAMPLE_RATE): Buffer[] {
  const size = Math.max(2, pcmBytesFor(chunkMs, sampleRate));
  const chunks: Buffer[] = [];
  for (let off = 0; off < pcm.length; off += size) chunks.push(pcm.subarray(off, Math.min(off + size, pcm.length)));
  return chunks;
}

/** Root mean square of s16le samples in `pcm` (0 for an empty buffer). */
export function rms(pcm: Buffer): number {
  const n = Math.floor(pcm.length / 2);
  if (n === 0) return 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const s = pcm.readInt16LE(i * 2);
    sum += s * s;
  }
  return Math.sqrt(sum / n);
}

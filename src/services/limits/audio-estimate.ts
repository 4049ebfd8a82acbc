import type { ChunkDescriptor } from '../audio/audio-types';
import { parseWav } from '../audio/wav';

/**
 * Seconds of audio a chunk carries when that is known from its bytes alone: raw PCM (s16le at the declared
 * rate and channel count) and WAV (sample data ÷ the header's frame size and rate; what ffmpeg will decode).
 * WebM/Opus is compressed at a rate the client chooses, so its duration is only known once decoded:
 * `undefined` here, and such audio is charged by its decoded seconds instead.
 */
export function knownAudioSeconds(chunk: Buffer, desc: ChunkDescriptor): number | undefined {
  if (desc.format === 'pcm') {
    const bytesPerSec = (desc.sampleRate ?? 16000) * (desc.channels ?? 1) * 2;
    return bytesPerSec > 0 ? chunk.length / bytesPerSec : undefined;
  }
  if (desc.format === 'wav') {
    try {
      const w = parseWav(chunk);
      return w.data.length / (w.blockAlign * w.sampleRate);
    } catch {
      return undefined; // refused later by the decoder with a 422
    }
  }
  return undefined;
}

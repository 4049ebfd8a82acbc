/**
 * Wraps s16le PCM in a canonical 44-byte RIFF/WAVE header (used for Gemini's 24 kHz reply audio).
 * A trailing partial frame (odd byte, or an incomplete multi-channel frame) is dropped.
 */
export function pcmToWav(pcm: Buffer, sampleRate: number, channels = 1): Buffer {
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new RangeError(`invalid sample rate ${sampleRate}`);
  if (!Number.isInteger(channels) || channels < 1 || channels > 65535) {
    throw new RangeError(`invalid channel count ${channels}`);
  }
  const blockAlign = channels * 2;
  const dataLen = pcm.length - (pcm.length % blockAlign);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + dataLen, 4);
  header.write('WAVE', 8, 'latin1');
  header.write('fmt ', 12, 'latin1');
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * blockAlign, 28); // byte rate
  header.writeUInt16LE(blockAlign, 32);
  header.writeUInt16LE(16, 34); // bits per sample
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(dataLen, 40);
  return Buffer.concat([header, pcm.subarray(0, dataLen)], 44 + dataLen);
}

import { base64ToBytes, bytesToBase64, int16ToS16le, parseWav, s16leToInt16, stripDataUrl } from '../../src/web/audio-bytes';
import { pcmToWav } from '../../src/services/audio/wav-writer';

/** The page's byte helpers, run in Node against the server's own encoders (the REST `audioBuffer` WAV). */
describe('page byte helpers', () => {
  it('reads the WAV the server puts in audioBuffer back into the same 24 kHz samples', () => {
    const samples = Int16Array.from({ length: 2400 }, (_, i) => Math.round(Math.sin(i / 7) * 12000));
    const wav = pcmToWav(Buffer.from(int16ToS16le(samples)), 24000, 1);
    const parsed = parseWav(base64ToBytes(wav.toString('base64')));
    expect(parsed).not.toBeNull();
    expect(parsed!.sampleRate).toBe(24000);
    expect(parsed!.channels).toBe(1);
    expect(Array.from(parsed!.samples)).toEqual(Array.from(samples));
  });

  it('refuses what is not 16-bit PCM WAV', () => {
    expect(parseWav(new Uint8Array([1, 2, 3]))).toBeNull();
    expect(parseWav(new TextEncoder().encode('RIFF\u0000\u0000\u0000\u0000WEBMjunk'))).toBeNull();
  });

  it('round-trips base64 (large buffers too) and s16le, and strips a data: URL prefix', () => {
    const bytes = Uint8Array.from({ length: 200_001 }, (_, i) => (i * 31) & 0xff);
    const b64 = bytesToBase64(bytes);
    expect(b64).toBe(Buffer.from(bytes).toString('base64'));
    expect(Buffer.from(base64ToBytes(b64)).equals(Buffer.from(bytes))).toBe(true);
    const s = Int16Array.from([0, 1, -1, 32767, -32768]);
    expect(Array.from(s16leToInt16(int16ToS16le(s)))).toEqual(Array.from(s));
    expect(s16leToInt16(Uint8Array.from([1, 0, 2, 0, 9]).subarray(1)).length).toBe(2);
    expect(stripDataUrl('data:audio/webm;codecs=opus;base64,GkXfo')).toBe('GkXfo');
    expect(stripDataUrl('GkXfo')).toBe('GkXfo');
  });
});

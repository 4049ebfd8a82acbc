import { looksLikeWebmContinuation, startsWithEbmlHeader } from '../../src/services/audio/ebml';
import { buildWav, pseudoRandomBytes, sineSamples } from './helpers';
import { HELLO, SHORT, loadChunks } from '../helpers/fixtures';

describe('ebml sniffing', () => {
  it.each([HELLO, SHORT])('%s: chunk 0 has the EBML header, every later chunk looks like a continuation', (name) => {
    const chunks = loadChunks(name);
    expect(startsWithEbmlHeader(chunks[0]!)).toBe(true);
    expect(looksLikeWebmContinuation(chunks[0]!)).toBe(false);
    for (const c of chunks.slice(1)) {
      expect(startsWithEbmlHeader(c)).toBe(false);
      expect(looksLikeWebmContinuation(c)).toBe(true);
    }
  });

  it('recognises continuations cut at arbitrary byte offsets (>= 4 KB) and at element boundaries', () => {
    const all = Buffer.concat(loadChunks(HELLO));
    for (let cut = 200; cut + 4000 <= all.length; cut += 211) {
      expect(looksLikeWebmContinuation(all.subarray(cut, cut + 4000))).toBe(true);
    }
    // A chunk that starts exactly on a SimpleBlock id (0xA3) and one that starts on a Cluster id.
    const block = all.indexOf(Buffer.from([0xa3]), 200);
    expect(looksLikeWebmContinuation(all.subarray(block))).toBe(true);
    const cluster = all.indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]), 200);
    expect(cluster).toBeGreaterThan(0);
    expect(looksLikeWebmContinuation(all.subarray(cluster, cluster + 3000))).toBe(true);
  });

  it('rejects random bytes and other containers', () => {
    let falsePositives = 0;
    for (let i = 0; i < 400; i++) {
      const len = [1, 7, 64, 1000, 4096, 16384, 65536][i % 7]!;
      if (looksLikeWebmContinuation(pseudoRandomBytes(len, 1000 + i))) falsePositives++;
    }
    expect(falsePositives).toBe(0);
    const wav = buildWav({ rate: 16000, channels: 1, format: 's16', data: sineSamples({ rate: 16000, channels: 1, seconds: 0.2, format: 's16' }) });
    expect(looksLikeWebmContinuation(wav)).toBe(false);
    expect(looksLikeWebmContinuation(Buffer.from('OggS\0\x02' + 'x'.repeat(200), 'latin1'))).toBe(false);
    expect(looksLikeWebmContinuation(Buffer.alloc(0))).toBe(false);
    expect(startsWithEbmlHeader(Buffer.from([0x1a, 0x45, 0xdf]))).toBe(false);
  });
});

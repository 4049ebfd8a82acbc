/**
 * The REST body's shape scan (depth and element limits before JSON.parse) skips strings with a native search: the
 * same verdicts as the plain byte loop, whatever the chunking, on seeded random bodies.
 */
import { JsonShapeScanner, type JsonShapeLimits, type JsonShapeVerdict } from '../../src/middleware/body-json-shape';
import { prng, randomText } from '../ops/helpers';

/** The reference: one byte at a time (as the scan was before), fed the same chunks. */
function referenceScan(chunks: Buffer[], limits: JsonShapeLimits): JsonShapeVerdict {
  let depth = 0;
  let elements = 0;
  let inString = false;
  let escaped = false;
  for (const bytes of chunks) {
    for (const c of bytes) {
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
        continue;
      }
      if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++depth > limits.maxDepth) return { ok: false, reason: 'depth' };
        if (++elements > limits.maxElements) return { ok: false, reason: 'elements' };
      } else if (c === 0x7d || c === 0x5d) depth--;
      else if (c === 0x2c && ++elements > limits.maxElements) return { ok: false, reason: 'elements' };
    }
  }
  return { ok: true };
}

describe('JsonShapeScanner', () => {
  it('gives the byte loop’s verdict on 20 000 random bodies cut into random chunks', () => {
    const seed = 4242;
    console.log(`JsonShapeScanner property seed ${seed}`);
    const rnd = prng(seed);
    const alphabet = ['"', '\\', '[', ']', '{', '}', ',', 'a', 'QUJD'];
    const seen = { ok: 0, depth: 0, elements: 0 };
    for (let k = 0; k < 20_000; k++) {
      const body = randomText(rnd, alphabet, 60);
      const chunks: Buffer[] = [];
      for (let at = 0; at < body.length; ) {
        const len = 1 + Math.floor(rnd() * 12);
        chunks.push(body.subarray(at, at + len));
        at += len;
      }
      const limits = { maxDepth: 1 + Math.floor(rnd() * 4), maxElements: 2 + Math.floor(rnd() * 10) };
      const want = referenceScan(chunks, limits);
      const scanner = new JsonShapeScanner(limits);
      let got: JsonShapeVerdict = { ok: true };
      for (const c of chunks) got = scanner.feed(c);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        throw new Error(`seed ${seed}: ${JSON.stringify(body.toString())} in ${chunks.length} chunks, ${JSON.stringify(limits)}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
      }
      seen[want.ok ? 'ok' : want.reason]++;
    }
    // Every verdict was exercised.
    expect(seen.ok).toBeGreaterThan(1000);
    expect(seen.depth).toBeGreaterThan(1000);
    expect(seen.elements).toBeGreaterThan(1000);
  });

  it('a 22 KB audio body: one string skipped, the verdict as before', () => {
    const body = Buffer.from(JSON.stringify({ session_id: 's', format: 'webm', audio_data: Buffer.alloc(16_500, 7).toString('base64') }));
    const limits = { maxDepth: 2, maxElements: 3 };
    const scanner = new JsonShapeScanner(limits);
    let got: JsonShapeVerdict = { ok: true };
    for (let at = 0; at < body.length; at += 16_384) got = scanner.feed(body.subarray(at, at + 16_384));
    expect(got).toEqual(referenceScan([body], limits));
    expect(got).toEqual({ ok: true });
  });
});

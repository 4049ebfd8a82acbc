import { randomBytes } from 'node:crypto';
import { decodeBase64Strict } from '../../src/util/strict-base64';
import { AppError } from '../../src/util/app-error';
import { prng } from '../ops/helpers';

/**
 * The reference: the strict decoder as it was before its fast path (one JS pass over a character table, then
 * Node's decoder). The fast path must give the same verdict, the same error and the same bytes for any input.
 */
const TABLE = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9]/.test(ch)) TABLE[c] = 1;
  else if (ch === '+' || ch === '/') TABLE[c] = 2;
  else if (ch === '-' || ch === '_') TABLE[c] = 4;
}
function referenceAlphabet(s: string): 'standard' | 'url' | null {
  let end = s.length;
  let pad = 0;
  while (end > 0 && s.charCodeAt(end - 1) === 61) {
    end--;
    pad++;
  }
  let seen = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    const k = c < 128 ? TABLE[c]! : 0;
    if (k === 0) return null;
    seen |= k;
  }
  if ((seen & 6) === 6) return null;
  if (seen & 4) return pad === 0 ? 'url' : null;
  return pad <= 2 ? 'standard' : null;
}
function referenceDecode(input: unknown, field: string): Buffer {
  if (typeof input !== 'string') throw new AppError(400, 'INVALID_FIELD', `Invalid field ${field}: must be a base64 string`);
  let s = input;
  if (s.startsWith('data:')) {
    const comma = s.indexOf(',');
    if (comma < 0 || !/;base64$/i.test(s.slice(0, comma))) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: data URL is not base64`);
    s = s.slice(comma + 1);
  }
  if (/\s/.test(s)) s = s.replace(/\s+/g, '');
  if (s.length === 0) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: empty audio data`);
  const alphabet = referenceAlphabet(s);
  if (!alphabet) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: not valid base64`);
  let unpadded = s.length;
  while (unpadded > 0 && s.charCodeAt(unpadded - 1) === 61) unpadded--;
  if (unpadded % 4 === 1) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: truncated base64`);
  return Buffer.from(s, alphabet === 'standard' ? 'base64' : 'base64url');
}

type Verdict = { ok: true; hex: string } | { ok: false; status: number; code: string; message: string };
function verdictOf(f: (input: unknown, field: string) => Buffer, input: unknown): Verdict {
  try {
    return { ok: true, hex: f(input, 'audio_data').toString('hex') };
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { ok: false, status: err.status, code: err.code, message: err.message };
  }
}

/** Characters a mutation inserts: every ASCII code, padding, both alphabets' own, whitespace and non-ASCII look-alikes. */
const ASCII = Array.from({ length: 128 }, (_, c) => String.fromCharCode(c));
const SPECIAL = ['=', '==', '+', '/', '-', '_', ' ', '\n', '\r\n', '\t', '\u00a0', '\u2028', '\ufeff', 'Ł', 'Á', 'Ā', 'Ａ', 'é', '😀', '\u0000', '\u0141', '\u0241'];

function randomInput(rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const size = pick([0, 1, 2, 3, 4, 5, 7, 16, 33, 100, 300, 1000]);
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(rnd() * 256);
  let s = bytes.toString(rnd() < 0.7 ? 'base64' : 'base64url');
  const mutations = rnd() < 0.25 ? 0 : 1 + Math.floor(rnd() * 4);
  for (let m = 0; m < mutations; m++) {
    const at = Math.floor(rnd() * (s.length + 1));
    const kind = rnd();
    if (kind < 0.4) s = s.slice(0, at) + (rnd() < 0.5 ? pick(SPECIAL) : pick(ASCII)) + s.slice(at); // insert
    else if (kind < 0.6) s = s.slice(0, at) + (rnd() < 0.5 ? pick(SPECIAL) : pick(ASCII)) + s.slice(at + 1); // replace
    else if (kind < 0.75) s = s.slice(0, at) + s.slice(at + 1); // delete (changes the length's residue)
    else if (kind < 0.9) s += pick(['=', '==', '===', '-', '+', ' ', '\n']); // tail
    else s = pick(['data:audio/webm;base64,', 'data:audio/webm;BASE64,', 'data:audio/webm,', 'data:', 'data:;base64,']) + s;
  }
  return s;
}

describe('strict base64: the fast path gives the reference verdict', () => {
  it('for hand-picked edge cases', () => {
    const cases: unknown[] = [
      '', ' ', '=', '==', '===', 'A', 'AA', 'AAA', 'AAAA', 'AAAAA', 'AA==', 'AA=', 'AAA=', 'AAAA==', 'AAAA===', 'AA=A', 'AA==AAAA',
      'AAAŁ', 'AAAÁ', 'QUJĀ', 'QUJDＡ', 'A\u0000AA', 'AAA*', 'AB-_', 'AB+/', 'AB-/', 'AB_+', 'AB-_==', 'AB+/==', 'AB-_=',
      'AA AA', ' AAAA\n', 'AA\u00a0AA', 'data:audio/webm;base64,AAAA', 'data:audio/webm;base64,', 'data:x,AAAA', 'data:AAAA',
      undefined, null, 42, { a: 1 }, ['AAAA'],
    ];
    for (const c of cases) expect({ input: c, verdict: verdictOf(decodeBase64Strict, c) }).toEqual({ input: c, verdict: verdictOf(referenceDecode, c) });
  });

  it('for real chunks in both alphabets, with and without padding and whitespace', () => {
    for (const n of [1, 2, 3, 640, 3200, 16_500, 32_000]) {
      const b = randomBytes(n);
      for (const s of [b.toString('base64'), b.toString('base64url'), b.toString('base64').replace(/=+$/, ''), b.toString('base64').replace(/(.{76})/g, '$1\r\n')]) {
        const v = verdictOf(decodeBase64Strict, s);
        expect(v).toEqual(verdictOf(referenceDecode, s));
        expect(v).toEqual({ ok: true, hex: b.toString('hex') });
      }
    }
  });

  it('for seeded random strings (mutated base64: inserted, replaced, deleted characters, tails, data: prefixes)', () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000_007);
    const rnd = prng(seed);
    const runs = 40_000;
    let refused = 0;
    for (let i = 0; i < runs; i++) {
      const input = randomInput(rnd);
      const expected = verdictOf(referenceDecode, input);
      const got = verdictOf(decodeBase64Strict, input);
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        throw new Error(`verdicts differ (seed ${seed}, run ${i}): input ${JSON.stringify(input.length > 200 ? input.slice(0, 200) + '…' : input)} (length ${input.length}): reference ${JSON.stringify(expected).slice(0, 200)}, fast path ${JSON.stringify(got).slice(0, 200)}`);
      }
      if (!expected.ok) refused++;
    }
    // Both sides of the verdict were exercised (a generator that only made valid or only invalid strings proves little).
    expect({ seed, refusedShare: refused / runs > 0.3 && refused / runs < 0.9 }).toEqual({ seed, refusedShare: true });
  });
});

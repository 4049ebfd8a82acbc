/**
 * Linear-time redaction (issue 11 row 5): every step of the logging path's redaction, and the composed redactors,
 * get 100 KB adversarial strings built to make a backtracking pattern re-scan the input from every position
 * (`eyJ` × N cost ~90 ms per request at 16 KB with the old JWT regex, ~2.3 s at 100 KB). Each must finish within
 * a bound a quadratic step cannot meet, and still redact a real secret placed after the adversarial prefix.
 */
import jwt from 'jsonwebtoken';
import { prng } from '../ops/helpers';
import {
  createLineRedactor,
  LINE_REDACTIONS,
  literalSecretsRedaction,
  redactJwts,
  redactText,
  redactUrl,
  TEXT_REDACTIONS,
  type Redaction,
} from '../../src/util/redaction';

const SIZE = 100_000;
/**
 * Per 100 KB call. Linear steps take ~0.1–2 ms here (measured below and printed); the old JWT pattern took
 * ~2,300 ms on `eyJ` × 33,000. The bound leaves a >8× margin over the slowest call seen on a loaded 2-core machine (~12 ms).
 */
const BOUND_MS = 100;

const fill = (unit: string, size = SIZE): string => unit.repeat(Math.ceil(size / unit.length)).slice(0, size);

/** Strings that make a naive pattern for one of our credential shapes re-read the input from each position. */
const ADVERSARIAL: Record<string, string> = {
  'eyJ run': fill('eyJ'),
  'eyJ run then one dot': fill('eyJ') + '.',
  'eyJ dotted pairs': fill('eyJa.'),
  'eyJ with two dots, empty third part': fill('eyJa.b.'),
  'dotted base64url': fill('aB-_.'),
  'eyJ long run1': 'eyJ' + fill('a'),
  'eyJ long run2': 'eyJa.' + fill('b'),
  'eyJ long run3 then nothing': 'eyJa.b' + fill('c'),
  '?token= flood': fill('?token='),
  '&key flood without =': fill('&key'),
  'query param values': fill('?access_token=a&'),
  'ak_ flood': fill('ak_'),
  'ak_ + hex run': 'ak_' + fill('0'),
  'AIza flood': fill('AIza'),
  'AIza near misses': fill('AIza' + 'A'.repeat(19) + '!'),
  'Bearer flood': fill('Bearer '),
  'Bearer + whitespace run': 'Bearer' + fill(' \t'),
  'bearer, mixed case': fill('bEaReR\t'),
  'quotes and backslashes': fill('"\\"eyJ\\'),
  'random from the credential alphabet': (() => {
    const r = prng(11);
    const parts = ['eyJ', '.', 'a', '-', '?token=', '&', 'ak_', '0f', 'AIza', 'Bearer ', ' ', '"', '\\', '=', '#'];
    let s = '';
    while (s.length < SIZE) s += parts[Math.floor(r() * parts.length)];
    return s.slice(0, SIZE);
  })(),
};

/** Best of three runs (ms): the cost of the work, not of whatever else the machine did meanwhile. */
function timed(fn: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

const SECRET = 'gemini-key-0123456789-abcdefghij';
const steps: Redaction[] = [...TEXT_REDACTIONS, ...LINE_REDACTIONS, literalSecretsRedaction([SECRET, 'jwt-secret-abcdef'])!];
const composed: Array<[string, (s: string) => string]> = [
  ['redactText', redactText],
  ['redactUrl', redactUrl],
  ['createLineRedactor', createLineRedactor([SECRET])],
];

describe('redaction runs in linear time on crafted input', () => {
  const worst: string[] = [];
  afterAll(() => {
    console.log(`redaction: slowest 100 KB calls (bound ${BOUND_MS} ms): ${worst.sort().slice(-5).join(', ')}`);
  });

  it.each(steps.map((s) => [s.name, s] as const))('step %s: every 100 KB adversarial string within the bound', (_name, step) => {
    for (const [label, input] of Object.entries(ADVERSARIAL)) {
      const ms = timed(() => step.apply(input));
      worst.push(`${ms.toFixed(2).padStart(8)} ms ${step.name} on ${label}`);
      if (ms > BOUND_MS) throw new Error(`${step.name} took ${ms.toFixed(1)} ms on "${label}" (${input.length} chars; bound ${BOUND_MS} ms)`);
    }
  });

  it.each(composed)('%s: every adversarial string within the bound, and a real secret after it is still redacted', (_name, redact) => {
    const token = jwt.sign({ userId: 1, username: 'u', type: 'access' }, 'a-secret-that-is-long-enough-for-hs256!!');
    const apiKey = 'ak_' + 'c0ffee'.repeat(10) + 'abcd';
    for (const [label, input] of Object.entries(ADVERSARIAL)) {
      const ms = timed(() => redact(input));
      if (ms > BOUND_MS) throw new Error(`${_name} took ${ms.toFixed(1)} ms on "${label}" (bound ${BOUND_MS} ms)`);
      if (redact === redactUrl) {
        const out = redact(`/x?${input.replace(/[?&#]/g, '_')}&token=${apiKey}`);
        expect(out).not.toContain(apiKey);
        continue;
      }
      const out = redact(`${input} "Authorization: Bearer ${token}" key=${apiKey} jwt ${token} ${SECRET}`);
      expect(out).not.toContain(token);
      expect(out).not.toContain(token.split('.')[2]);
      expect(out).not.toContain(apiKey);
      if (redact !== redactText) expect(out).not.toContain(SECRET);
    }
  });

  it('the old JWT pattern really is quadratic on these inputs (the test can fail)', () => {
    const old = (s: string) => s.replace(/eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+/g, '[REDACTED_JWT]');
    const t0 = performance.now();
    old(fill('eyJ', 30_000));
    const ms = performance.now() - t0;
    // 30 KB already costs the backtracking pattern far more than the bound allows 100 KB.
    expect(ms).toBeGreaterThan(BOUND_MS);
  });
});

it('bearer tokens are still redacted the way they were (any case, any whitespace)', () => {
  expect(redactText('Authorization: Bearer abc.def')).toBe('Authorization: Bearer [REDACTED]');
  expect(redactText('bearer\t\tabc x')).toBe('bearer\t\t[REDACTED] x');
  expect(redactText('Bearer ' + ' '.repeat(10) + '!x')).toBe('Bearer ' + ' '.repeat(10) + '[REDACTED]');
  expect(redactText('Bearer   ')).toBe('Bearer   ');
  expect(createLineRedactor()('{"authorization":"Bearer abc"}')).toBe('{"authorization":"Bearer [REDACTED]"}');
});

describe('the JWT scanner finds exactly what /eyJ[\\w-]+\\.[\\w-]+\\.[\\w-]+/g finds', () => {
  const reference = (s: string) => s.replace(/eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+/g, '[REDACTED_JWT]');
  const SEED = Number(process.env.REDACTION_SEED ?? 424242);

  it(`on 50,000 random short strings (seed ${SEED})`, () => {
    const r = prng(SEED);
    const alphabet = ['e', 'y', 'J', 'eyJ', 'eyJ', 'a', 'Z', '9', '.', '.', '-', '_', ' ', '"', '\u00e9', '\n'];
    for (let n = 0; n < 50_000; n++) {
      let s = '';
      const len = Math.floor(r() * 40);
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(r() * alphabet.length)];
      const want = reference(s);
      if (redactJwts(s) !== want) throw new Error(`seed ${SEED}, case ${n}: ${JSON.stringify(s)} → ${JSON.stringify(redactJwts(s))}, expected ${JSON.stringify(want)}`);
    }
  });

  it('on real tokens in text, JSON and URLs', () => {
    const t = jwt.sign({ sub: 'x' }, 'a-secret-that-is-long-enough-for-hs256!!');
    for (const s of [t, `Bearer ${t}`, `{"token":"${t}"}`, `/ws?token=${t}&x=1`, `${t}.${t}`, `xeyJ${t}`, `${t}${t}`, 'eyJ.a.b', 'eyJa..b', 'eyJa.b.']) {
      expect(redactJwts(s)).toBe(reference(s));
    }
    expect(redactJwts(`a ${t} b`)).toBe('a [REDACTED_JWT] b');
  });
});

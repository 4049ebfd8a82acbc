import { createHash } from 'node:crypto';
import {
  ApiKeyConfigError,
  API_KEY_LENGTH,
  generateApiKey,
  hashApiKey,
  isValidKeyName,
  isWellFormedApiKey,
  LEAKED_KEY_HASHES,
  parseEnvApiKeys,
} from '../../src/services/auth/api-key';

const GOOGLE_KEY = 'AIzaSyD-fake-google-key-0123456789abcdef';

function parseError(raw: string): ApiKeyConfigError {
  try {
    parseEnvApiKeys(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiKeyConfigError);
    return e as ApiKeyConfigError;
  }
  throw new Error('expected parseEnvApiKeys to throw');
}

describe('API key format', () => {
  it('generates ak_ + 64 lowercase hex (67 chars), random each time', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a).toMatch(/^ak_[0-9a-f]{64}$/);
    expect(a).toHaveLength(API_KEY_LENGTH);
    expect(a).not.toBe(b);
    expect(isWellFormedApiKey(a)).toBe(true);
  });

  it.each([
    ['upper-case hex', 'ak_' + 'A'.repeat(64)],
    ['wrong prefix', 'ab_' + 'a'.repeat(64)],
    ['too short', 'ak_' + 'a'.repeat(63)],
    ['too long', 'ak_' + 'a'.repeat(65)],
    ['non-hex', 'ak_' + 'g'.repeat(64)],
    ['Google key', GOOGLE_KEY],
    ['JWT', 'eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOjF9.sig'],
    ['empty', ''],
    ['padded', ` ${'ak_' + 'a'.repeat(64)}`],
  ])('rejects %s', (_label, value) => {
    expect(isWellFormedApiKey(value)).toBe(false);
  });

  it('rejects non-strings', () => {
    for (const v of [undefined, null, 42, {}, ['ak_' + 'a'.repeat(64)]]) expect(isWellFormedApiKey(v)).toBe(false);
  });

  it('hashes with SHA-256 hex', () => {
    const k = generateApiKey();
    expect(hashApiKey(k)).toBe(createHash('sha256').update(k).digest('hex'));
    expect(hashApiKey(k)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('validates key names', () => {
    for (const ok of ['dev', 'a', 'A.b-c_9', 'x'.repeat(64)]) expect(isValidKeyName(ok)).toBe(true);
    for (const bad of ['', 'x'.repeat(65), 'has space', 'a/b', '../x', 'ä', 'a:b', 3]) expect(isValidKeyName(bad)).toBe(false);
  });
});

describe('parseEnvApiKeys (LIVE_AUDIO_API_KEYS)', () => {
  it('returns [] for empty or missing values', () => {
    expect(parseEnvApiKeys(undefined)).toEqual([]);
    expect(parseEnvApiKeys('')).toEqual([]);
    expect(parseEnvApiKeys(' , ,, ')).toEqual([]);
  });

  it('parses name:key pairs, trimming spaces and ignoring empty entries; keeps only hashes', () => {
    const k1 = generateApiKey();
    const k2 = generateApiKey();
    const parsed = parseEnvApiKeys(` alice : ${k1} , ,bob:${k2},`);
    expect(parsed).toEqual([
      { name: 'alice', hash: hashApiKey(k1) },
      { name: 'bob', hash: hashApiKey(k2) },
    ]);
    expect(JSON.stringify(parsed)).not.toContain(k1);
    expect(JSON.stringify(parsed)).not.toContain(k2);
  });

  it('names the entry but never prints the key for a malformed key', () => {
    const bad = 'ak_' + 'A'.repeat(64);
    const e = parseError(`ok:${generateApiKey()},alice:${bad}`);
    expect(e.message).toContain('"alice"');
    expect(e.message).toContain('malformed');
    expect(e.message).not.toContain(bad);
    expect(e.message).not.toContain('AAAAAAAA');
  });

  it('rejects an entry without a name and does not echo it', () => {
    const key = generateApiKey();
    const e = parseError(key);
    expect(e.message).toContain('entry #1');
    expect(e.message).not.toContain(key.slice(3, 20));
  });

  it('rejects swapped key:name without echoing the key', () => {
    const key = generateApiKey();
    const e = parseError(`${key}:alice`);
    expect(e.message).not.toContain(key.slice(3, 20));
    expect(e.message).toMatch(/entry #1/);
  });

  it('rejects Google keys with a helpful message and no key', () => {
    const e = parseError(`frontend:${GOOGLE_KEY}`);
    expect(e.message).toContain('"frontend"');
    expect(e.message).toContain('Google');
    expect(e.message).not.toContain(GOOGLE_KEY);
    expect(e.message).not.toContain('SyD-fake');
  });

  it('rejects invalid names, empty keys, duplicate names and duplicate keys', () => {
    const k = generateApiKey();
    expect(parseError(`bad name:${k}`).message).toMatch(/invalid name/);
    expect(parseError('alice:').message).toMatch(/"alice" has an empty key/);
    expect(parseError(`a:${k},a:${generateApiKey()}`).message).toMatch(/"a" is a duplicate name/);
    const dup = parseError(`a:${k},b:${k}`);
    expect(dup.message).toMatch(/"b" repeats the key/);
    expect(dup.message).not.toContain(k);
  });

  it('rejects publicly leaked keys (deny list of hashes)', () => {
    const k = generateApiKey();
    const list = LEAKED_KEY_HASHES as string[];
    list.push(hashApiKey(k));
    try {
      const e = parseError(`old:${k}`);
      expect(e.message).toMatch(/"old" uses a publicly leaked key/);
      expect(e.message).not.toContain(k);
    } finally {
      list.pop();
    }
  });

  it('ships the hash (not the key) of the key committed in the frontend repo', () => {
    expect(LEAKED_KEY_HASHES).toContain('e16f994b8da77210793706ad7267b69a5ec6aa0ec447a56289cfb3c66dfec999');
    for (const h of LEAKED_KEY_HASHES) expect(h).toMatch(/^[0-9a-f]{64}$/);
  });
});

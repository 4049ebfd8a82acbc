// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain require: spies must patch the real module object
import crypto = require('node:crypto');
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiKeyStore } from '../../src/services/auth/api-key-store';
import { generateApiKey, hashApiKey, LEAKED_KEY_HASHES } from '../../src/services/auth/api-key';
import {
  createKeyInFile,
  KeyFileError,
  readKeyFile,
  revokeKeyInFile,
  writeKeyFile,
} from '../../src/services/auth/key-file';
import { runKeysCli } from '../../src/cli/keys-cli';
import { captureLogger, cleanupTempDirs, makeTempDir } from './helpers';

afterEach(() => {
  jest.restoreAllMocks();
  cleanupTempDirs();
});

/** Runs the CLI core like `npm run keys -- …` would, returning the printed key for `create`. */
function cli(args: string[]): { code: number; out: string; err: string; key?: string } {
  const out: string[] = [];
  const err: string[] = [];
  const code = runKeysCli(args, { env: {}, stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  const key = out.join('\n').match(/ak_[0-9a-f]{64}/)?.[0];
  return { code, out: out.join('\n'), err: err.join('\n'), key };
}

describe('key file at rest', () => {
  it('stores only SHA-256 hashes, mode 0600, in a created directory, without temp leftovers', () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'nested', 'deeper', 'api-keys.json');
    const created = createKeyInFile(file, 'alice');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain(created.key);
    expect(text).not.toContain(created.key.slice(3));
    expect(JSON.parse(text)).toEqual({
      version: 1,
      keys: [{ name: 'alice', hash: hashApiKey(created.key), createdAt: expect.any(String) }],
    });
    if (process.platform !== 'win32') {
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(fs.readdirSync(path.dirname(file))).toEqual(['api-keys.json']);
  });

  it('rewrites atomically (new inode) and preserves unknown fields', () => {
    const file = path.join(makeTempDir(), 'k.json');
    writeKeyFile(file, {
      version: 1,
      keys: [{ name: 'old', hash: 'a'.repeat(64), createdAt: '2025-01-01T00:00:00.000Z', note: 'keep me' }],
      comment: 'top-level extra',
    });
    const ino = fs.statSync(file).ino;
    createKeyInFile(file, 'new');
    expect(fs.statSync(file).ino).not.toBe(ino);
    const data = readKeyFile(file);
    expect(data.comment).toBe('top-level extra');
    expect(data.keys[0]).toMatchObject({ name: 'old', note: 'keep me' });
    expect(data.keys.map((k) => k.name)).toEqual(['old', 'new']);
  });

  it('rejects invalid files with a KeyFileError naming the path but not the content', () => {
    const file = path.join(makeTempDir(), 'k.json');
    fs.writeFileSync(file, '{"version":1,"keys":[{"name":"x","hash":"SECRETISH","createdAt":"t"}]}');
    expect(() => readKeyFile(file)).toThrow(KeyFileError);
    expect(() => readKeyFile(file)).toThrow(/hash must be 64 lowercase hex/);
    fs.writeFileSync(file, 'not json SECRETISH');
    expect(() => readKeyFile(file)).toThrow(/not valid JSON/);
    try {
      readKeyFile(file);
    } catch (e) {
      expect((e as Error).message).not.toContain('SECRETISH');
    }
    fs.writeFileSync(file, '{"version":2,"keys":[]}');
    expect(() => readKeyFile(file)).toThrow(/unsupported version/);
  });
});

describe('ApiKeyStore', () => {
  it('accepts env keys and file keys, rejects unknown ones', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    const envKey = generateApiKey();
    const fileKey = createKeyInFile(file, 'filed').key;
    const store = new ApiKeyStore({ envKeys: `ops:${envKey}`, filePath: file });
    await expect(store.verify(envKey)).resolves.toEqual({ name: 'ops', source: 'env' });
    await expect(store.verify(fileKey)).resolves.toEqual({ name: 'filed', source: 'file' });
    await expect(store.check(generateApiKey())).resolves.toEqual({ ok: false, reason: 'unknown' });
    expect(store.summary()).toMatchObject({ envKeys: 1, fileKeys: 1, revokedFileKeys: 0 });
    expect(store.hasActiveKeys()).toBe(true);
  });

  it('works without a key file and throws at startup for an invalid one', () => {
    const dir = makeTempDir();
    const store = new ApiKeyStore({ filePath: path.join(dir, 'missing.json') });
    expect(store.hasActiveKeys()).toBe(false);
    expect(fs.existsSync(path.join(dir, 'missing.json'))).toBe(false);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{oops');
    expect(() => new ApiKeyStore({ filePath: bad })).toThrow(KeyFileError);
  });

  it('throws the env parse error at construction', () => {
    expect(() => new ApiKeyStore({ envKeys: 'x:nope', filePath: path.join(makeTempDir(), 'k.json') })).toThrow(
      /LIVE_AUDIO_API_KEYS entry "x" has a malformed key/,
    );
  });

  it('rejects malformed keys without touching the store or the file system', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    createKeyInFile(file, 'a');
    const store = new ApiKeyStore({ filePath: file, reloadIntervalMs: 0 });
    const find = jest.spyOn(store, 'findByDigest');
    const stat = jest.spyOn(fs.promises, 'stat');
    const tse = jest.spyOn(crypto, 'timingSafeEqual');
    for (const bad of ['AIzaSyD-0123456789abcdefghijklmnopqrstu', 'ak_' + 'F'.repeat(64), 'ak_123', '', 'eyJ.x.y']) {
      await expect(store.check(bad)).resolves.toEqual({ ok: false, reason: 'malformed' });
    }
    await expect(store.check(undefined)).resolves.toEqual({ ok: false, reason: 'malformed' });
    expect(find).not.toHaveBeenCalled();
    expect(stat).not.toHaveBeenCalled();
    expect(tse).not.toHaveBeenCalled();
  });

  it('compares against every stored digest with timingSafeEqual, whether the key matches first, last or not at all', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    const env = [generateApiKey(), generateApiKey(), generateApiKey()];
    const f1 = createKeyInFile(file, 'f1').key;
    const f2 = createKeyInFile(file, 'f2').key;
    revokeKeyInFile(file, 'f2');
    const store = new ApiKeyStore({ envKeys: env.map((k, i) => `e${i}:${k}`).join(','), filePath: file, reloadIntervalMs: 60_000 });
    const total = LEAKED_KEY_HASHES.length + env.length + 2;
    const tse = jest.spyOn(crypto, 'timingSafeEqual');
    const counts: number[] = [];
    for (const key of [env[0]!, f1, f2, generateApiKey()]) {
      tse.mockClear();
      await store.check(key);
      counts.push(tse.mock.calls.length);
      for (const [a, b] of tse.mock.calls) {
        expect((a as Buffer).length).toBe(32);
        expect((b as Buffer).length).toBe(32);
      }
    }
    expect(counts).toEqual([total, total, total, total]);
  });

  it('denies keys on the leaked list even if configured in the file', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    const created = createKeyInFile(file, 'unlucky');
    const list = LEAKED_KEY_HASHES as string[];
    list.push(hashApiKey(created.key));
    try {
      const store = new ApiKeyStore({ filePath: file });
      await expect(store.check(created.key)).resolves.toEqual({ ok: false, reason: 'leaked' });
    } finally {
      list.pop();
    }
  });

  it('picks up keys created and revoked by the CLI without a restart', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    const store = new ApiKeyStore({ filePath: file, reloadIntervalMs: 0 });
    expect(store.hasActiveKeys()).toBe(false);

    const created = cli(['create', 'bob', '--file', file]);
    expect(created.code).toBe(0);
    await expect(store.verify(created.key)).resolves.toEqual({ name: 'bob', source: 'file' });

    expect(cli(['revoke', 'bob', '--file', file]).code).toBe(0);
    await expect(store.check(created.key)).resolves.toEqual({ ok: false, reason: 'revoked' });

    // Same name again after the revoke: the new key works, the old one stays revoked.
    const again = cli(['create', 'bob', '--file', file]);
    expect(again.code).toBe(0);
    await expect(store.verify(again.key)).resolves.toEqual({ name: 'bob', source: 'file' });
    await expect(store.check(created.key)).resolves.toEqual({ ok: false, reason: 'revoked' });

    // Deleting the file removes its keys.
    fs.unlinkSync(file);
    await expect(store.check(again.key)).resolves.toEqual({ ok: false, reason: 'unknown' });
  });

  it('checks the file at most once per reload interval', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    let now = 1_000_000;
    const store = new ApiKeyStore({ filePath: file, reloadIntervalMs: 1000, now: () => now });
    const stat = jest.spyOn(fs.promises, 'stat');
    const { key } = cli(['create', 'carol', '--file', file]);

    now += 400;
    expect(await store.verify(key)).toBeNull(); // throttled: no stat yet
    expect(stat).not.toHaveBeenCalled();
    now += 599;
    expect(await store.verify(key)).toBeNull();
    expect(stat).not.toHaveBeenCalled();
    now += 1;
    expect(await store.verify(key)).toEqual({ name: 'carol', source: 'file' });
    expect(stat).toHaveBeenCalledTimes(1);
    await store.verify(key);
    await store.verify(key);
    expect(stat).toHaveBeenCalledTimes(1);

    // Concurrent look-ups share one check.
    now += 1000;
    stat.mockClear();
    await Promise.all([store.verify(key), store.verify(key), store.verify(key)]);
    expect(stat).toHaveBeenCalledTimes(1);
  });

  it('keeps the last good keys when the file becomes invalid, and warns without content', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    const { key } = createKeyInFile(file, 'dave');
    const cap = captureLogger();
    const store = new ApiKeyStore({ filePath: file, reloadIntervalMs: 0, log: cap.log });
    fs.writeFileSync(file, `{"broken": "${key}"`);
    await expect(store.verify(key)).resolves.toEqual({ name: 'dave', source: 'file' });
    await expect(store.verify(key)).resolves.toEqual({ name: 'dave', source: 'file' });
    const warnings = cap.lines().filter((l) => l.msg === 'API key file is invalid; keeping the previously loaded keys');
    expect(warnings).toHaveLength(1); // not repeated while the file is unchanged
    expect(cap.text()).not.toContain(key);
    // Once fixed, the new content applies.
    writeKeyFile(file, { version: 1, keys: [] });
    await expect(store.verify(key)).resolves.toBeNull();
  });

  it('createKey() writes the file and makes the key valid at once, refusing names used by env keys', async () => {
    const file = path.join(makeTempDir(), 'k.json');
    const store = new ApiKeyStore({ envKeys: `ops:${generateApiKey()}`, filePath: file, reloadIntervalMs: 60_000 });
    const c = store.createKey('eve');
    await expect(store.verify(c.key)).resolves.toEqual({ name: 'eve', source: 'file' });
    expect(() => store.createKey('ops')).toThrow(/already configured in LIVE_AUDIO_API_KEYS/);
    expect(() => store.createKey('eve')).toThrow(/already exists/);
  });
});

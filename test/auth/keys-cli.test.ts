import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseKeysCliArgs, resolveKeyFilePath, runKeysCli, type KeysCliContext } from '../../src/cli/keys-cli';
import { ApiKeyStore } from '../../src/services/auth/api-key-store';
import { generateApiKey, hashApiKey } from '../../src/services/auth/api-key';
import { readKeyFile } from '../../src/services/auth/key-file';
import { cleanupTempDirs, makeTempDir } from './helpers';

afterEach(() => cleanupTempDirs());

const ROOT = path.resolve(__dirname, '..', '..');
const KEY_RE = /ak_[0-9a-f]{64}/g;

function run(args: string[], ctx: Partial<KeysCliContext> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = runKeysCli(args, { env: {}, ...ctx, stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('keys CLI core', () => {
  it('create prints the key exactly once, says it cannot be shown again, and stores only its hash', () => {
    const file = path.join(makeTempDir(), 'keys', 'api-keys.json');
    const r = run(['create', 'alice', '--file', file]);
    expect(r.code).toBe(0);
    const keys = r.out.match(KEY_RE) ?? [];
    expect(keys).toHaveLength(1);
    expect(r.out).toMatch(/cannot be shown again/);
    const data = readKeyFile(file);
    expect(data.keys).toEqual([{ name: 'alice', hash: hashApiKey(keys[0]!), createdAt: expect.any(String) }]);
    expect(fs.readFileSync(file, 'utf8')).not.toContain(keys[0]!);
  });

  it.each(['', 'has space', 'x'.repeat(65), '../etc', 'a/b', 'naïve', 'a:b'])('rejects the invalid name %p', (name) => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    const r = run(['create', name, '--file', file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/Invalid key name/);
    expect(r.out).not.toMatch(KEY_RE);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('requires names unique among active keys (file and LIVE_AUDIO_API_KEYS)', () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    expect(run(['create', 'bob', '--file', file]).code).toBe(0);
    const dup = run(['create', 'bob', '--file', file]);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/already exists/);
    expect(run(['revoke', 'bob', '--file', file]).code).toBe(0);
    expect(run(['create', 'bob', '--file', file]).code).toBe(0);

    const env = { LIVE_AUDIO_API_KEYS: `ops:${generateApiKey()}` };
    const reserved = run(['create', 'ops', '--file', file], { env });
    expect(reserved.code).toBe(1);
    expect(reserved.err).toMatch(/LIVE_AUDIO_API_KEYS/);
  });

  it('list shows name, created, revoked and a hash prefix, never keys or full hashes', () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    const k1 = run(['create', 'one', '--file', file]).out.match(KEY_RE)![0];
    const k2 = run(['create', 'two', '--file', file]).out.match(KEY_RE)![0];
    run(['revoke', 'two', '--file', file]);
    const envKey = generateApiKey();
    const r = run(['list', '--file', file], { env: { LIVE_AUDIO_API_KEYS: `ci:${envKey}` } });
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines.find((l) => l.startsWith('NAME'))).toMatch(/NAME\s+CREATED\s+REVOKED\s+HASH/);
    const one = lines.find((l) => l.startsWith('one '))!;
    const two = lines.find((l) => l.startsWith('two '))!;
    expect(one).toContain(hashApiKey(k1).slice(0, 12));
    expect(one).toMatch(/\s-\s/);
    expect(two).toMatch(/\d{4}-\d\d-\d\dT.*\d{4}-\d\d-\d\dT/);
    expect(r.out).toContain('Also configured in LIVE_AUDIO_API_KEYS: ci');
    for (const secret of [k1, k2, envKey, hashApiKey(k1), hashApiKey(k2)]) expect(r.out).not.toContain(secret);
    expect(r.out).not.toMatch(/ak_[0-9a-f]/);
  });

  it('list on a missing file says there are no keys', () => {
    const file = path.join(makeTempDir(), 'none.json');
    const r = run(['list', '--file', file]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/No API keys/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('list warns about a bad LIVE_AUDIO_API_KEYS without printing its key', () => {
    const file = path.join(makeTempDir(), 'none.json');
    const bad = 'ak_' + 'B'.repeat(64);
    const r = run(['list', '--file', file], { env: { LIVE_AUDIO_API_KEYS: `x:${bad}` } });
    expect(r.out).toMatch(/Warning: LIVE_AUDIO_API_KEYS entry "x" has a malformed key/);
    expect(r.out).not.toContain(bad);
  });

  it('revoke fails for unknown or already revoked names', () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    expect(run(['revoke', 'ghost', '--file', file]).code).toBe(1);
    run(['create', 'once', '--file', file]);
    expect(run(['revoke', 'once', '--file', file]).code).toBe(0);
    const again = run(['revoke', 'once', '--file', file]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already revoked/);
  });

  it('fails cleanly on a corrupt key file without rewriting it', () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    fs.writeFileSync(file, '{not json');
    const r = run(['create', 'x', '--file', file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/not valid JSON/);
    expect(fs.readFileSync(file, 'utf8')).toBe('{not json');
  });

  it('resolves the file from --file, then LIVE_AUDIO_API_KEYS_FILE, then the default, relative to cwd', () => {
    const cwd = makeTempDir();
    expect(resolveKeyFilePath(undefined, {}, cwd)).toBe(path.join(cwd, '.live-audio', 'api-keys.json'));
    expect(resolveKeyFilePath(undefined, { LIVE_AUDIO_API_KEYS_FILE: 'env.json' }, cwd)).toBe(path.join(cwd, 'env.json'));
    expect(resolveKeyFilePath('cli.json', { LIVE_AUDIO_API_KEYS_FILE: 'env.json' }, cwd)).toBe(path.join(cwd, 'cli.json'));
    const r = run(['create', 'viaenv'], { cwd, env: { LIVE_AUDIO_API_KEYS_FILE: 'sub/env.json' } });
    expect(r.code).toBe(0);
    expect(readKeyFile(path.join(cwd, 'sub', 'env.json')).keys[0]!.name).toBe('viaenv');
    expect(run(['create', 'default'], { cwd }).code).toBe(0);
    expect(readKeyFile(path.join(cwd, '.live-audio', 'api-keys.json')).keys[0]!.name).toBe('default');
  });

  it('parses arguments and reports usage errors with exit code 2', () => {
    expect(parseKeysCliArgs(['create', 'a', '--file', 'f'])).toEqual({ command: 'create', name: 'a', file: 'f' });
    expect(parseKeysCliArgs(['--file=f', 'list'])).toEqual({ command: 'list', file: 'f' });
    expect(parseKeysCliArgs(['revoke', '--', '-odd'])).toEqual({ command: 'revoke', name: '-odd', file: undefined });
    for (const args of [[], ['frobnicate'], ['create'], ['create', 'a', 'b'], ['list', 'x'], ['--file'], ['list', '--bogus']]) {
      const r = run(args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/Usage: npm run keys/);
    }
    const help = run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/create <name>/);
  });
});

describe('keys CLI as a process (tsx)', () => {
  it('creates a key from .env settings that a running store accepts, then revokes it', async () => {
    const cwd = makeTempDir();
    fs.writeFileSync(path.join(cwd, '.env'), 'LIVE_AUDIO_API_KEYS_FILE=from-dotenv/keys.json\n');
    const file = path.join(cwd, 'from-dotenv', 'keys.json');
    const store = new ApiKeyStore({ filePath: file, reloadIntervalMs: 0 });
    const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
    const script = path.join(ROOT, 'src', 'cli', 'keys-cli.ts');
    // The file location comes only from cwd/.env: drop anything inherited from the test environment.
    const env: NodeJS.ProcessEnv = { ...process.env, LIVE_AUDIO_API_KEYS: '' };
    delete env.LIVE_AUDIO_API_KEYS_FILE;

    const created = spawnSync(tsx, [script, 'create', 'spawned'], { cwd, env, encoding: 'utf8' });
    expect(created.stderr).toBe('');
    expect(created.status).toBe(0);
    const key = created.stdout.match(KEY_RE)?.[0];
    expect(key).toBeDefined();
    expect(created.stdout).toMatch(/cannot be shown again/);
    await expect(store.verify(key)).resolves.toEqual({ name: 'spawned', source: 'file' });

    const revoked = spawnSync(tsx, [script, 'revoke', 'spawned'], { cwd, env, encoding: 'utf8' });
    expect(revoked.status).toBe(0);
    await expect(store.verify(key)).resolves.toBeNull();

    const bad = spawnSync(tsx, [script, 'create', 'bad name'], { cwd, env, encoding: 'utf8' });
    expect(bad.status).toBe(1);
  });
});

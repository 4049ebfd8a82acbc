import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiKeyStore } from '../../src/services/auth/api-key-store';
import { ensureDevelopmentKey } from '../../src/services/auth/dev-key';
import { generateApiKey } from '../../src/services/auth/api-key';
import { createKeyInFile, revokeKeyInFile } from '../../src/services/auth/key-file';
import { captureLogger, cleanupTempDirs, makeTempDir } from './helpers';

afterEach(() => cleanupTempDirs());

describe('ensureDevelopmentKey', () => {
  it('creates a "dev" key once when nothing is configured, then nothing on later starts', async () => {
    const file = path.join(makeTempDir(), '.live-audio', 'api-keys.json');
    const cap = captureLogger();
    const store = new ApiKeyStore({ filePath: file, log: cap.log });
    const dev = ensureDevelopmentKey({ store, nodeEnv: 'development', log: cap.log });
    expect(dev).not.toBeNull();
    expect(dev!.name).toBe('dev');
    expect(dev!.key).toMatch(/^ak_[0-9a-f]{64}$/);
    expect(dev!.filePath).toBe(file);
    await expect(store.verify(dev!.key)).resolves.toEqual({ name: 'dev', source: 'file' });

    // Stored hashed only; the key is not in the file nor in the logs.
    expect(fs.readFileSync(file, 'utf8')).not.toContain(dev!.key);
    expect(cap.text()).toContain('created a development API key');
    expect(cap.text()).not.toContain(dev!.key);

    // A restart: a new store over the same file finds the key and prints nothing.
    const restarted = new ApiKeyStore({ filePath: file });
    expect(ensureDevelopmentKey({ store: restarted, nodeEnv: 'development' })).toBeNull();
    expect(ensureDevelopmentKey({ store: restarted, nodeEnv: undefined })).toBeNull();
    await expect(restarted.verify(dev!.key)).resolves.toEqual({ name: 'dev', source: 'file' });
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).keys).toHaveLength(1);
  });

  it('returns null in production and writes nothing', () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'sub', 'api-keys.json');
    const store = new ApiKeyStore({ filePath: file });
    expect(ensureDevelopmentKey({ store, nodeEnv: 'production' })).toBeNull();
    expect(fs.existsSync(path.join(dir, 'sub'))).toBe(false);
  });

  it('does nothing when env keys exist', () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    const store = new ApiKeyStore({ envKeys: `ops:${generateApiKey()}`, filePath: file });
    expect(ensureDevelopmentKey({ store, nodeEnv: 'development' })).toBeNull();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('does nothing when the file has an active key (e.g. created by the CLI after the server started)', () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    const store = new ApiKeyStore({ filePath: file, reloadIntervalMs: 60_000 });
    createKeyInFile(file, 'alice');
    expect(ensureDevelopmentKey({ store, nodeEnv: 'test' })).toBeNull();
  });

  it('creates a new dev key when every file key is revoked (undefined NODE_ENV counts as development)', async () => {
    const file = path.join(makeTempDir(), 'api-keys.json');
    const old = createKeyInFile(file, 'dev');
    revokeKeyInFile(file, 'dev');
    const store = new ApiKeyStore({ filePath: file });
    const dev = ensureDevelopmentKey({ store, nodeEnv: undefined });
    expect(dev?.name).toBe('dev');
    expect(dev?.key).not.toBe(old.key);
    await expect(store.verify(dev!.key)).resolves.not.toBeNull();
    await expect(store.verify(old.key)).resolves.toBeNull();
  });
});

import * as path from 'node:path';
import jwt from 'jsonwebtoken';
import {
  apiKeyPrincipal,
  AuthService,
  createAuthenticator,
  detectCredentialKind,
  extractHeaderCredential,
} from '../../src/services/auth/authenticator';
import { ApiKeyStore } from '../../src/services/auth/api-key-store';
import { generateApiKey } from '../../src/services/auth/api-key';
import { createKeyInFile } from '../../src/services/auth/key-file';
import { signAccessToken } from '../helpers/jwt';
import type { Credential } from '../../src/services/auth/principal';
import { captureLogger, cleanupTempDirs, makeTempDir, SECRET } from './helpers';

afterEach(() => cleanupTempDirs());

describe('detectCredentialKind', () => {
  const key = generateApiKey();
  it.each([
    [key, undefined, 'api_key'],
    ['eyJhbGciOiJIUzI1NiJ9.e30.x', undefined, 'bearer'],
    ['AIzaSyD-whatever', undefined, 'bearer'],
    ['', undefined, 'bearer'],
    [key, 'bearer', 'bearer'],
    [key, 'jwt', 'bearer'],
    [key, 'JWT', 'bearer'],
    ['eyJ.x.y', 'api_key', 'api_key'],
    ['eyJ.x.y', ' API_KEY ', 'api_key'],
    ['eyJ.x.y', 'apikey', 'api_key'],
    [key, 'nonsense', 'api_key'],
    ['eyJ.x.y', 'nonsense', 'bearer'],
    [key, null, 'api_key'],
  ])('%#: detectCredentialKind(token, %p)', (token, hint, expected) => {
    expect(detectCredentialKind(token as string, hint as string | undefined | null)).toBe(expected);
  });
});

describe('extractHeaderCredential', () => {
  it('prefers X-API-Key, then Bearer, else null', () => {
    expect(extractHeaderCredential({ 'x-api-key': 'k', authorization: 'Bearer t' })).toEqual({ kind: 'api_key', token: 'k' });
    expect(extractHeaderCredential({ authorization: 'Bearer t' })).toEqual({ kind: 'bearer', token: 't' });
    expect(extractHeaderCredential({ authorization: 'bearer   t  ' })).toEqual({ kind: 'bearer', token: 't' });
    expect(extractHeaderCredential({ 'x-api-key': '  ', authorization: 'Bearer t' })).toEqual({ kind: 'bearer', token: 't' });
    expect(extractHeaderCredential({ authorization: 'Basic dXNlcjpwYXNz' })).toBeNull();
    expect(extractHeaderCredential({ authorization: 'Bearer' })).toBeNull();
    expect(extractHeaderCredential({ authorization: 'Bearer   ' })).toBeNull();
    expect(extractHeaderCredential({})).toBeNull();
  });
});

describe('AuthService', () => {
  function setup() {
    const file = path.join(makeTempDir(), 'keys.json');
    const envKey = generateApiKey();
    const fileKey = createKeyInFile(file, 'laptop').key;
    const cap = captureLogger();
    const auth = createAuthenticator({
      apiKeys: `ci:${envKey}`,
      apiKeysFile: file,
      jwtSecret: SECRET,
      log: cap.log,
    });
    return { auth, envKey, fileKey, cap, file };
  }

  it('authenticates API keys from env and file with key principals', async () => {
    const { auth, envKey, fileKey } = setup();
    await expect(auth.authenticate({ kind: 'api_key', token: envKey })).resolves.toEqual({
      id: 'key:ci',
      userId: 'key:ci',
      username: 'ci',
      authMethod: 'api_key',
    });
    await expect(auth.authenticate({ kind: 'api_key', token: fileKey })).resolves.toEqual(apiKeyPrincipal('laptop'));
    await expect(auth.authenticate({ kind: 'api_key', token: generateApiKey() })).resolves.toBeNull();
  });

  it('authenticates JWTs with user principals', async () => {
    const { auth } = setup();
    expect(auth.jwtEnabled).toBe(true);
    const token = signAccessToken(SECRET, { userId: 5, username: 'zoe' });
    await expect(auth.authenticate({ kind: 'bearer', token })).resolves.toEqual({
      id: 'user:5',
      userId: 5,
      username: 'zoe',
      authMethod: 'jwt',
    });
  });

  it('routes strictly by kind', async () => {
    const { auth, envKey } = setup();
    const token = signAccessToken(SECRET, { userId: 5, username: 'zoe' });
    await expect(auth.authenticate({ kind: 'bearer', token: envKey })).resolves.toBeNull();
    await expect(auth.authenticate({ kind: 'api_key', token })).resolves.toBeNull();
  });

  it('never throws on garbage input', async () => {
    const { auth } = setup();
    const garbage: unknown[] = [
      null,
      undefined,
      'ak_x',
      {},
      { kind: 'api_key' },
      { kind: 'api_key', token: 12 },
      { kind: 'bearer', token: '' },
      { kind: 'other', token: generateApiKey() },
      { kind: 'bearer', token: 'x'.repeat(100_000) },
    ];
    for (const g of garbage) await expect(auth.authenticate(g as Credential)).resolves.toBeNull();
  });

  it('turns internal errors into null and logs them without the key', async () => {
    const key = generateApiKey();
    const cap = captureLogger();
    const store = { check: async () => { throw new Error(`disk exploded while reading ${key}`); } } as unknown as ApiKeyStore;
    const auth = new AuthService({ keyStore: store, log: cap.log });
    await expect(auth.authenticate({ kind: 'api_key', token: key })).resolves.toBeNull();
    expect(cap.text()).toContain('authentication failed with an error');
    expect(cap.text()).not.toContain(key);
    expect(cap.text()).not.toContain(key.slice(3));
  });

  it('treats every bearer token as invalid when JWT is disabled', async () => {
    const auth = createAuthenticator({ apiKeysFile: path.join(makeTempDir(), 'k.json'), jwtSecret: 'short' });
    expect(auth.jwtEnabled).toBe(false);
    const token = jwt.sign({ userId: 1, username: 'a', type: 'access' }, 'short');
    await expect(auth.authenticate({ kind: 'bearer', token })).resolves.toBeNull();
    const none = new AuthService({});
    await expect(none.authenticate({ kind: 'api_key', token: generateApiKey() })).resolves.toBeNull();
    await expect(none.authenticate({ kind: 'bearer', token })).resolves.toBeNull();
  });
});

import * as path from 'node:path';
import express from 'express';
import request from 'supertest';
import jwt from 'jsonwebtoken';
import { createAuthenticator } from '../../src/services/auth/authenticator';
import { ensureDevelopmentKey } from '../../src/services/auth/dev-key';
import { generateApiKey, hashApiKey, LEAKED_KEY_HASHES } from '../../src/services/auth/api-key';
import { createKeyInFile, revokeKeyInFile } from '../../src/services/auth/key-file';
import { requireAuth } from '../../src/middleware/require-auth';
import type { Authenticator } from '../../src/services/auth/principal';
import { captureLogger, cleanupTempDirs, makeTempDir, SECRET } from './helpers';

afterEach(() => cleanupTempDirs());

it('no key, JWT, secret or full key hash ever reaches the log', async () => {
  const cap = captureLogger();
  const file = path.join(makeTempDir(), 'k.json');
  const envKey = generateApiKey();
  const fileKey = createKeyInFile(file, 'filed').key;
  const revokedKey = createKeyInFile(file, 'gone').key;
  revokeKeyInFile(file, 'gone');
  const leakedKey = generateApiKey();
  (LEAKED_KEY_HASHES as string[]).push(hashApiKey(leakedKey));
  const unknownKey = generateApiKey();
  const googleKey = 'AIzaSyD-0123456789abcdefghijklmnopqrstu';
  const goodJwt = jwt.sign({ userId: 1, username: 'u', type: 'access' }, SECRET, { expiresIn: 60 });
  const expiredJwt = jwt.sign({ userId: 1, username: 'u', type: 'access', exp: 1 }, SECRET);
  const badJwt = jwt.sign({ userId: 1, username: 'u', type: 'access' }, 'wrong-secret-wrong-secret-wrong-secret');
  let devKey = '';
  try {
    const auth = createAuthenticator({
      apiKeys: `env1:${envKey}`,
      apiKeysFile: file,
      jwtSecret: SECRET,
      log: cap.log,
      reloadIntervalMs: 0,
    });
    const app = express();
    app.get('/x', requireAuth(auth, { log: cap.log }), (_req, res) => void res.json({ ok: true }));
    const throwing: Authenticator = {
      authenticate: async (c) => {
        throw new Error(`failed for ${c.token}`);
      },
    };
    const app2 = express();
    app2.get('/x', requireAuth(throwing, { log: cap.log }), (_req, res) => void res.json({ ok: true }));

    for (const k of [envKey, fileKey, revokedKey, leakedKey, unknownKey, googleKey]) {
      await request(app).get('/x').set('X-API-Key', k);
      await request(app2).get('/x').set('X-API-Key', k);
    }
    for (const t of [goodJwt, expiredJwt, badJwt]) {
      await request(app).get('/x').set('Authorization', `Bearer ${t}`);
      await request(app2).get('/x').set('Authorization', `Bearer ${t}`);
    }
    // A reload of the key file and the dev-key bootstrap (in a second, empty store) log too.
    createKeyInFile(file, 'later');
    await auth.authenticate({ kind: 'api_key', token: fileKey });
    const devAuth = createAuthenticator({ apiKeysFile: path.join(makeTempDir(), 'dev.json'), log: cap.log });
    devKey = ensureDevelopmentKey({ store: devAuth.keyStore!, nodeEnv: 'development', log: cap.log })!.key;
  } finally {
    (LEAKED_KEY_HASHES as string[]).pop();
  }

  const text = cap.text();
  // The capture works and the interesting events were logged.
  expect(text).toContain('a publicly leaked API key was presented and refused');
  expect(text).toContain('API key file reloaded');
  expect(text).toContain('authentication error');
  expect(text).toContain('created a development API key');

  const secrets = [envKey, fileKey, revokedKey, leakedKey, unknownKey, devKey, googleKey, goodJwt, expiredJwt, badJwt, SECRET];
  for (const s of secrets) {
    expect(text).not.toContain(s);
  }
  for (const k of [envKey, fileKey, revokedKey, leakedKey, unknownKey, devKey]) {
    expect(text).not.toContain(k.slice(3, 23)); // no fragment of the hex either
    expect(text).not.toContain(hashApiKey(k));
  }
  for (const t of [goodJwt, expiredJwt, badJwt]) expect(text).not.toContain(t.split('.')[2]!);
  expect(text).not.toMatch(/ak_[0-9a-f]{8}/);
});

import * as path from 'node:path';
import express from 'express';
import request from 'supertest';
import jwt from 'jsonwebtoken';
import { requireAuth, getPrincipal } from '../../src/middleware/require-auth';
import { createAuthenticator } from '../../src/services/auth/authenticator';
import { generateApiKey } from '../../src/services/auth/api-key';
import { signAccessToken } from '../helpers/jwt';
import type { Authenticator } from '../../src/services/auth/principal';
import { captureLogger, cleanupTempDirs, makeTempDir, SECRET } from './helpers';

const AUTH_REQUIRED = { success: false, error: 'Access denied. No token provided.', code: 'AUTH_REQUIRED' };
const INVALID_API_KEY = { success: false, error: 'Invalid API key', code: 'INVALID_API_KEY' };
const INVALID_TOKEN = { success: false, error: 'Invalid token', code: 'INVALID_TOKEN' };

function appWith(authenticator: Authenticator, log = captureLogger().log) {
  const app = express();
  app.get('/me', requireAuth(authenticator, { log }), (req, res) => {
    res.json({ success: true, principal: req.principal, same: getPrincipal(req) === req.principal });
  });
  app.get('/boom', requireAuth(authenticator, { log }), () => {
    throw new Error('handler failure');
  });
  return app;
}

afterEach(() => cleanupTempDirs());

describe('requireAuth', () => {
  const key = generateApiKey();
  let auth: ReturnType<typeof createAuthenticator>;
  let app: express.Express;
  const jwtOk = signAccessToken(SECRET, { userId: 9, username: 'ann' });

  beforeEach(() => {
    auth = createAuthenticator({
      apiKeys: `frontend:${key}`,
      apiKeysFile: path.join(makeTempDir(), 'k.json'),
      jwtSecret: SECRET,
    });
    app = appWith(auth);
  });

  it('401 AUTH_REQUIRED without credentials', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: 'Bearer ' }, { 'x-api-key': '' }]) {
      const r = await request(app).get('/me').set(headers);
      expect(r.status).toBe(401);
      expect(r.body).toEqual(AUTH_REQUIRED);
    }
  });

  it('accepts a valid X-API-Key and sets req.principal', async () => {
    const r = await request(app).get('/me').set('X-API-Key', key);
    expect(r.status).toBe(200);
    expect(r.body.principal).toEqual({ id: 'key:frontend', userId: 'key:frontend', username: 'frontend', authMethod: 'api_key' });
    expect(r.body.same).toBe(true);
  });

  it('accepts a valid Bearer JWT', async () => {
    const r = await request(app).get('/me').set('Authorization', `Bearer ${jwtOk}`);
    expect(r.status).toBe(200);
    expect(r.body.principal).toEqual({ id: 'user:9', userId: 9, username: 'ann', authMethod: 'jwt' });
  });

  it('X-API-Key wins: an invalid key is 401 INVALID_API_KEY even with a valid bearer token (no fallback)', async () => {
    const r = await request(app).get('/me').set('X-API-Key', generateApiKey()).set('Authorization', `Bearer ${jwtOk}`);
    expect(r.status).toBe(401);
    expect(r.body).toEqual(INVALID_API_KEY);
    const r2 = await request(app).get('/me').set('X-API-Key', key).set('Authorization', 'Bearer garbage');
    expect(r2.status).toBe(200);
    expect(r2.body.principal.authMethod).toBe('api_key');
  });

  it.each([
    ['Google key', 'AIzaSyD-0123456789abcdefghijklmnopqrstu'],
    ['malformed ak_', 'ak_123'],
    ['unknown key', 'ak_' + '0'.repeat(64)],
    ['a JWT in X-API-Key', 'eyJhbGciOiJIUzI1NiJ9.e30.sig'],
  ])('401 INVALID_API_KEY for %s', async (_l, value) => {
    const r = await request(app).get('/me').set('X-API-Key', value);
    expect(r.status).toBe(401);
    expect(r.body).toEqual(INVALID_API_KEY);
  });

  it('401 INVALID_TOKEN for bad, expired, wrong-type bearer tokens and API keys sent as Bearer', async () => {
    const expired = jwt.sign({ userId: 1, username: 'a', type: 'access', exp: Math.floor(Date.now() / 1000) - 5 }, SECRET);
    const refresh = jwt.sign({ userId: 1, username: 'a', type: 'refresh' }, SECRET);
    for (const t of ['garbage', expired, refresh, key]) {
      const r = await request(app).get('/me').set('Authorization', `Bearer ${t}`);
      expect(r.status).toBe(401);
      expect(r.body).toEqual(INVALID_TOKEN);
    }
  });

  it('turns exceptions into 401 INVALID_TOKEN (never 500) without leaking the credential', async () => {
    const cap = captureLogger();
    const throwing: Authenticator = {
      authenticate: async (cred) => {
        throw new Error(`backend down while checking ${cred.token}`);
      },
    };
    const bad = appWith(throwing, cap.log);
    for (const [h, v] of [
      ['X-API-Key', key],
      ['Authorization', `Bearer ${jwtOk}`],
    ] as const) {
      const r = await request(bad).get('/me').set(h, v);
      expect(r.status).toBe(401);
      expect(r.body).toEqual(INVALID_TOKEN);
      expect(r.text).not.toContain(v.replace('Bearer ', ''));
    }
    expect(cap.text()).toContain('authentication error');
    expect(cap.text()).not.toContain(key);
    expect(cap.text()).not.toContain(jwtOk);
  });

  it('does not turn errors of later handlers into 401', async () => {
    const r = await request(app).get('/boom').set('X-API-Key', key);
    expect(r.status).toBe(500);
  });

  it('never echoes the presented key in a 401 body', async () => {
    const wrong = generateApiKey();
    const r = await request(app).get('/me').set('X-API-Key', wrong);
    expect(r.text).not.toContain(wrong);
  });
});

import request from 'supertest';
import { startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';

describe('REST authentication and CORS', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t.close();
  });

  it.each([
    ['get', `${API}/sessions`],
    ['post', `${API}/session/start`],
    ['post', `${API}/transcribe`],
    ['post', `${API}/session/end`],
    ['get', `${API}/session/x/status`],
    ['post', `${API}/streaming/start`],
  ] as const)('%s %s needs credentials', async (method, path) => {
    const r = await request(t.url)[method](path);
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ success: false, error: 'Access denied. No token provided.', code: 'AUTH_REQUIRED' });
  });

  it('rejects an unknown or malformed API key with the contract body, without echoing it', async () => {
    for (const key of ['ak_' + '0'.repeat(64), 'AIzaSyFakeGoogleKey1234567890123456789', 'nonsense']) {
      const r = await request(t.url).get(`${API}/sessions`).set('X-API-Key', key);
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ success: false, error: 'Invalid API key', code: 'INVALID_API_KEY' });
      expect(JSON.stringify(r.body)).not.toContain(key);
    }
  });

  it('accepts an API key and a JWT; a bad JWT gets Invalid token', async () => {
    expect((await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice)).status).toBe(200);
    const jwt = t.jwtFor(42, 'carol');
    const ok = await request(t.url).get(`${API}/sessions`).set('Authorization', `Bearer ${jwt}`);
    expect(ok.status).toBe(200);
    expect(ok.body.data).toMatchObject({ sessions: [], count: 0 });
    const bad = await request(t.url).get(`${API}/sessions`).set('Authorization', `Bearer ${jwt}x`);
    expect(bad.status).toBe(401);
    expect(bad.body).toEqual({ success: false, error: 'Invalid token', code: 'INVALID_TOKEN' });
  });

  it('answers the CORS preflight with X-API-Key allowed for an allowed origin', async () => {
    const r = await request(t.url)
      .options(`${API}/transcribe`)
      .set('Origin', 'https://app.example.com')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'x-api-key,content-type');
    expect(r.status).toBe(204);
    expect(r.headers['access-control-allow-origin']).toBe('https://app.example.com');
    const allowed = String(r.headers['access-control-allow-headers']).toLowerCase();
    expect(allowed).toContain('x-api-key');
    expect(allowed).toContain('content-type');
    expect(allowed).toContain('authorization');
    expect(String(r.headers['access-control-allow-methods'])).toContain('POST');
  });

  it('allows an authenticated cross-origin call from an allowed origin', async () => {
    const r = await request(t.url).get(`${API}/sessions`).set('Origin', 'https://app.example.com').set('X-API-Key', t.keys.alice);
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('https://app.example.com');
  });

  it('refuses other origins with 403 in the common error shape', async () => {
    const r = await request(t.url).get(`${API}/sessions`).set('Origin', 'https://evil.example.net').set('X-API-Key', t.keys.alice);
    expect(r.status).toBe(403);
    expect(r.body).toEqual({ success: false, error: 'Origin not allowed', code: 'CORS_ORIGIN_DENIED' });
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });
});

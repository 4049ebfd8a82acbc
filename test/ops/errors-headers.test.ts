import request from 'supertest';
import type { UpstreamProvider } from '../../src/services/upstream/upstream-types';
import { startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';

const expectErrorShape = (r: request.Response, status: number, code: string) => {
  expect(r.status).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(r.body).sort()).toEqual(expect.arrayContaining(['code', 'error', 'success']));
  expect(r.body.success).toBe(false);
  expect(r.body.code).toBe(code);
  expect(typeof r.body.error).toBe('string');
  expect(r.text).not.toMatch(/\bat .+\.(ts|js):\d+/); // no stack frames
  expect(r.text).not.toMatch(/<html|<pre/i);
};

/** A provider whose connect fails with an internal (non-client) error carrying internal details. */
const brokenProvider: UpstreamProvider = {
  emulated: false,
  connect: async () => {
    throw new Error('ECONNRESET while talking to 10.1.2.3 in /srv/app/src/secret-internals.ts:42');
  },
};

describe.each([
  ['development', 'test'],
  ['production', 'production'],
])('one error shape everywhere (%s)', (_label, nodeEnv) => {
  let t: TestServer;
  // Production refuses to start without a /metrics token.
  const METRICS_TOKEN = 'metrics-token-for-the-error-shape-tests';
  beforeAll(async () => {
    t = await startTestServer({ env: { NODE_ENV: nodeEnv, METRICS_TOKEN, LIVE_AUDIO_JSON_LIMIT: '64kb' }, overrides: { provider: brokenProvider } });
  });
  afterAll(async () => {
    await t.close();
  });
  const h = () => ({ 'X-API-Key': t.keys.alice });

  it('security headers (helmet) on API responses, no X-Powered-By', async () => {
    const r = await request(t.url).get(`${API}/sessions`).set(h());
    expect(r.status).toBe(200);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(r.headers['strict-transport-security']).toMatch(/max-age=/);
    expect(r.headers['content-security-policy']).toContain("default-src 'self'");
    expect(r.headers['x-powered-by']).toBeUndefined();
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('internal errors: 500 with a generic body, no message, no stack', async () => {
    const r = await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'boom' });
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ success: false, error: 'Internal server error', code: 'INTERNAL_ERROR' });
    expect(r.text).not.toContain('ECONNRESET');
    expect(r.text).not.toContain('secret-internals');
    expect(t.server.registry.size).toBe(0);
  });

  it('body-parser errors: malformed JSON 400, too large 413, bad charset 415; CORS refusal 403; unknown route 404', async () => {
    expectErrorShape(
      await request(t.url).post(`${API}/transcribe`).set(h()).set('Content-Type', 'application/json').send('{"session_id": tru'),
      400,
      'INVALID_JSON',
    );
    expectErrorShape(
      await request(t.url).post(`${API}/transcribe`).set(h()).send({ session_id: 'x', audio_data: 'A'.repeat(70_000) }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expectErrorShape(
      await request(t.url).post(`${API}/transcribe`).set(h()).set('Content-Type', 'application/json; charset=latin1').send('{}'),
      415,
      'UNSUPPORTED_ENCODING',
    );
    expectErrorShape(await request(t.url).get(`${API}/sessions`).set(h()).set('Origin', 'https://evil.example'), 403, 'CORS_ORIGIN_DENIED');
    expectErrorShape(await request(t.url).get('/nope').set(h()), 404, 'NOT_FOUND');
    expectErrorShape(await request(t.url).get(`${API}/session/%E0%A4%A/status`).set(h()), 400, 'BAD_REQUEST');
    expectErrorShape(await request(t.url).post(`${API}/transcribe`).set(h()).send([1, 2]), 400, 'INVALID_BODY');
    expectErrorShape(await request(t.url).get(`${API}/sessions`), 401, 'AUTH_REQUIRED');
  });

  it('a decoded chunk over 5 MiB is refused 413 by default, and JSON bodies over the /transcribe cap are 413', async () => {
    const d = await startTestServer({ env: { NODE_ENV: nodeEnv, METRICS_TOKEN } });
    try {
      const hd = { 'X-API-Key': d.keys.alice };
      await request(d.url).post(`${API}/session/start`).set(hd).send({ session_id: 'big' });
      // 5 MiB + 1 decoded (≈ 7 MB of base64): under the JSON cap, over the chunk cap.
      const over = await request(d.url).post(`${API}/transcribe`).set(hd).send({ session_id: 'big', audio_data: Buffer.alloc(5 * 1024 * 1024 + 3).toString('base64'), format: 'pcm' });
      expectErrorShape(over, 413, 'PAYLOAD_TOO_LARGE');
      expect(over.body.error).toBe('Audio data too large (max 5MB)');
      const json = await request(d.url).post(`${API}/transcribe`).set(hd).send({ session_id: 'big', audio_data: 'A'.repeat(8 * 1024 * 1024 + 10) });
      expectErrorShape(json, 413, 'PAYLOAD_TOO_LARGE');
      expect(json.body.error).toBe('Request body too large');
    } finally {
      await d.close();
    }
  });
});

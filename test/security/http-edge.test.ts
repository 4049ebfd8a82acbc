/**
 * The HTTP edge in-process (issue 11 item 1): nothing is read for a stranger, bodies are parsed per route with a
 * size, depth and value cap, bodies nobody read do not keep connections busy, slow clients meet deadlines, one
 * address cannot hold every connection, and every refusal — Node's own included — has the common JSON shape.
 * The same attacks against a spawned server process, with their memory and latency bounds, are in
 * http-abuse.test.ts.
 */
import request from 'supertest';
import { loadConfig } from '../../src/config/config';
import { JsonShapeScanner, type JsonShapeLimits } from '../../src/middleware/body-json-shape';

/** The scan of a whole text at once. */
const checkJsonShape = (bytes: Uint8Array, limits: JsonShapeLimits) => new JsonShapeScanner(limits).feed(bytes);
import { prng } from '../ops/helpers';
import { base64Length, CONTROL_JSON_MAX_DEPTH, routeBodySpecs } from '../../src/middleware/body-limits';
import { BodyBudget } from '../../src/middleware/body-budget';
import { MAX_LOGGED_URL, serializeRequest } from '../../src/middleware/http-logger';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { head, nestedArrays, RawConn } from './raw-http';

const API = '/api/v1/live-audio';

const expectShape = (body: string, code: string) => {
  const parsed = JSON.parse(body) as Record<string, unknown>;
  expect(parsed).toMatchObject({ success: false, code });
  expect(typeof parsed.error).toBe('string');
};

describe('JSON shape scan (linear, no recursion)', () => {
  const limits = { maxDepth: 4, maxElements: 1000 };
  const scan = (s: string) => checkJsonShape(Buffer.from(s), limits);

  it('counts depth and values outside strings only', () => {
    expect(scan('{"a":[[[1]]]}')).toEqual({ ok: true });
    expect(scan('{"a":[[[[1]]]]}')).toEqual({ ok: false, reason: 'depth' });
    expect(scan('{"a":"[[[[[[[[[[{{{{{{"}')).toEqual({ ok: true });
    expect(scan('{"a":"\\"[[[[[[[[","b":1}')).toEqual({ ok: true });
    expect(scan('{"a":"\\\\",' + '"b":[[[[1]]]]}')).toEqual({ ok: false, reason: 'depth' });
    expect(scan(`[${'0,'.repeat(1000)}0]`)).toEqual({ ok: false, reason: 'elements' });
    expect(scan(`[${'0,'.repeat(999)}0]`)).toEqual({ ok: true });
    expect(scan(`{"s":"${','.repeat(5000)}"}`)).toEqual({ ok: true });
  });

  it('gives the same verdict fed chunk by chunk, wherever the chunks are cut (escapes across cuts included)', () => {
    const SEED = 7;
    const r = prng(SEED);
    const texts = ['{"a":"\\\\","b":[[[1]]]}', '{"a":"\\"[[[[[["}', `{"a":[${'1,'.repeat(999)}1]}`, '{"a":{"b":{"c":{"d":{}}}}}', '["\\\\\\"]"]'];
    for (const text of texts) {
      const whole = checkJsonShape(Buffer.from(text), limits);
      for (let k = 0; k < 200; k++) {
        const s = new JsonShapeScanner(limits);
        const b = Buffer.from(text);
        let verdict = s.feed(b.subarray(0, 0));
        for (let at = 0; at < b.length; ) {
          const n = 1 + Math.floor(r() * 5);
          verdict = s.feed(b.subarray(at, at + n));
          at += n;
        }
        if (JSON.stringify(verdict) !== JSON.stringify(whole)) throw new Error(`seed ${SEED}: ${text} split ${k}: ${JSON.stringify(verdict)} vs ${JSON.stringify(whole)}`);
      }
    }
  });

  it('stops at the first level too deep of a 6 MB nest, without recursing', () => {
    const six = Buffer.from(nestedArrays(3_000_000));
    expect(checkJsonShape(six, { maxDepth: 10_000_000, maxElements: 10_000_000 })).toEqual({ ok: true });
    expect(checkJsonShape(six, limits)).toEqual({ ok: false, reason: 'depth' });
  });
});

describe('route body caps', () => {
  it('/transcribe takes the largest legal body (a 5 MiB chunk as base64 plus fields); the other routes a small one', () => {
    const c = loadConfig({});
    const specs = routeBodySpecs({ maxChunkBytes: c.audio.maxChunkBytes, jsonLimitBytes: c.http.jsonLimit, controlJsonLimitBytes: c.http.controlJsonLimit });
    expect(base64Length(5 * 1024 * 1024)).toBe(6_990_508);
    expect(specs.transcribe.maxBytes).toBe(6_990_508 + 64 * 1024);
    // Session start takes the largest legal options (a 32 KiB instruction, 1,000 vocabulary terms): 128 KiB.
    expect(specs.control.maxBytes).toBe(128 * 1024);
    // … and tool declarations (issue 16): 1,138 for the options plus 4,096 for the declarations' schemas, which
    // may nest 8 levels below body → tools → declaration (11 in all); /transcribe stays flat.
    expect(specs.control.maxElements).toBe(1_138 + 4_096);
    expect(specs.control.maxDepth).toBe(11);
    expect(specs.transcribe.maxDepth).toBeLessThanOrEqual(4);
    // LIVE_AUDIO_JSON_LIMIT stays the cap of every body.
    const low = routeBodySpecs({ maxChunkBytes: 5 * 1024 * 1024, jsonLimitBytes: 8 * 1024, controlJsonLimitBytes: 16 * 1024 });
    expect(low.transcribe.maxBytes).toBe(8 * 1024);
    expect(low.control.maxBytes).toBe(8 * 1024);
  });

  it('the body budget: one body always fits, then per user and in total', () => {
    const b = new BodyBudget({ perUser: 100, total: 150 });
    const a1 = b.reserve('a', 500);
    expect(a1).not.toBeInstanceOf(Error);
    expect(b.reserve('a', 1)).toMatchObject({ status: 429, code: 'UPLOADS_IN_FLIGHT_LIMITED' });
    expect(b.reserve('b', 1)).toMatchObject({ status: 503, code: 'SERVER_BUSY' });
    (a1 as { release(): void }).release();
    (a1 as { release(): void }).release();
    expect(b.inFlight()).toBe(0);
    const b1 = b.reserve('b', 60);
    expect(b.reserve('b', 40)).not.toBeInstanceOf(Error);
    expect(b.reserve('b', 1)).toMatchObject({ code: 'UPLOADS_IN_FLIGHT_LIMITED' });
    expect(b.reserve('c', 60)).toMatchObject({ code: 'SERVER_BUSY' });
    expect(b.reserve('c', 50)).not.toBeInstanceOf(Error);
    expect(b1).not.toBeInstanceOf(Error);
  });
});

describe('config of the edge', () => {
  it('production refuses to start with an open /metrics, and says how to fix it', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/METRICS_TOKEN: required in production.*METRICS_PUBLIC=true/s);
    expect(loadConfig({ NODE_ENV: 'production', METRICS_TOKEN: 'scrape-secret-123' }).ops).toMatchObject({ metricsToken: 'scrape-secret-123', metricsPublic: false });
    expect(loadConfig({ NODE_ENV: 'production', METRICS_PUBLIC: 'true' }).ops).toMatchObject({ metricsToken: undefined, metricsPublic: true });
    expect(() => loadConfig({ NODE_ENV: 'production', METRICS_PUBLIC: 'maybe', METRICS_TOKEN: 'x' })).toThrow(/METRICS_PUBLIC/);
    // Outside production /metrics may stay open (development, tests).
    expect(loadConfig({}).ops.metricsPublic).toBe(false);
  });

  it('timeouts, connection cap and body sizes are validated, with defaults', () => {
    expect(loadConfig({}).http).toEqual({
      jsonLimit: 8 * 1024 * 1024,
      controlJsonLimit: 128 * 1024,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      maxOpenConnectionsPerIp: 100,
      maxBodyBytesInFlightPerUser: 16 * 1024 * 1024,
      maxBodyBytesInFlight: 64 * 1024 * 1024,
    });
    expect(loadConfig({ LIVE_AUDIO_CONTROL_JSON_LIMIT: '2kb', LIVE_AUDIO_JSON_LIMIT: '1.5mb' }).http).toMatchObject({ controlJsonLimit: 2048, jsonLimit: 1572864 });
    expect(() => loadConfig({ LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS: '20000', LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS: '10000' })).toThrow(/HEADERS_TIMEOUT/);
    expect(() => loadConfig({ LIVE_AUDIO_JSON_LIMIT: 'lots' })).toThrow(/LIVE_AUDIO_JSON_LIMIT/);
    expect(() => loadConfig({ LIVE_AUDIO_CONTROL_JSON_LIMIT: '10' })).toThrow(/LIVE_AUDIO_CONTROL_JSON_LIMIT/);
    expect(() => loadConfig({ LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP: '-1' })).toThrow(/LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP/);
  });
});

describe('nothing is read for a stranger (in-process server, raw sockets)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' } });
    await request(t.url).post(`${API}/session/start`).set('X-API-Key', t.keys.alice).send({ session_id: 'edge' });
  });
  afterAll(async () => t.close());

  it.each([
    ['no credentials', {}, 'AUTH_REQUIRED'],
    ['a wrong API key', { 'X-API-Key': 'ak_' + '0'.repeat(64) }, 'INVALID_API_KEY'],
    ['a forged JWT', { Authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOjF9.c2ln' }, 'INVALID_TOKEN'],
  ])('%s and an 8 MB body: 401 on the headers, Connection: close, the connection gone within the linger bound', async (_l, creds, code) => {
    // A client that ignores the server's FIN and keeps sending its body.
    const c = await RawConn.open(t.port, { allowHalfOpen: true });
    c.write(head('POST', `${API}/transcribe`, { ...creds, 'Content-Type': 'application/json', 'Content-Length': 8_000_000 }));
    c.write('{"session_id":"edge","audio_data":"' + 'A'.repeat(1000));
    const r = await c.response();
    // The answer came while 1 KB of the 8 MB had been sent: the body was never waited for.
    expect(c.writtenAtFirstByte).toBeLessThan(2_000);
    expect(r.status).toBe(401);
    expect(r.headers.connection).toBe('close');
    expectShape(r.body, code);
    const answeredAt = performance.now();
    const dribble = setInterval(() => c.write('A'.repeat(1000)), 20);
    try {
      // The FIN comes with the answer; the socket itself is destroyed after the 500 ms linger, not at once
      // (a reset right behind the answer can make a client lose it) and not after the whole body.
      await c.until(() => c.endedAt !== undefined, 3_000, 'the FIN');
      const closedAt = await c.waitClosed(5_000);
      expect(closedAt - answeredAt).toBeGreaterThanOrEqual(300);
      expect(closedAt - answeredAt).toBeLessThan(3_000);
    } finally {
      clearInterval(dribble);
    }
    expect(c.written).toBeLessThan(200_000);
  });

  it('a stranger asking for 100-continue gets its 401 and never a 100; a key holder gets 100 Continue, then the answer', async () => {
    const s = await RawConn.open(t.port);
    s.write(head('POST', `${API}/transcribe`, { 'Content-Type': 'application/json', 'Content-Length': 5_000_000, Expect: '100-continue' }));
    const r = await s.response();
    expect(r.status).toBe(401);
    expect(s.text).not.toContain('100 Continue');
    s.destroy();

    const body = JSON.stringify({ session_id: 'edge', audio_data: Buffer.alloc(3200).toString('base64'), format: 'pcm' });
    const k = await RawConn.open(t.port);
    k.write(head('POST', `${API}/transcribe`, { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json', 'Content-Length': body.length, Expect: '100-continue' }));
    await k.until(() => k.text.startsWith('HTTP/1.1 100 Continue'), 3000, '100 Continue');
    k.write(body);
    const ok = await k.response();
    expect(ok.status).toBe(200);
    expect(ok.headers.connection).not.toBe('close');
    k.destroy();
  });

  it('a small unread body is drained: the 401 keeps the connection alive for the next request', async () => {
    const c = await RawConn.open(t.port);
    const body = '{"session_id":"edge"}';
    c.write(head('POST', `${API}/session/end`, { 'Content-Type': 'application/json', 'Content-Length': body.length }) + body);
    const r = await c.response();
    expect(r.status).toBe(401);
    expect(r.headers.connection).toBe('keep-alive');
    const before = c.text.length;
    c.write(head('GET', '/health', {}));
    await c.until(() => c.text.length > before && c.text.slice(before).includes('"status":"ok"'), 3000, 'the second answer');
    expect(c.closed).toBe(false);
    c.destroy();
  });

  it('a key holder past authentication gets the body read, parsed with the route caps (depth, values, size, encoding)', async () => {
    const k = { 'X-API-Key': t.keys.alice };
    const post = (path: string, body: string | Buffer, ct = 'application/json', extra: Record<string, string> = {}) =>
      request(t.url).post(`${API}${path}`).set(k).set('Content-Type', ct).set(extra).send(body);
    // Depth: a control route's cap (room for tool schemas) passes the scan (the route then answers on its
    // fields); one level more is refused before JSON.parse. /transcribe refuses a 5th level.
    expect((await post('/session/end', `{"session_id":"edge_x","m":${nestedArrays(CONTROL_JSON_MAX_DEPTH - 1)}}`)).status).toBe(200);
    const deep = await post('/session/end', `{"session_id":"edge","m":${nestedArrays(CONTROL_JSON_MAX_DEPTH)}}`);
    expect(deep.status).toBe(400);
    expect(deep.body).toMatchObject({ success: false, code: 'JSON_TOO_DEEP' });
    const deepChunk = await post('/transcribe', `{"session_id":"edge","m":${nestedArrays(4)}}`);
    expect(deepChunk.status).toBe(400);
    expect(deepChunk.body).toMatchObject({ success: false, code: 'JSON_TOO_DEEP' });
    const wide = await post('/transcribe', `{"session_id":"edge","x":[${'0,'.repeat(2000)}0]}`);
    expect(wide.body).toMatchObject({ success: false, code: 'JSON_TOO_COMPLEX' });
    // The 6 MB nest of the issue, from a key holder: refused by the scan.
    const six = await post('/transcribe', nestedArrays(3_000_000));
    expect(six.status).toBe(400);
    expect(six.body.code).toBe('JSON_TOO_DEEP');
    // Size per route: the control routes take 128 KiB.
    const big = await post('/session/start', JSON.stringify({ session_id: 'edge2', system_instruction: 'x'.repeat(140_000) }));
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ success: false, code: 'PAYLOAD_TOO_LARGE' });
    // Encodings: no compressed bodies, UTF-8 only; a BOM is fine; non-JSON bodies are not read (as before).
    expect((await post('/session/end', '{}', 'application/json', { 'Content-Encoding': 'gzip' })).body.code).toBe('UNSUPPORTED_ENCODING');
    expect((await post('/session/end', '{}', 'application/json; charset=utf-16')).body.code).toBe('UNSUPPORTED_ENCODING');
    expect((await post('/session/end', '\ufeff{"session_id":"edge_y"}')).body).toMatchObject({ success: true });
    expect((await post('/session/end', '"just a string"')).body.code).toBe('INVALID_JSON');
    expect((await post('/session/end', '{"session_id": tru')).body.code).toBe('INVALID_JSON');
    expect((await post('/session/end', '{"session_id":"edge_z"}', 'text/plain')).body.code).toBe('MISSING_FIELD');
    expect((await post('/session/end', '')).body.code).toBe('MISSING_FIELD');
  });

  it('a chunked body over the route cap is cut off: 413 and the connection closed', async () => {
    const c = await RawConn.open(t.port);
    c.write(head('POST', `${API}/session/start`, { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }));
    const piece = 'x'.repeat(4096);
    for (let i = 0; i < 33; i++) c.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
    const r = await c.response();
    expect(r.status).toBe(413);
    expect(r.headers.connection).toBe('close');
    await c.waitClosed(3000);
  });

  it("Node's own refusals have the JSON shape: malformed request 400, huge headers 431", async () => {
    const bad = await RawConn.open(t.port);
    bad.write('GARBAGE / HTTP/9.9\r\n\r\n');
    const r1 = await bad.response();
    expect(r1.status).toBe(400);
    expectShape(r1.body, 'BAD_REQUEST');
    await bad.waitClosed(3000);
    const huge = await RawConn.open(t.port);
    huge.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const r2 = await huge.response();
    expect(r2.status).toBe(431);
    expectShape(r2.body, 'HEADERS_TOO_LARGE');
    await huge.waitClosed(3000);
  });

  it('a 16 KiB URL is echoed (404) and logged only in part, credentials redacted before the cut', async () => {
    const run = 'eyJ'.repeat(5300);
    const r = await request(t.url).get(`/${run}`);
    expect(r.status).toBe(404);
    expect(r.body.error.length).toBeLessThan(250);
    const jwtAtTheCut = `${'x'.repeat(1000)}/eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOjF9.c2lnbmF0dXJlLXNlY3JldA`;
    const logged = serializeRequest({ method: 'GET', url: `/${jwtAtTheCut}?token=ak_${'1'.repeat(64)}` }).url as string;
    expect(logged.length).toBeLessThan(MAX_LOGGED_URL + 40);
    expect(logged).toContain('[REDACTED_JWT]');
    expect(logged).not.toContain('c2lnbmF0dXJl');
    expect(serializeRequest({ method: 'GET', url: `/${run}` }).url).toMatch(/…\[\d+ more\]$/);
  });

  it('CORS preflights, /health, /ready and the page work as before', async () => {
    const pre = await request(t.url)
      .options(`${API}/transcribe`)
      .set('Origin', 'https://app.example.com')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type,x-api-key');
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-headers']).toMatch(/X-API-Key/i);
    expect((await request(t.url).get('/health')).status).toBe(200);
    expect((await request(t.url).get('/ready')).status).toBe(200);
    const page = await request(t.url).get('/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
  });
});

describe('slow clients and connection hoarding', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: {
        LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS: '1000',
        LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS: '2000',
        LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP: '5',
        LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT_PER_USER: '8mb',
      },
    });
  });
  afterAll(async () => t.close());

  it('headers dribbled slower than the headers deadline: 408 in the JSON shape, connection closed', async () => {
    const c = await RawConn.open(t.port);
    c.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    const dribble = setInterval(() => c.write('X-A: b\r\n'), 200);
    try {
      const r = await c.response(6_000);
      expect(r.status).toBe(408);
      expectShape(r.body, 'REQUEST_TIMEOUT');
      const closedAt = await c.waitClosed(3_000);
      // Deadline 1 s, checked every 250 ms; then the 500 ms linger.
      expect(closedAt - c.openedAt).toBeLessThan(4_000);
    } finally {
      clearInterval(dribble);
    }
  });

  it("a key holder's body dribbled past the request deadline: 408, and the upload budget is given back", async () => {
    const c = await RawConn.open(t.port, { localAddress: '127.0.0.3' });
    c.write(head('POST', `${API}/session/start`, { 'X-API-Key': t.keys.bob, 'Content-Type': 'application/json', 'Content-Length': 10_000 }));
    const dribble = setInterval(() => c.write('x'), 100);
    try {
      const r = await c.response(8_000);
      expect(r.status).toBe(408);
      await c.waitClosed(3_000);
    } finally {
      clearInterval(dribble);
    }
    // Nothing of bob's is held any more: a 7 MB upload reservation (under the 8 MB per-user budget) is admitted.
    const probe = await RawConn.open(t.port, { localAddress: '127.0.0.3' });
    probe.write(head('POST', `${API}/transcribe`, { 'X-API-Key': t.keys.bob, 'Content-Type': 'application/json', 'Content-Length': 7_000_000, Expect: '100-continue' }));
    await probe.until(() => probe.text.startsWith('HTTP/1.1 100 Continue'), 3000, '100 Continue');
    probe.destroy();
  });

  it('parallel uploads of one key holder beyond its in-flight budget: 429 UPLOADS_IN_FLIGHT_LIMITED with Retry-After', async () => {
    const first = await RawConn.open(t.port, { localAddress: '127.0.0.4' });
    first.write(head('POST', `${API}/transcribe`, { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json', 'Content-Length': 6_000_000 }));
    first.write('{"session_id":"x","audio_data":"');
    await new Promise((r) => setTimeout(r, 200));
    const second = await RawConn.open(t.port, { localAddress: '127.0.0.4' });
    second.write(head('POST', `${API}/transcribe`, { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json', 'Content-Length': 6_000_000 }));
    const r = await second.response();
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('1');
    expectShape(r.body, 'UPLOADS_IN_FLIGHT_LIMITED');
    // Bob is not affected by alice's uploads.
    const bob = await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys.bob).send({ session_id: 'nope' });
    expect(bob.status).toBe(200);
    first.destroy();
    second.destroy();
  });

  it('one address holds at most LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP connections; others are served; a freed slot is reusable', async () => {
    const held: RawConn[] = [];
    for (let i = 0; i < 5; i++) held.push(await RawConn.open(t.port, { localAddress: '127.0.0.2' }));
    const over = await RawConn.open(t.port, { localAddress: '127.0.0.2' });
    const r = await over.response();
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('1');
    expectShape(r.body, 'TOO_MANY_CONNECTIONS');
    await over.waitClosed(3_000);
    // Another address is not affected.
    expect((await request(t.url).get('/health')).status).toBe(200);
    // Held connections still work; closing one frees its slot.
    held[0].write(head('GET', '/health', {}));
    expect((await held[0].response()).status).toBe(200);
    held[1].destroy();
    await new Promise((r2) => setTimeout(r2, 100));
    const again = await RawConn.open(t.port, { localAddress: '127.0.0.2' });
    again.write(head('GET', '/ready', {}));
    expect((await again.response()).status).toBe(200);
    for (const c of [...held, again]) c.destroy();
  });
});

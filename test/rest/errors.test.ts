import request from 'supertest';
import { loadRecording } from '../helpers/fixtures';
import { startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';

describe('REST error paths', () => {
  let t: TestServer;
  const h = () => ({ 'X-API-Key': t.keys.alice });
  const rec = loadRecording('chromium-hello-1000ms');

  beforeAll(async () => {
    t = await startTestServer({ env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '300', LIVE_AUDIO_MAX_CHUNK_BYTES: '100000', LIVE_AUDIO_JSON_LIMIT: '1mb' } });
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'err' });
  });
  afterAll(async () => {
    await t.close();
  });

  const transcribe = (body: unknown) => request(t.url).post(`${API}/transcribe`).set(h()).send(body as object);

  it.each([
    [{}, 400, 'MISSING_FIELD', 'Missing required field: audio_data'],
    [{ audio_data: 'AAAA' }, 400, 'MISSING_FIELD', 'Missing required field: session_id'],
    [{ session_id: 'err', audio_data: 'AAAA', format: 'mp3' }, 415, 'AUDIO_UNSUPPORTED_FORMAT', undefined],
    [{ session_id: 'err', audio_data: '!!!not base64!!!' }, 400, 'INVALID_BASE64', undefined],
    [{ session_id: 'err', audio_data: 12345 }, 400, 'INVALID_FIELD', undefined],
    [{ session_id: 'bad id!', audio_data: 'AAAA' }, 400, 'INVALID_SESSION_ID', undefined],
    [{ session_id: 'err', audio_data: 'AAAA', format: 'pcm', sample_rate: 3 }, 400, 'INVALID_FIELD', undefined],
    [{ session_id: 'err', audio_data: 'AAAA', format: 'pcm', channels: 99 }, 400, 'INVALID_FIELD', undefined],
  ])('%j → %i %s', async (body, status, code, error) => {
    const r = await transcribe(body);
    expect(r.status).toBe(status);
    expect(r.body.success).toBe(false);
    expect(r.body.code).toBe(code);
    expect(typeof r.body.error).toBe('string');
    if (error) expect(r.body.error).toBe(error);
  });

  it('refuses a chunk over the decoded-size cap with 413', async () => {
    const r = await transcribe({ session_id: 'err', audio_data: Buffer.alloc(150_000).toString('base64'), format: 'pcm' });
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({ success: false, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('refuses a body over the JSON limit with 413 in the common shape', async () => {
    const r = await transcribe({ session_id: 'err', audio_data: 'A'.repeat(1_200_000) });
    expect(r.status).toBe(413);
    expect(r.body).toEqual({ success: false, error: 'Request body too large', code: 'PAYLOAD_TOO_LARGE' });
  });

  it('answers malformed JSON with 400, not an HTML page', async () => {
    const r = await request(t.url).post(`${API}/transcribe`).set(h()).set('Content-Type', 'application/json').send('{"session_id": "err",');
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toMatch(/json/);
    expect(r.body).toEqual({ success: false, error: 'Malformed JSON in request body', code: 'INVALID_JSON' });
  });

  it('refuses a WebM continuation chunk before any header with 422 AUDIO_STREAM_NO_HEADER', async () => {
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'nohdr' });
    const r = await transcribe({ session_id: 'nohdr', audio_data: rec.chunks[2].toString('base64'), format: 'webm' });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('AUDIO_STREAM_NO_HEADER');
    expect(r.body.error).toMatch(/header/i);
  });

  it('refuses garbage with 422 and a clear message; the session keeps working afterwards', async () => {
    await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'garbage' });
    const junk = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919 + 13) % 256));
    const r = await transcribe({ session_id: 'garbage', audio_data: junk.toString('base64'), format: 'webm' });
    expect(r.status).toBe(422);
    expect(r.body.code).toMatch(/^AUDIO_/);
    // Header followed by garbage: ffmpeg fails, reported as 422 on this or the next request.
    const bad = Buffer.concat([rec.chunks[0].subarray(0, 200), junk]);
    const r2 = await transcribe({ session_id: 'garbage', audio_data: bad.toString('base64'), format: 'webm' });
    const r3 = r2.status === 422 ? r2 : await transcribe({ session_id: 'garbage', audio_data: rec.chunks[1].toString('base64'), format: 'webm' });
    expect(r3.status).toBe(422);
    expect(r3.body.code).toMatch(/^AUDIO_/);
    // A fresh recording (new EBML header) decodes again.
    const ok = await transcribe({ session_id: 'garbage', audio_data: rec.chunks[0].toString('base64'), format: 'webm' });
    expect(ok.status).toBe(200);
    const st = await request(t.url).get(`${API}/session/garbage/status`).set(h());
    expect(st.body.data.status).toBe('active');
    expect(st.body.data.audio.decodeErrors).toBeGreaterThanOrEqual(1);
  });

  it('rejects start without session_id and with a bad id', async () => {
    const a = await request(t.url).post(`${API}/session/start`).set(h()).send({});
    expect(a.status).toBe(400);
    expect(a.body).toEqual({ success: false, error: 'Missing required field: session_id', code: 'MISSING_FIELD' });
    const b = await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'x'.repeat(129) });
    expect(b.status).toBe(400);
    expect(b.body.code).toBe('INVALID_SESSION_ID');
    const c = await request(t.url).post(`${API}/session/start`).set(h()).send({ session_id: 'ok', response_modality: 5 });
    expect(c.status).toBe(400);
    const d = await request(t.url).post(`${API}/session/end`).set(h()).send({});
    expect(d.status).toBe(400);
    expect(d.body.code).toBe('MISSING_FIELD');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const r = await request(t.url).get('/api/v1/live-audio/nope').set(h());
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({ success: false, code: 'NOT_FOUND' });
  });
});

/**
 * The FastAPI live handler's clients (issue 17 §3), written from the issue's text only: `/ws/audio-live` streaming
 * MediaRecorder WebM/Opus chunks (binary, or base64) with transcription and text responses pushed back as they
 * arrive; `POST /audio-stream` with one file (multipart field `file`, optional `model`, or a raw `audio/*` body) and
 * its transcription and answer as JSON in one request-response.
 */
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { ffmpegBinary } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import type { TestServer } from '../helpers/test-server';
import { connect, connectRefused, dialectSuiteServer, dialectUrl, disorder, runSeed, sleep, type WsTestClient } from './dialect-helpers';

const SEED = runSeed('fastapi-live');
const API = '/api/v1/live-audio';

describe(`FastAPI live dialect [seed ${SEED}]`, () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];
  const rec = loadRecording('chromium-hello-1000ms');
  const webmFile = Buffer.concat(rec.chunks);

  dialectSuiteServer(SEED % 2 ? 'spaced' : 'eager', clients, (server) => (t = server));

  it.each(['binary', 'base64'] as const)('WebSocket: %s WebM chunks in, transcription and response pieces out as they arrive', async (how) => {
    const reply = 'I hear you loud and clear.';
    t.emu.setFaults(disorder(SEED + (how === 'binary' ? 1 : 2)));
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    const c = await connect(dialectUrl(t.url, '/ws/audio-live', t.keys.alice));
    clients.push(c);
    await c.next('ready', () => true, 8000);
    for (const chunk of rec.chunks) {
      if (how === 'binary') c.ws.send(chunk);
      else c.send(chunk.toString('base64'));
      await sleep(rec.timesliceMs / 4);
    }
    const done = await c.next('turn_complete', () => true, 20000);
    expect(done).toEqual({ type: 'turn_complete', transcription: rec.spokenText, response: reply });
    const transcriptions = c.ofType('transcription');
    expect(transcriptions.at(-1)).toEqual({ type: 'transcription', text: rec.spokenText, is_final: true });
    const pieces = c.ofType('response').map((m) => m.text as string);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('').trim()).toBe(reply);
    // Pushed as they arrive: the first piece before the turn's end.
    expect(c.messages.findIndex((m) => m.type === 'response')).toBeLessThan(c.messages.indexOf(done));
  }, 40000);

  it('POST /audio-stream: multipart file (WebM, with model), raw audio/webm body, WAV file', async () => {
    const reply = 'That was a greeting.';
    t.emu.setFaults(disorder(SEED + 3));
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    const multipart = await request(t.url)
      .post('/audio-stream')
      .set('X-API-Key', t.keys.alice)
      .field('model', 'gemini-2.5-flash')
      .attach('file', webmFile, { filename: 'speech.webm', contentType: 'audio/webm' });
    expect(multipart.status).toBe(200);
    expect(multipart.body).toMatchObject({ success: true, transcription: rec.spokenText, response: reply, sessionId: expect.stringMatching(/^batch_/) });

    const raw = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).set('Content-Type', 'audio/webm').send(webmFile);
    expect(raw.status).toBe(200);
    expect(raw.body).toMatchObject({ success: true, transcription: rec.spokenText, response: reply });

    const wav = spawnSync(ffmpegBinary(), ['-hide_banner', '-loglevel', 'error', '-f', 'webm', '-i', 'pipe:0', '-ar', '22050', '-ac', '2', '-f', 'wav', 'pipe:1'], {
      input: webmFile,
    }).stdout;
    const wavRes = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).attach('file', wav, { filename: 'speech.wav', contentType: 'audio/wav' });
    expect(wavRes.status).toBe(200);
    expect(wavRes.body).toMatchObject({ transcription: rec.spokenText, response: reply });

    // The short-lived sessions ended with their answers; their transcripts are the caller's.
    expect(t.server.registry.size).toBe(0);
    const kept = await request(t.url).get(`${API}/session/${multipart.body.sessionId}/transcript`).set('X-API-Key', t.keys.alice);
    expect(JSON.stringify(kept.body)).toContain(rec.spokenText);
    const foreign = await request(t.url).get(`${API}/session/${multipart.body.sessionId}/transcript`).set('X-API-Key', t.keys.bob);
    expect(foreign.status).toBe(404);
  }, 60000);

  it('POST /audio-stream as scripts and browsers send it: the model field is honoured; a file of no declared type; raw WAV bodies', async () => {
    const reply = 'Heard you.';
    t.emu.setFaults(disorder(SEED + 5));
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    const wav = spawnSync(ffmpegBinary(), ['-hide_banner', '-loglevel', 'error', '-f', 'webm', '-i', 'pipe:0', '-ar', '16000', '-ac', '1', '-f', 'wav', 'pipe:1'], {
      input: webmFile,
    }).stdout;

    // The optional `model` field picks the session's Live model: the upstream was set up with it, and the answer names it.
    const connsBefore = t.emu.connections.length;
    const live = 'gemini-3.1-flash-live-preview';
    const withModel = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).field('model', live).attach('file', wav, 'a.wav');
    expect({ status: withModel.status, body: withModel.body }).toMatchObject({ status: 200, body: { success: true, model: live, response: reply } });
    const modelConns = t.emu.connections.slice(connsBefore);
    expect(modelConns.map((c) => c.model)).toEqual([live]);
    // A chat model id (what the FastAPI handler's clients may name) runs on the default Live model; the answer says which.
    const chat = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).field('model', 'gemini-2.5-flash').attach('file', wav, 'b.wav');
    expect(chat.status).toBe(200);
    expect(chat.body.model).toBe(t.emu.connections.at(-1)!.model);
    expect(chat.body.model).not.toBe(live);

    // A Blob appended without a type arrives as application/octet-stream; the bytes say what it is.
    for (const [name, bytes] of [
      ['speech.wav', wav],
      ['speech.webm', webmFile],
    ] as const) {
      const r = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).attach('file', bytes, { filename: name, contentType: 'application/octet-stream' });
      expect({ name, status: r.status, body: r.body }).toMatchObject({ name, status: 200, body: { success: true, transcription: rec.spokenText, response: reply } });
    }
    // Raw bodies with the WAV types clients use.
    for (const type of ['audio/wav', 'audio/x-wav', 'audio/wave']) {
      const r = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).set('Content-Type', type).send(wav);
      expect({ type, status: r.status, body: r.body }).toMatchObject({ type, status: 200, body: { success: true, transcription: rec.spokenText, response: reply } });
    }
  }, 90000);

  it('POST /audio-stream: the session ends when the client goes away', async () => {
    t.emu.setFaults({ replyDelayMs: 5000 });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Slow.' } }));
    const u = new URL(t.url);
    const req = http.request({ host: u.hostname, port: u.port, path: '/audio-stream', method: 'POST', headers: { 'X-API-Key': t.keys.alice, 'Content-Type': 'audio/webm' } });
    req.on('error', () => undefined);
    req.end(webmFile);
    await t.emu.waitFor(() => t.server.registry.size === 1, 8000);
    req.destroy();
    await t.emu.waitFor(() => t.server.registry.size === 0, 5000);
  }, 30000);

  it('errors: 401 without a key, 415 for other bodies, 400 without the file field, 413 over the cap', async () => {
    expect((await request(t.url).post('/audio-stream').set('Content-Type', 'audio/webm').send(webmFile)).status).toBe(401);
    expect((await connectRefused(dialectUrl(t.url, '/ws/audio-live'))).status).toBe(401);
    const json = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).send({ file: 'x' });
    expect(json.status).toBe(415);
    expect(json.body).toMatchObject({ success: false, code: 'UNSUPPORTED_MEDIA_TYPE' });
    const noFile = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).field('model', 'x');
    expect(noFile.status).toBe(400);
    expect(noFile.body).toMatchObject({ success: false, code: 'MISSING_FIELD' });
    const garbage = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).attach('file', Buffer.from('not audio at all'), 'x.webm');
    expect(garbage.status).toBeGreaterThanOrEqual(400);
    expect(garbage.status).toBeLessThan(500);
    expect(garbage.body.success).toBe(false);
    const cap = t.server.config.audio.maxChunkBytes;
    const big = await request(t.url).post('/audio-stream').set('X-API-Key', t.keys.alice).attach('file', Buffer.alloc(cap + 1024), 'big.webm');
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ success: false, code: 'PAYLOAD_TOO_LARGE' });
    expect(t.server.registry.size).toBe(0);
  }, 30000);
});

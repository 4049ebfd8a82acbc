/**
 * Elk realtime's clients (issue 17 §1), written from the text only: WebSocket `/api/ai/gemini/realtime?token=`
 * with `initialize_session`, `send_audio` (base64 PCM, `audio/pcm;rate=24000`, stereo mixed to mono), `send_text`,
 * `send_image`, `close_session`; `session_initialized`, `transcription`, `response` (new pieces), `complete`,
 * `error`. HTTP: `initialize`, `send-audio` (results on the session's socket), `conversation` (the turn's reply).
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { connect, connectRefused, dialectUrl, disorder, pcmChunks, recordingAsPcm, runSeed, sleep, type WsTestClient } from './dialect-helpers';

const SEED = runSeed('elk-realtime');
const API = '/api/v1/live-audio';
const PATH = '/api/ai/gemini/realtime';
/** 1x1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082',
  'hex',
);

describe(`Elk realtime dialect [seed ${SEED}]`, () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];
  const rec = loadRecording('chromium-hello-1000ms');

  beforeAll(async () => {
    t = await startTestServer({ emulator: { timing: SEED % 2 ? 'eager' : 'spaced' } });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const id of ['alice', 'bob'] as const) {
      const list = await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys[id]);
      for (const s of list.body.data?.sessions ?? []) {
        await request(t.url).post(`${API}/session/end`).set('X-API-Key', t.keys[id]).send({ session_id: s.sessionId });
      }
    }
    await t.emu.waitFor(() => t.server.registry.size === 0, 5000);
  });
  afterAll(async () => {
    await t.close();
  });

  async function open(token = t.keys.alice): Promise<WsTestClient> {
    const c = await connect(dialectUrl(t.url, PATH, token));
    clients.push(c);
    return c;
  }

  async function sendPcm(c: WsTestClient, rate: number, channels: number): Promise<void> {
    const pcm = recordingAsPcm('chromium-hello-1000ms', rate, channels);
    for (const chunk of pcmChunks(pcm, rate, channels, 100)) {
      c.send({ type: 'send_audio', audioData: chunk.toString('base64'), mimeType: `audio/pcm;rate=${rate}${channels === 2 ? ';channels=2' : ''}` });
      await sleep(20);
    }
  }

  it.each([
    [24000, 1],
    [48000, 2],
    // "any declared rate": telephone and CD rates too.
    [8000, 1],
    [44100, 2],
  ])('PCM at %i Hz, %i channel(s): transcription, response pieces, complete', async (rate, channels) => {
    const reply = 'Hello Alex, glad you could make it today.';
    t.emu.setFaults(disorder(SEED + rate + channels));
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    const c = await open();
    c.send({ type: 'initialize_session', profile: 'interview', language: 'en-US' });
    const init = await c.next('session_initialized', () => true, 8000);
    expect(init.sessionId).toMatch(/^elk_/);
    // The interview profile's opening question comes first (its own turn).
    const opening = await c.next('complete', () => true, 10000);
    expect(opening.transcription).toBe('');
    const mark = c.messages.length;
    await sendPcm(c, rate, channels);
    const done = await c.next('complete', () => true, 20000);
    expect(done).toEqual({ type: 'complete', transcription: rec.spokenText, response: reply });
    const turn = c.messages.slice(mark);
    const transcriptions = turn.filter((m) => m.type === 'transcription').map((m) => m.data);
    expect(transcriptions.at(-1)).toBe(rec.spokenText);
    const pieces = turn.filter((m) => m.type === 'response').map((m) => m.data as string);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('').trim()).toBe(reply);
    // Never an invented speaker label: the upstream gives none.
    expect(JSON.stringify(turn)).not.toContain('[Interviewer]');
    // Mixed to mono and resampled to 16 kHz by the decoder seam: the emulator heard about the recording's length.
    const heard = t.emu.connections.at(-1)!.audioBytes;
    const recordedMs = (recordingAsPcm('chromium-hello-1000ms', 16000, 1).length / 32000) * 1000;
    expect(heard / 32).toBeGreaterThan(recordedMs * 0.9);
    expect(heard / 32).toBeLessThan(recordedMs * 1.1);
    c.send({ type: 'close_session' });
    await c.next('session_closed');
  }, 40000);

  it('profile maps to our named profiles: an unknown one is an error in its shape and starts nothing; send_audio without a mimeType is 16 kHz PCM', async () => {
    t.emu.setFaults({});
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Got it.' } }));
    const c = await open();
    const conns = t.emu.connections.length;
    c.send({ type: 'initialize_session', profile: 'no-such-profile', language: 'en-US' });
    const err = await c.next('error', () => true, 8000);
    expect(err).toMatchObject({ type: 'error', code: expect.any(String), error: expect.any(String) });
    expect(err.code).not.toBe('INTERNAL_ERROR');
    expect(c.ofType('session_initialized')).toEqual([]);
    expect(t.emu.connections.length).toBe(conns);
    expect(t.server.registry.size).toBe(0);
    // The socket is still usable: a plain session, PCM without a declared type (16 kHz mono).
    c.send({ type: 'initialize_session' });
    await c.next('session_initialized', () => true, 8000);
    for (const chunk of pcmChunks(recordingAsPcm('chromium-hello-1000ms', 16000, 1), 16000, 1, 100)) {
      c.send({ type: 'send_audio', audioData: chunk.toString('base64') });
      await sleep(20);
    }
    expect(await c.next('complete', () => true, 20000)).toEqual({ type: 'complete', transcription: rec.spokenText, response: 'Got it.' });
  }, 40000);

  it('text and image in the session; errors in its shape', async () => {
    t.emu.setFaults(disorder(SEED + 7));
    t.emu.setScenario(scriptedScenario([{ userTranscript: '', reply: 'A tiny image, I see.' }]));
    const c = await open();
    c.send({ type: 'send_text', text: 'before init' });
    expect(await c.next('error')).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    c.send({ type: 'initialize_session' });
    await c.next('session_initialized', () => true, 8000);
    c.send({ type: 'send_image', imageData: PNG.toString('base64'), mimeType: 'image/png' });
    c.send({ type: 'send_text', text: 'What is in this picture?' });
    const done = await c.next('complete', () => true, 10000);
    expect(done.response).toBe('A tiny image, I see.');
    const conn = t.emu.connections.at(-1)!;
    expect(conn.messages.map((m) => m.kind)).toEqual(expect.arrayContaining(['video', 'text']));
    c.send({ type: 'send_image', imageData: Buffer.from('GIF89a....').toString('base64') });
    expect(await c.next('error')).toMatchObject({ code: 'IMAGE_UNSUPPORTED_FORMAT' });
    c.send({ type: 'send_audio', audioData: 'AAAA', mimeType: 'audio/flac' });
    expect(await c.next('error')).toMatchObject({ code: 'AUDIO_UNSUPPORTED_FORMAT' });
    expect((await connectRefused(dialectUrl(t.url, PATH))).status).toBe(401);
  }, 30000);

  it('HTTP conversation: audio or an image with text in one call (no session named: one is started), and many turns in one session are not session starts', async () => {
    t.emu.setFaults(disorder(SEED + 13));
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Hello to you too.' } }));
    const pcm = recordingAsPcm('chromium-hello-1000ms', 24000, 1);
    const spoken = await request(t.url)
      .post('/api/ai/gemini/conversation')
      .set('X-API-Key', t.keys.alice)
      .send({ audioData: pcm.toString('base64'), mimeType: 'audio/pcm;rate=24000' });
    expect({ status: spoken.status, body: spoken.body }).toEqual({
      status: 200,
      body: { success: true, sessionId: expect.stringMatching(/^elk_/), transcription: rec.spokenText, response: 'Hello to you too.' },
    });
    const sessionId = spoken.body.sessionId as string;
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'A small picture.' } }));
    const seen = await request(t.url)
      .post('/api/ai/gemini/conversation')
      .set('X-API-Key', t.keys.alice)
      .send({ sessionId, imageData: PNG.toString('base64'), mimeType: 'image/png', text: 'What do you see?' });
    expect(seen.body).toEqual({ success: true, sessionId, transcription: '', response: 'A small picture.' });
    expect(t.emu.connections.at(-1)!.messages.map((m) => m.kind)).toEqual(expect.arrayContaining(['video', 'text']));
    // A conversation of more turns than the session-start budget (20 a minute): each turn continues the session.
    for (let i = 0; i < 24; i++) {
      const r = await request(t.url).post('/api/ai/gemini/conversation').set('X-API-Key', t.keys.alice).send({ sessionId, text: `Turn ${i}?` });
      expect({ i, status: r.status, code: r.body.code }).toEqual({ i, status: 200, code: undefined });
    }
  }, 60000);

  it('HTTP: initialize, send-audio (results on the socket attached to the session), conversation', async () => {
    const reply = 'Good to hear from you.';
    t.emu.setFaults(disorder(SEED + 11));
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    const init = await request(t.url).post('/api/ai/gemini/initialize').set('X-API-Key', t.keys.alice).send({ language: 'en-US' });
    expect(init.status).toBe(200);
    expect(init.body).toMatchObject({ success: true, sessionId: expect.stringMatching(/^elk_/) });
    const sessionId = init.body.sessionId as string;
    const c = await open();
    c.send({ type: 'initialize_session', sessionId });
    await c.next('session_initialized', (m) => m.sessionId === sessionId);
    const pcm = recordingAsPcm('chromium-hello-1000ms', 24000, 1);
    for (const chunk of pcmChunks(pcm, 24000, 1, 250)) {
      const r = await request(t.url)
        .post('/api/ai/gemini/send-audio')
        .set('X-API-Key', t.keys.alice)
        .send({ sessionId, audioData: chunk.toString('base64'), mimeType: 'audio/pcm;rate=24000' });
      expect(r.body).toMatchObject({ success: true });
    }
    expect(await c.next('complete', () => true, 20000)).toMatchObject({ transcription: rec.spokenText, response: reply });

    // Another key's session id answers like an unknown one.
    const foreign = await request(t.url).post('/api/ai/gemini/send-audio').set('X-API-Key', t.keys.bob).send({ sessionId, audioData: 'AAAA' });
    expect(foreign.status).toBe(404);
    expect(foreign.body).toMatchObject({ success: false, code: 'SESSION_NOT_FOUND' });
    const bobSocket = await open(t.keys.bob);
    bobSocket.send({ type: 'initialize_session', sessionId });
    expect(await bobSocket.next('error')).toMatchObject({ code: 'SESSION_NOT_FOUND' });

    t.emu.setScenario(scriptedScenario([{ userTranscript: '', reply: 'Paris.' }]));
    const conv = await request(t.url).post('/api/ai/gemini/conversation').set('X-API-Key', t.keys.alice).send({ sessionId, text: 'Capital of France?' });
    expect(conv.status).toBe(200);
    expect(conv.body).toMatchObject({ success: true, sessionId, response: 'Paris.' });

    const noAuth = await request(t.url).post('/api/ai/gemini/initialize').send({});
    expect(noAuth.status).toBe(401);
    const bad = await request(t.url).post('/api/ai/gemini/conversation').set('X-API-Key', t.keys.alice).send({ sessionId });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ success: false, code: 'MISSING_FIELD' });
  }, 40000);
});

/**
 * The streaming path end to end: a WebSocket client following the old backend's published docs (with the auth
 * fixed) sends real Chromium MediaRecorder chunks one per timeslice, through real ffmpeg and the real
 * @google/genai SDK to the Gemini Live emulator, and receives the user's words and the reply while still talking.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { referenceDecode } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { frontendSessionId, sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { connect, connectAuthed, wsUrl, type Msg, type WsTestClient } from '../helpers/ws-test-client';

const API = '/api/v1/live-audio';

/** 1x1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082',
  'hex',
);
const JPEG_HEAD = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]);

describe('WebSocket streaming flow', () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0, 3000);
  });
  afterAll(async () => {
    await t.close();
  });

  /** The old docs' client: connect, `auth` message (the documented duplicate-key JSON), start_session. */
  async function docsClient(start: Record<string, unknown>): Promise<{ c: WsTestClient; sessionId: string; started: Msg }> {
    const c = await connect(wsUrl(t.url));
    clients.push(c);
    await c.next('connected');
    c.send(`{"type":"auth","token":"${t.keys.alice}","type":"api_key"}`);
    await c.next('auth_success');
    const sessionId = frontendSessionId();
    const started = await c.request({ type: 'start_session', session_id: sessionId, ...start }, 'session_started', 8000);
    return { c, sessionId, started };
  }

  const audioChunk = (chunk: Buffer) => ({
    type: 'audio_chunk',
    audio_data: chunk.toString('base64'),
    format: 'webm',
    sample_rate: 16000,
    channels: 1,
  });

  it('returns the user words and the reply while the client is still talking', async () => {
    const rec = loadRecording('chromium-short-250ms');
    const reply = 'Yes, I can hear you clearly.';
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    const { c, sessionId, started } = await docsClient({
      model: 'gemini-2.5-pro',
      response_modality: 'text',
      input_transcription: true,
      output_transcription: true,
    });
    expect(started.session_id).toBe(sessionId);
    expect(started.data).toMatchObject({ sessionId, status: 'active', model: 'gemini-3.8-live', responseModality: 'text', resumed: false });

    // The session is the REST path's session: listed and inspectable over REST while the socket streams.
    const list = await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice);
    expect(list.body.data.sessions).toEqual([expect.objectContaining({ sessionId, transport: 'ws', status: 'active' })]);

    // The user keeps talking: the recording twice (a new MediaRecorder = a new WebM header), one chunk per timeslice.
    const chunks = [...rec.chunks, ...rec.chunks];
    let lastSentAt = 0;
    for (const chunk of chunks) {
      c.send(audioChunk(chunk));
      lastSentAt = Date.now();
      if (chunk !== chunks[chunks.length - 1]) await sleep(rec.timesliceMs);
    }
    const heard = c.messages.findIndex((m) => m.type === 'transcription_result' && m.data.transcript === rec.spokenText);
    const answered = c.messages.findIndex((m) => m.type === 'transcription_result' && m.data.response === reply);
    expect(heard).toBeGreaterThanOrEqual(0);
    expect(answered).toBeGreaterThan(heard);
    // Both arrived before the last chunk was even sent.
    expect(c.arrivals[answered]).toBeLessThan(lastSentAt);

    const results = c.ofType('transcription_result');
    for (const r of results) {
      expect(r.session_id).toBe(sessionId);
      expect(r.data).toMatchObject({ success: true, sessionId, audioBuffer: null, confidence: null, responseModality: 'text' });
      expect(r.data.transcript).toBe(r.data.inputTranscription);
      expect(typeof r.data.turnComplete).toBe('boolean');
    }
    // Streamed as the words arrive (several partial results), not once per chunk.
    const firstTurn = results.filter((r) => r.data.turnId === results[0].data.turnId);
    expect(firstTurn.length).toBeGreaterThan(2);
    expect(firstTurn.some((r) => r.data.transcript.length > 0 && r.data.transcript !== rec.spokenText)).toBe(true);
    const done = await c.next('turn_complete');
    expect(done.data).toMatchObject({ transcript: rec.spokenText, response: reply, turnComplete: true });
    // The completed state is sent as a transcription_result right before turn_complete.
    const idx = c.messages.indexOf(done);
    expect(c.messages[idx - 1]).toMatchObject({ type: 'transcription_result', data: { turnComplete: true, response: reply } });

    const status = await request(t.url).get(`${API}/session/${sessionId}/status`).set('X-API-Key', t.keys.alice);
    expect(status.body.data).toMatchObject({ status: 'active', transport: 'ws' });
    expect(status.body.data.audio.chunks).toBe(chunks.length);

    const ended = await c.request({ type: 'end_session' }, 'session_ended');
    expect(ended).toMatchObject({ session_id: sessionId, data: { sessionId, status: 'ended', reason: 'client_end' } });
  }, 20000);

  it('streams reply audio as audio_output while it arrives (1000 ms timeslice recording)', async () => {
    const rec = loadRecording('chromium-hello-1000ms');
    const reply = 'Nice to meet you, Alex.';
    const replyAudioMs = 1500;
    t.emu.setScenario(scriptedScenario([{ userTranscript: rec.spokenText, reply, replyAudioMs }]));
    const before = t.emu.totalAudioBytes();
    const { c, sessionId } = await docsClient({ model: 'gemini-2.5-flash', response_modality: 'audio' });
    for (const [i, chunk] of rec.chunks.entries()) {
      c.send(audioChunk(chunk));
      if (i < rec.chunks.length - 1) await sleep(rec.timesliceMs);
    }
    const done = await c.next('turn_complete', () => true, 8000);
    expect(done.data).toMatchObject({ transcript: rec.spokenText, response: reply, responseModality: 'audio', audioBuffer: null });

    const audio = c.ofType('audio_output');
    expect(audio.length).toBeGreaterThanOrEqual(replyAudioMs / 100);
    let bytes = 0;
    for (const a of audio) {
      expect(Object.keys(a).sort()).toEqual(['data', 'sample_rate', 'session_id', 'type']);
      expect(a.session_id).toBe(sessionId);
      expect(a.sample_rate).toBe(24000);
      const pcm = Buffer.from(a.data, 'base64');
      expect(pcm.length % 2).toBe(0);
      bytes += pcm.length;
    }
    expect(bytes).toBe(replyAudioMs * 48); // 24 kHz s16le: every byte of the reply, nothing dropped
    // Audio came before the turn ended, and the first audio before the last words of the reply.
    const firstAudio = c.messages.findIndex((m) => m.type === 'audio_output');
    const lastAudio = c.messages.map((m) => m.type).lastIndexOf('audio_output');
    const fullReply = c.messages.findIndex((m) => m.type === 'transcription_result' && m.data.response === reply);
    expect(firstAudio).toBeLessThan(fullReply);
    expect(lastAudio).toBeLessThan(c.messages.indexOf(done));

    // Everything the client sent reached the model: within 2 % of a reference decode of the same bytes.
    const reference = referenceDecode(Buffer.concat(rec.chunks));
    await t.emu.waitFor(() => t.emu.totalAudioBytes() - before >= reference.length * 0.98, 5000);
    expect(Math.abs(t.emu.totalAudioBytes() - before - reference.length) / reference.length).toBeLessThan(0.02);
  }, 20000);

  it('interrupt stops relaying the reply at once and tells the client; the next turn plays again', async () => {
    t.emu.setScenario(
      scriptedScenario(
        [
          { userTranscript: '', reply: 'A very long story about many things.', replyAudioMs: 5000 },
          { userTranscript: '', reply: 'Short answer.', replyAudioMs: 400 },
        ],
        { pacing: 'realtime' },
      ),
    );
    const { c, sessionId } = await docsClient({ response_modality: 'audio' });
    c.send({ type: 'text', text: 'Tell me a story' });
    await c.next('audio_output');
    await c.next('audio_output');
    const interrupted = await c.request({ type: 'interrupt' }, 'interrupted');
    expect(interrupted).toEqual({ type: 'interrupted', session_id: sessionId, data: { turnId: expect.any(Number), by: 'client' } });
    const at = c.messages.indexOf(interrupted);
    await sleep(500); // the emulator keeps streaming the first reply (realtime pacing)
    expect(c.messages.slice(at + 1).filter((m) => m.type === 'audio_output')).toHaveLength(0);

    // A new user turn: the model's barge-in handling ends the old reply, and the new reply is relayed.
    c.send({ type: 'text', text: 'Never mind' });
    const upstream = await c.next('interrupted', (m) => m.data.by === 'upstream');
    expect(upstream.session_id).toBe(sessionId);
    await c.next('turn_complete', (m) => m.data.interrupted === true);
    await c.next('audio_output');
    const second = await c.next('turn_complete', (m) => m.data.response === 'Short answer.', 5000);
    expect(second.data.interrupted).toBe(false);
    expect(t.emu.connections.at(-1)!.messages.filter((m) => m.kind === 'text')).toHaveLength(2);
  }, 20000);

  it('relays an upstream barge-in as interrupted, then turn_complete', async () => {
    t.emu.setScenario(scriptedScenario([{ userTranscript: '', reply: 'Let me explain at length.', replyAudioMs: 4000 }], { pacing: 'realtime' }));
    const { c, sessionId } = await docsClient({ response_modality: 'audio' });
    c.send({ type: 'text', text: 'Explain' });
    await c.next('audio_output');
    t.emu.interrupt('all');
    const m = await c.next('interrupted');
    expect(m).toEqual({ type: 'interrupted', session_id: sessionId, data: { turnId: expect.any(Number), by: 'upstream' } });
    const done = await c.next('turn_complete');
    expect(done.data.interrupted).toBe(true);
  });

  it('forwards typed text and image frames to the model', async () => {
    t.emu.setScenario(scriptedScenario([{ userTranscript: '', reply: 'I see a tiny picture.' }]));
    const { c } = await docsClient({ response_modality: 'text' });
    c.send({ type: 'image', image_data: `data:image/png;base64,${PNG.toString('base64')}`, mime_type: 'image/png' });
    c.send({ type: 'text', text: 'What do you see?' });
    const done = await c.next('turn_complete');
    expect(done.data.response).toBe('I see a tiny picture.');
    const conn = t.emu.connections.at(-1)!;
    expect(conn.messages.map((m) => m.kind).filter((k) => k === 'video' || k === 'text')).toEqual(['video', 'text']);

    const wrong = await c.request({ type: 'image', image_data: JPEG_HEAD.toString('base64'), mime_type: 'image/png' }, 'error');
    expect(wrong).toMatchObject({ code: 'INVALID_FIELD', error: 'Invalid field mime_type: the image is image/jpeg' });
    const gif = await c.request({ type: 'image', image_data: Buffer.from('GIF89a....').toString('base64') }, 'error');
    expect(gif).toMatchObject({ code: 'IMAGE_UNSUPPORTED_FORMAT' });
  });

  it('reports audio errors with their codes and the session id, and keeps the session', async () => {
    const rec = loadRecording('chromium-short-250ms');
    const { c, sessionId } = await docsClient({});
    const noHeader = await c.request(audioChunk(rec.chunks[3]), 'error');
    expect(noHeader).toMatchObject({ code: 'AUDIO_STREAM_NO_HEADER', session_id: sessionId });
    expect(noHeader.error).toMatch(/first chunk/);
    const badB64 = await c.request({ type: 'audio_chunk', audio_data: 'not*base64', format: 'webm' }, 'error');
    expect(badB64).toMatchObject({ code: 'INVALID_BASE64', session_id: sessionId });
    const fmt = await c.request({ type: 'audio_chunk', audio_data: 'AAAA', format: 'mp3' }, 'error');
    expect(fmt).toMatchObject({ code: 'AUDIO_UNSUPPORTED_FORMAT', session_id: sessionId });
    const rate = await c.request({ type: 'audio_chunk', audio_data: 'AAAA', format: 'pcm', sample_rate: 5 }, 'error');
    expect(rate).toMatchObject({ code: 'INVALID_FIELD', error: expect.stringContaining('sample_rate') });
    const st = await c.request({ type: 'get_status' }, 'session_status');
    expect(st.data).toMatchObject({ sessionId, status: 'active' });
    expect(st.data.connection.droppedAudioMessages).toBe(0);
  });

  it('sends nothing for a session after its session_ended, even with audio and a reply in flight', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'something', reply: 'A reply that keeps going on.', replyAudioMs: 3000 }, pacing: 'realtime' }));
    const rec = loadRecording('chromium-hello-1000ms');
    const { c, sessionId } = await docsClient({ response_modality: 'audio' });
    c.send({ type: 'text', text: 'Go on' });
    await c.next('audio_output');
    for (const chunk of rec.chunks) c.send(audioChunk(chunk));
    c.send({ type: 'end_session' });
    const ended = await c.next('session_ended');
    expect(ended.data).toMatchObject({ sessionId, status: 'ended', reason: 'client_end' });
    await sleep(600);
    const after = c.messages.slice(c.messages.indexOf(ended) + 1);
    expect(after).toEqual([]);
    // The socket itself carries on.
    await c.request({ type: 'ping' }, 'pong');
  });

  it('serves two sockets of two users independently at the same time', async () => {
    t.emu.setScenario(scriptedScenario([], { fallback: (input) => ({ userTranscript: '', reply: `You said ${input.text}.` }) }));
    const a = await connectAuthed(t.url, t.keys.alice);
    const b = await connectAuthed(t.url, t.keys.bob);
    clients.push(a, b);
    // Same session id for both users: ids are namespaced per user.
    await Promise.all([a.request({ type: 'start_session', session_id: 'shared' }, 'session_started'), b.request({ type: 'start_session', session_id: 'shared' }, 'session_started')]);
    a.send({ type: 'text', text: 'apples' });
    b.send({ type: 'text', text: 'bananas' });
    const [ra, rb] = await Promise.all([a.next('turn_complete'), b.next('turn_complete')]);
    expect(ra.data.response).toBe('You said apples.');
    expect(rb.data.response).toBe('You said bananas.');
  });
});

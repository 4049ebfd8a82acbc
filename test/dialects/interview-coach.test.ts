/**
 * The interview coach's clients (issue 17 §2), written from the text only: `/ws/interview`, `start_interview`,
 * `user_audio {text}` (speech recognised in the browser) and real audio as `audio_chunk`; `gemini_ready`, then
 * `ai_response {text, isFirstQuestion}`, the first being the interviewer's opening question asked unprompted.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import type { TestServer } from '../helpers/test-server';
import { connect, connectRefused, dialectSuiteServer, dialectUrl, disorder, runSeed, sleep, type WsTestClient } from './dialect-helpers';

const SEED = runSeed('interview-coach');
const API = '/api/v1/live-audio';
const OPENING = 'Welcome! Please introduce yourself and the role you are preparing for.';

describe(`interview coach dialect (/ws/interview) [seed ${SEED}]`, () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];

  dialectSuiteServer(SEED % 2 ? 'spaced' : 'eager', clients, (server) => (t = server));

  async function open(): Promise<WsTestClient> {
    const c = await connect(dialectUrl(t.url, '/ws/interview', t.keys.alice));
    clients.push(c);
    return c;
  }

  it('opens with the interviewer question unprompted, then answers the recognised speech', async () => {
    t.emu.setFaults(disorder(SEED));
    t.emu.setScenario(
      scriptedScenario([{ userTranscript: '', reply: 'Thanks. What is your greatest strength?' }], {
        greeting: { userTranscript: '', reply: OPENING },
      }),
    );
    const c = await open();
    c.send({ type: 'start_interview' });
    const ready = await c.next('gemini_ready', () => true, 8000);
    expect(typeof ready.message).toBe('string');
    const first = await c.next('ai_response', () => true, 10000);
    expect(first).toMatchObject({ text: OPENING, isFirstQuestion: true });
    // The opening came without any user input: the model was cued by the interview profile's greeting.
    expect(c.messages.findIndex((m) => m.type === 'gemini_ready')).toBeLessThan(c.messages.indexOf(first));

    c.send({ type: 'user_audio', text: 'I am Alex, preparing for a backend engineer role.' });
    const second = await c.next('ai_response', () => true, 10000);
    expect(second).toEqual({ type: 'ai_response', text: 'Thanks. What is your greatest strength?', isFirstQuestion: false });
    // Reply audio for clients that play Gemini's voice (the interview profile answers in audio).
    expect(c.ofType('ai_audio').length).toBeGreaterThan(0);
    expect(c.ofType('ai_audio')[0].sampleRate).toBe(24000);

    // An ordinary session of the caller's, with the interview profile.
    const sessions = (await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice)).body.data.sessions;
    expect(sessions).toHaveLength(1);
    const tr = await request(t.url).get(`${API}/session/${sessions[0].sessionId}/transcript`).set('X-API-Key', t.keys.alice);
    expect(JSON.stringify(tr.body)).toContain('backend engineer role');
    expect(JSON.stringify(tr.body)).toContain('"profile":"interview"');
  }, 40000);

  it('accepts real audio in our audio_chunk shape on the same socket', async () => {
    const rec = loadRecording('chromium-hello-1000ms');
    t.emu.setFaults(disorder(SEED + 1));
    t.emu.setScenario(
      scriptedScenario([], { greeting: { userTranscript: '', reply: OPENING }, fallback: { userTranscript: rec.spokenText, reply: 'Nice to meet you, Alex.' } }),
    );
    const c = await open();
    c.send({ type: 'start_interview' });
    await c.next('ai_response', (m) => m.isFirstQuestion === true, 10000);
    for (const chunk of rec.chunks) {
      c.send({ type: 'audio_chunk', audio_data: chunk.toString('base64'), format: 'webm' });
      await sleep(rec.timesliceMs / 4);
    }
    const answer = await c.next('ai_response', () => true, 20000);
    expect(answer).toMatchObject({ text: 'Nice to meet you, Alex.', isFirstQuestion: false });
  }, 40000);

  it('a JWT in ?token= opens the door too (the session is the JWT user’s)', async () => {
    t.emu.setFaults({});
    t.emu.setScenario(scriptedScenario([], { greeting: { userTranscript: '', reply: OPENING } }));
    const c = await connect(dialectUrl(t.url, '/ws/interview', t.jwtFor(7, 'carol')));
    clients.push(c);
    c.send({ type: 'start_interview' });
    await c.next('gemini_ready', () => true, 8000);
    expect(await c.next('ai_response', () => true, 10000)).toMatchObject({ text: OPENING, isFirstQuestion: true });
    expect((await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice)).body.data.sessions).toEqual([]);
  }, 20000);

  it('errors in its shape; no door without a token', async () => {
    expect((await connectRefused(dialectUrl(t.url, '/ws/interview'))).status).toBe(401);
    const c = await open();
    c.send({ type: 'user_audio', text: 'hello?' });
    expect(await c.next('error')).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    c.send({ type: 'user_audio' });
    expect(await c.next('error')).toMatchObject({ code: 'INVALID_MESSAGE' });
  }, 20000);
});

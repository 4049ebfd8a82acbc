/**
 * The voice pipeline's clients (issue 17 §4), written from the text only: `/ws`, `{type:'audio', data:<base64
 * 16 kHz PCM Int16>}` and `{type:'interrupt'}` in; `status`, `transcript {text, is_final}`, `text_chunk`, `audio`
 * (24 kHz) and `error` out. End to end through real ffmpeg, the real SDK and the emulator with seeded disorder.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import type { TestServer } from '../helpers/test-server';
import { connect, connectRefused, dialectSuiteServer, dialectUrl, disorder, pcmChunks, recordingAsPcm, runSeed, sleep, type WsTestClient } from './dialect-helpers';

const SEED = runSeed('voice-pipeline');
const API = '/api/v1/live-audio';

describe(`voice pipeline dialect (/ws) [seed ${SEED}]`, () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];
  const rec = loadRecording('chromium-hello-1000ms');
  const pcm16k = recordingAsPcm('chromium-hello-1000ms', 16000, 1);

  dialectSuiteServer(SEED % 2 ? 'eager' : 'spaced', clients, (server) => (t = server));

  async function open(token = t.keys.alice): Promise<WsTestClient> {
    const c = await connect(dialectUrl(t.url, '/ws', token));
    clients.push(c);
    await c.next('status', (m) => m.data === 'connected', 8000);
    return c;
  }

  async function speak(c: WsTestClient, pcm: Buffer): Promise<void> {
    for (const chunk of pcmChunks(pcm, 16000, 1, 100)) {
      c.send({ type: 'audio', data: chunk.toString('base64') });
      await sleep(20);
    }
  }

  /** Scripts a long first reply then `next`, speaks, interrupts once reply audio flows; answers the socket and where `interrupted` is. */
  async function interruptLongReply(seed: number, reply: string, replyAudioMs: number, next: { userTranscript: string; reply: string }): Promise<{ c: WsTestClient; at: number }> {
    t.emu.setFaults({ ...disorder(seed), pacing: 'realtime' });
    t.emu.setScenario(scriptedScenario([{ userTranscript: rec.spokenText, reply, replyAudioMs }, next]));
    const c = await open();
    await speak(c, pcm16k);
    await c.next('audio', () => true, 20000);
    c.send({ type: 'interrupt' });
    const interrupted = await c.next('status', (m) => m.data === 'interrupted');
    return { c, at: c.messages.indexOf(interrupted) };
  }

  it('speaks the dialect: connected, interim and final transcripts, reply pieces, 24 kHz audio, complete', async () => {
    const reply = 'Hello Alex, nice to meet you today.';
    const faults = disorder(SEED);
    t.emu.setFaults(faults);
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply, replyAudioMs: 1200 } }));
    const c = await open();
    await speak(c, pcm16k);
    await c.next('status', (m) => m.data === 'complete', 20000);

    const transcripts = c.ofType('transcript');
    expect(transcripts.length).toBeGreaterThan(0);
    const finals = transcripts.filter((m) => m.data.is_final);
    expect(finals.length).toBeGreaterThan(0);
    expect(finals[finals.length - 1].data.text).toBe(rec.spokenText);
    for (const m of transcripts) expect(typeof m.data.text).toBe('string');
    // Interim transcripts (the user still speaking) come before the final ones, unless the emulator sent the words late.
    const firstFinal = c.messages.indexOf(finals[0]);
    expect(transcripts.filter((m) => !m.data.is_final).every((m) => c.messages.indexOf(m) < firstFinal)).toBe(true);
    if (!faults.lateInputTranscription) expect(transcripts.some((m) => !m.data.is_final)).toBe(true);

    // The reply as new pieces: more than one, together exactly the reply; `generating` before the first.
    const pieces = c.ofType('text_chunk').map((m) => m.data as string);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('').trim()).toBe(reply);
    const generating = c.messages.findIndex((m) => m.type === 'status' && m.data === 'generating');
    expect(generating).toBeGreaterThan(-1);
    expect(generating).toBeLessThan(c.messages.findIndex((m) => m.type === 'text_chunk'));

    // Reply audio: base64 PCM Int16 at 24 kHz, as long as the emulator spoke (1200 ms).
    const audio = Buffer.concat(c.ofType('audio').map((m) => Buffer.from(m.data, 'base64')));
    expect(audio.length).toBe(24000 * 2 * 1.2);
    expect(c.messages[c.messages.length - 1]).toEqual({ type: 'status', data: 'complete' });
  }, 40000);

  it('interrupt stops the reply at once, says interrupted, drops the rest; the next words start a new turn', async () => {
    const reply = 'This is a rather long answer that the user will cut short before it is over, on purpose.';
    const { c, at } = await interruptLongReply(SEED + 1, reply, 6000, { userTranscript: 'Second question.', reply: 'Second answer.' });
    // Nothing of that reply after `interrupted` (audio or text), even though the emulator keeps speaking for seconds.
    await sleep(1500);
    const after = c.messages.slice(at + 1);
    expect(after.filter((m) => m.type === 'audio' || m.type === 'text_chunk')).toEqual([]);
    const gotMs = (Buffer.concat(c.ofType('audio').map((m) => Buffer.from(m.data, 'base64'))).length / 48000) * 1000;
    expect(gotMs).toBeLessThan(6000);

    // Once the upstream has ended that turn (seen in the session's status), the user speaks again: a new turn.
    const sessionId = (await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice)).body.data.sessions[0].sessionId;
    const deadline = Date.now() + 20000;
    for (;;) {
      const st = await request(t.url).get(`${API}/session/${sessionId}/status`).set('X-API-Key', t.keys.alice);
      if (st.body.data.turn.turnComplete) break;
      if (Date.now() > deadline) throw new Error(`[seed ${SEED}] the interrupted turn never completed upstream`);
      await sleep(100);
    }
    await speak(c, pcm16k);
    await c.until(() => c.messages.slice(at + 1).some((m) => m.type === 'text_chunk'), 20000, 'the next reply');
    await c.next('status', (m) => m.data === 'complete', 20000);
    const nextPieces = c.messages.slice(at + 1).filter((m) => m.type === 'text_chunk').map((m) => m.data).join('');
    expect(nextPieces.trim()).toBe('Second answer.');
  }, 60000);

  it('interrupt, then the user speaks again at once (as its client does, knowing nothing of the upstream): a new turn with its own reply', async () => {
    const reply = 'Here is a long story that goes on and on, and the user will not wait for its end.';
    const { c, at } = await interruptLongReply(SEED + 3, reply, 8000, { userTranscript: 'Stop, a different question.', reply: 'Sure, go ahead.' });
    // The user's next words right away, while the upstream may still be producing the interrupted reply.
    await speak(c, pcm16k);
    const complete = await c.next('status', (m) => m.data === 'complete' && c.messages.indexOf(m) > at, 20000);
    const after = c.messages.slice(at + 1, c.messages.indexOf(complete) + 1);
    // The new turn: its words (final), `generating`, exactly its own reply's pieces (nothing of the dropped one).
    const finals = after.filter((m) => m.type === 'transcript' && m.data.is_final);
    expect(finals.at(-1)?.data.text).toBe('Stop, a different question.');
    expect(after.some((m) => m.type === 'status' && m.data === 'generating')).toBe(true);
    expect(
      after
        .filter((m) => m.type === 'text_chunk')
        .map((m) => m.data)
        .join('')
        .trim(),
    ).toBe('Sure, go ahead.');
    // Reply audio came back for the new turn (the drop ended with the interrupted turn).
    expect(after.some((m) => m.type === 'audio')).toBe(true);
    const gotMs = (Buffer.concat(c.messages.slice(0, at).filter((m) => m.type === 'audio').map((m) => Buffer.from(m.data, 'base64'))).length / 48000) * 1000;
    expect(gotMs).toBeLessThan(8000);
  }, 60000);

  it('the model barged in on upstream: status interrupted, then the turn completes', async () => {
    t.emu.setFaults({ ...disorder(SEED + 2), pacing: 'realtime' });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'A long reply the model will not finish.', replyAudioMs: 5000 } }));
    const c = await open();
    await speak(c, pcm16k);
    await c.next('audio', () => true, 20000);
    t.emu.interrupt('all');
    const interrupted = await c.next('status', (m) => m.data === 'interrupted', 5000);
    const complete = await c.next('status', (m) => m.data === 'complete', 5000);
    expect(c.messages.indexOf(complete)).toBeGreaterThan(c.messages.indexOf(interrupted));
  }, 40000);

  it('is an ordinary session: listed, status, transcript, owned by the caller; ends when the socket closes', async () => {
    t.emu.setFaults({});
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Fine.' } }));
    const c = await open();
    await speak(c, pcm16k);
    await c.next('status', (m) => m.data === 'complete', 20000);
    const list = await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.alice);
    expect(list.body.data.sessions).toHaveLength(1);
    const sessionId = list.body.data.sessions[0].sessionId as string;
    expect(sessionId).toMatch(/^voice_/);
    const status = await request(t.url).get(`${API}/session/${sessionId}/status`).set('X-API-Key', t.keys.alice);
    expect(status.body.data).toMatchObject({ status: 'active', transport: 'ws', responseModality: 'audio' });
    expect(status.body.data.audio.chunks).toBeGreaterThan(5);
    const transcript = await request(t.url).get(`${API}/session/${sessionId}/transcript`).set('X-API-Key', t.keys.alice);
    expect(JSON.stringify(transcript.body)).toContain(rec.spokenText);
    // Another key sees nothing of it.
    const bobs = await request(t.url).get(`${API}/session/${sessionId}/status`).set('X-API-Key', t.keys.bob);
    expect(bobs.body.data?.status ?? bobs.body.status).not.toBe('active');
    expect((await request(t.url).get(`${API}/sessions`).set('X-API-Key', t.keys.bob)).body.data.sessions).toEqual([]);
    c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0, 5000);
  }, 40000);

  it('errors in its shape; no door without a token', async () => {
    const refused = await connectRefused(dialectUrl(t.url, '/ws'));
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ success: false, code: 'AUTH_REQUIRED' });
    const bad = await connectRefused(dialectUrl(t.url, '/ws', 'ak_not_a_key'));
    expect(bad.status).toBe(401);
    const c = await open();
    c.send({ type: 'dance' });
    const e1 = await c.next('error');
    expect(typeof e1.data).toBe('string');
    c.send({ type: 'audio', data: '***not base64***' });
    const e2 = await c.next('error');
    expect(e2.data).toMatch(/base64/i);
    c.send('{"type":"audio","data":');
    expect((await c.next('error')).data).toMatch(/JSON/);
  }, 20000);
});

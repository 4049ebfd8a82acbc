/**
 * The Sculptor frontend's exact REST calls (README "REST API") with real Chromium MediaRecorder chunks,
 * through the server's WebM decoder (in-process, the default) and the real @google/genai SDK to the Gemini Live
 * emulator.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { inProcessDecode } from '../helpers/in-process-decode';
import { loadRecording } from '../helpers/fixtures';
import { postChunksLikeTheFrontend } from '../helpers/frontend-client';
import { frontendSessionId, startLikeFrontend, startTestServer, type TestServer } from '../helpers/test-server';

const API = '/api/v1/live-audio';

describe('frontend REST flow', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t.close();
  });

  async function runRecording(name: 'chromium-hello-1000ms' | 'chromium-short-250ms', reply: string) {
    const rec = loadRecording(name);
    t.emu.setScenario(scriptedScenario([{ userTranscript: rec.spokenText, reply }], { fallback: { userTranscript: rec.spokenText, reply } }));
    const headers = { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' };
    const before = t.emu.totalAudioBytes();

    // connect(): the probe
    const probe = await request(t.url).get(`${API}/sessions`).set(headers);
    expect(probe.status).toBe(200);

    // startSession(): the frontend sends chat model ids
    const sessionId = frontendSessionId();
    const start = await startLikeFrontend(t.url, headers, sessionId);
    expect(start.status).toBe(200);
    expect(start.body.success).toBe(true);
    expect(start.body.data.sessionId).toBe(sessionId);
    expect(start.body.data.status).toBe('active');
    expect(start.body.data.model).toBe('gemini-3.8-live');
    expect(start.body.data.responseModality).toBe('text');

    // sendAudioChunk(): one POST per timeslice, not awaited, base64 without the data: prefix
    const responses = await postChunksLikeTheFrontend({ url: t.url, headers, sessionId, chunks: rec.chunks, gapMs: rec.timesliceMs });
    for (const r of responses) {
      expect(r.status).toBe(200);
      expect(r.body.success).toBe(true);
      expect(r.body.data.sessionId).toBe(sessionId);
      expect(r.body.data.confidence).toBeNull();
      expect(r.body.data.audioBuffer).toBeNull();
      expect(r.body.transcript).toBe(r.body.inputTranscription);
      expect(r.body.data.transcript).toBe(r.body.transcript);
      expect(typeof r.body.turnComplete).toBe('boolean');
    }

    // Everything decoded reached the emulator: within 2% of a reference decode of the same bytes.
    const reference = inProcessDecode(Buffer.concat(rec.chunks));
    await t.emu.waitFor(() => t.emu.totalAudioBytes() - before >= reference.length * 0.98, 5000);
    const received = t.emu.totalAudioBytes() - before;
    expect(Math.abs(received - reference.length) / reference.length).toBeLessThan(0.02);

    // The user's words and the reply come back, at top level where the frontend reads them.
    const seen = [...responses];
    for (let i = 0; i < 5 && !seen.some((r) => r.body.response === reply && r.body.turnComplete); i++) {
      // The frontend keeps posting while recording; the final blob brings the completed turn.
      seen.push(
        await request(t.url)
          .post(`${API}/transcribe`)
          .set(headers)
          .send({ session_id: sessionId, audio_data: Buffer.alloc(3200).toString('base64'), format: 'pcm', sample_rate: 16000 }),
      );
    }
    const final = seen.find((r) => r.body.response === reply && r.body.turnComplete);
    expect(final).toBeDefined();
    expect(final!.body.transcript).toBe(rec.spokenText);
    expect(final!.body.inputTranscription).toBe(rec.spokenText);
    expect(final!.body.data.response).toBe(reply);
    expect(final!.body.data.turnComplete).toBe(true);

    const status = await request(t.url).get(`${API}/session/${sessionId}/status`).set(headers);
    expect(status.body.data.status).toBe('active');
    expect(status.body.data.upstream.connected).toBe(true);
    expect(status.body.data.audio.chunks).toBeGreaterThanOrEqual(rec.chunks.length);

    // PCM went upstream in frames of 20 ms .. 1 s (640..32,000 bytes at 16 kHz mono s16le): what is decoded at
    // once leaves as one message up to LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS (test/audio/upstream-coalescing.test.ts).
    const conn = t.emu.connections[t.emu.connections.length - 1];
    expect(conn.audioChunks.length).toBeGreaterThan(0);
    for (const size of conn.audioChunks) {
      expect(size).toBeGreaterThanOrEqual(640);
      expect(size).toBeLessThanOrEqual(32_000);
    }

    const end = await request(t.url).post(`${API}/session/end`).set(headers).send({ session_id: sessionId });
    expect(end.status).toBe(200);
    expect(end.body.data.status).toBe('ended');
    await t.emu.waitFor(() => t.emu.connections.every((c) => c.closed !== undefined), 3000);
    return { received, reference: reference.length };
  }

  it('streams the 1000 ms-timeslice recording and returns the user words and the reply', async () => {
    await runRecording('chromium-hello-1000ms', 'Nice to meet you, Alex. Tell me about yourself.');
  }, 30000);

  it('streams the 250 ms-timeslice recording too', async () => {
    await runRecording('chromium-short-250ms', 'Yes, I can hear you clearly.');
  }, 30000);

  it('keeps arrival order when POSTs overlap heavily (a burst 5 ms apart)', async () => {
    const rec = loadRecording('chromium-short-250ms');
    const headers = { 'X-API-Key': t.keys.bob };
    const sessionId = frontendSessionId();
    expect((await request(t.url).post(`${API}/session/start`).set(headers).send({ session_id: sessionId })).status).toBe(200);
    const before = t.emu.totalAudioBytes();
    const responses = await postChunksLikeTheFrontend({ url: t.url, headers, sessionId, chunks: rec.chunks, gapMs: 5 });
    expect(responses.map((r) => r.status)).toEqual(rec.chunks.map(() => 200));
    const reference = inProcessDecode(Buffer.concat(rec.chunks));
    await t.emu.waitFor(() => t.emu.totalAudioBytes() - before >= reference.length * 0.98, 5000);
    const got = t.emu.receivedPcm().subarray(before);
    expect(Math.abs(got.length - reference.length) / reference.length).toBeLessThan(0.02);
    // Same decoder, same bytes, same order: the PCM matches the one-shot decode sample for sample.
    const n = Math.min(got.length, reference.length);
    expect(got.subarray(0, n).equals(reference.subarray(0, n))).toBe(true);
    await request(t.url).post(`${API}/session/end`).set(headers).send({ session_id: sessionId });
  }, 30000);
});

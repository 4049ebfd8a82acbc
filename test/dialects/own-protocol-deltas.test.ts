/**
 * Issue 17 item 4: our own `/ws/live-audio` protocol gains what the voice pipeline's clients expect: the reply text
 * as `reply_delta` pieces alongside the cumulative `response`, and `is_final` on the user's transcript. Additive: the
 * existing messages keep their fields. Every message still validates against the published schemas.
 */
import { scriptedScenario } from '../../src/emulator';
import { serverMessageSchemas } from '../../src/contracts/ws-server-messages';
import { loadRecording } from '../helpers/fixtures';
import { frontendSessionId, startTestServer, type TestServer } from '../helpers/test-server';
import { connect, disorder, runSeed, sleep, type WsTestClient } from './dialect-helpers';

const SEED = runSeed('own-protocol-deltas');

describe(`our WebSocket protocol: reply_delta and is_final [seed ${SEED}]`, () => {
  let t: TestServer;
  let c: WsTestClient | undefined;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterEach(() => c?.close());
  afterAll(async () => {
    await t.close();
  });

  it.each(['text', 'audio'] as const)('%s replies: pieces add up to the response; is_final turns true once the reply starts', async (modality) => {
    const rec = loadRecording('chromium-hello-1000ms');
    const reply = 'Hello Alex, what brings you here today?';
    const faults = disorder(SEED + (modality === 'text' ? 0 : 1));
    t.emu.setFaults(faults);
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply } }));
    c = await connect(`${t.url.replace('http', 'ws')}/ws/live-audio?token=${t.keys.alice}`);
    await c.next('auth_success');
    await c.request({ type: 'start_session', session_id: frontendSessionId(), response_modality: modality, input_transcription: true, output_transcription: true }, 'session_started', 8000);
    for (const chunk of rec.chunks) {
      c.send({ type: 'audio_chunk', audio_data: chunk.toString('base64'), format: 'webm' });
      await sleep(rec.timesliceMs / 4);
    }
    const done = await c.next('turn_complete', () => true, 20000);
    expect(done.data.response).toBe(reply);
    const pieces = c.ofType('reply_delta');
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.map((m) => m.data.text).join('').trim()).toBe(reply);
    for (const p of pieces) expect(p.data.turnId).toBe(done.data.turnId);
    // Each piece comes before the transcription_result carrying it in the cumulative response.
    const firstPiece = c.messages.indexOf(pieces[0]);
    const firstWithReply = c.messages.findIndex((m) => m.type === 'transcription_result' && m.data.response !== '');
    expect(firstPiece).toBeLessThan(firstWithReply);
    const results = c.ofType('transcription_result');
    // Interim while only the user's words are known; final once the reply started (text, speech or its
    // transcription: reply audio may come first, so a final one may still show no response) and at the end.
    for (const r of results) {
      if (r.data.response !== '' || r.data.turnComplete) expect(r.is_final).toBe(true);
      if (!r.is_final) expect([r.data.response, r.data.turnComplete]).toEqual(['', false]);
    }
    if (!faults.lateInputTranscription) expect(results.some((r) => r.data.transcript !== '' && r.is_final === false)).toBe(true);
    expect(results.at(-1)).toMatchObject({ is_final: true, data: { transcript: rec.spokenText, turnComplete: true } });
    // Still the published contract.
    for (const m of c.messages) {
      const schema = serverMessageSchemas[m.type as keyof typeof serverMessageSchemas];
      expect([m.type, schema?.safeParse(m).success]).toEqual([m.type, true]);
    }
  }, 40000);
});

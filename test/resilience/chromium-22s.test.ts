/**
 * The issue's done-criterion: a 22-second real Chromium MediaRecorder recording (test/fixtures/audio/
 * chromium-long-22s, made by test/fixtures/record-fixture.ts) streamed the way the frontend does it (REST
 * /transcribe, one WebM chunk per POST, not awaited) through a goAway in the middle, and again through an abrupt
 * drop, reaches the emulator complete: sample count within 1% of a reference decode of the same bytes, resumed on
 * a new connection, with the user's words and the reply still coming back.
 *
 * Pacing: chunks are posted every CHUNK_GAP_MS = 250 ms (4x faster than the 1000 ms timeslice) to keep the suite
 * short; turn detection in the emulator runs on audio time, so the turns are the same as at real time.
 * Both emulator timings (`spaced`, and `eager`: a handle in the same read as setupComplete).
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { createFfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { resolveFfmpegPath } from '../../src/services/audio/ffmpeg-path';
import type { TurnSnapshot } from '../../src/services/session/turn-tracker';
import { referenceDecode } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { postChunksLikeTheFrontend } from '../helpers/frontend-client';
import { frontendSessionId, sleep, startLikeFrontend, startTestServer, type TestServer } from '../helpers/test-server';
import { API, NO_RATE_LIMITS, TIMINGS } from './helpers';

const CHUNK_GAP_MS = 250;
const REPLY = 'Nice to meet you, Alex. Let us start the interview.';

const rec = loadRecording('chromium-long-22s');
const reference = referenceDecode(Buffer.concat(rec.chunks));

describe.each(TIMINGS)('done-criterion: 22 s Chromium recording through upstream faults (%s timing)', (timing) => {
  let t: TestServer;
  /** PCM as the session's decoder produced it (what the relay had to deliver). */
  let decoded: Buffer[];

  beforeEach(async () => {
    decoded = [];
    const real = createFfmpegDecoderFactory({ ffmpegPath: resolveFfmpegPath({}).path });
    t = await startTestServer({
      env: NO_RATE_LIMITS,
      emulator: { timing },
      overrides: {
        decoders: {
          create(label: string) {
            const d = real.create(label);
            d.on('pcm', (pcm) => decoded.push(pcm));
            return d;
          },
        },
      },
    });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } }));
  });
  afterEach(async () => t.close());

  it.each([
    ['a goAway', (emu: TestServer['emu']) => emu.goAway('c1', 10_000)],
    ['an abrupt drop', (emu: TestServer['emu']) => emu.terminate('c1')],
  ])('survives %s in the middle with every sample delivered', async (fault, inject) => {
    expect(rec.chunks).toHaveLength(22);
    const headers = { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' };
    const sessionId = frontendSessionId();
    const start = await startLikeFrontend(t.url, headers, sessionId);
    expect(start.status).toBe(200);
    const session = t.server.registry.all().find((s) => s.id === sessionId)!;
    const turns: { snap: TurnSnapshot; connection: number }[] = [];
    session.on('turnComplete', (snap) => turns.push({ snap, connection: session.upstreamStats().connections }));

    // The frontend: one POST per MediaRecorder timeslice, not awaited.
    const FAULT_AT = 11;
    const responses = await postChunksLikeTheFrontend({
      url: t.url,
      headers,
      sessionId,
      chunks: rec.chunks,
      gapMs: CHUNK_GAP_MS,
      beforeChunk: (i) => {
        if (i === FAULT_AT) inject(t.emu);
      },
    });
    for (const r of responses) expect(r.status).toBe(200);

    // Complete: within 1% of the reference decode of the same bytes.
    await t.emu.waitFor(() => t.emu.receivedPcm().length >= reference.length * 0.99, 10_000);
    await sleep(300);
    const received = t.emu.receivedPcm();
    const deviation = (received.length - reference.length) / reference.length;
    // And exactly what the relay decoded, once and in order (the framer may still hold a tail shorter than 20 ms).
    const relayPcm = Buffer.concat(decoded);
    const heldBack = relayPcm.length - received.length;
    expect(heldBack).toBeGreaterThanOrEqual(0);
    expect(heldBack).toBeLessThan(640);
    expect(received.equals(relayPcm.subarray(0, received.length))).toBe(true);
    if (process.env.RESILIENCE_REPORT) {
      console.log(
        `${fault}: emulator received ${received.length / 2} samples, reference ${reference.length / 2} ` +
          `(${(deviation * 100).toFixed(3)}%), relay decoded ${relayPcm.length / 2}; connections ` +
          t.emu.connections.map((c) => `${c.id}${c.resumedFrom ? `<-${c.resumedFrom}` : ''}:${c.audioBytes / 2}`).join(' '),
      );
    }
    expect(Math.abs(deviation)).toBeLessThan(0.01);

    // Resumed on a new connection.
    expect(t.emu.connections.length).toBeGreaterThan(1);
    expect(t.emu.connections.slice(1).some((c) => c.resumedFrom !== undefined)).toBe(true);
    const st = (await request(t.url).get(`${API}/session/${sessionId}/status`).set(headers)).body.data;
    expect(st.upstream).toMatchObject({ state: 'open', connections: 2, reconnects: 1, resumedReconnects: 1, droppedAudioMs: 0 });
    if (fault === 'an abrupt drop') expect(st.upstream.lastCloseCode).toBe(1006);

    // The user's words and the reply still come back, after the fault too: to the REST client, and per turn.
    await t.emu.waitFor(() => turns.some((x) => x.connection >= 2 && !x.snap.interrupted), 5_000);
    const answered = turns.filter((x) => x.snap.userText === rec.spokenText && x.snap.replyText === REPLY && !x.snap.interrupted);
    expect(answered.some((x) => x.connection === 1)).toBe(true);
    expect(answered.some((x) => x.connection === 2)).toBe(true);
    const afterFault = responses.slice(FAULT_AT + 1);
    expect(afterFault.some((r) => r.body.transcript === rec.spokenText && r.body.response === REPLY && r.body.turnComplete)).toBe(true);
  });
});

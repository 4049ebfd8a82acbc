/**
 * Issue 14 §2, manual activity detection (`vad: {manual: true}`), through the whole server, the real SDK, real
 * ffmpeg and the emulator: the setup disables automatic detection, the client's `activity_start` / `activity_end`
 * (WebSocket messages, REST `/transcribe` fields) reach the model as `activityStart {}` / `activityEnd {}` in order
 * with the audio although the audio is still inside ffmpeg, the reorder buffer or the pacer when the marker comes,
 * no `audioStreamEnd` is ever sent, and markers on a session without manual detection are refused before Gemini
 * could close it with 1007. Chunks are sent with seeded disorder (WebSocket: bunched at random gaps; REST:
 * concurrent, in a seeded order in which the chunk carrying `activity_end` may come before the chunks before it).
 */
import request from 'supertest';
import type { EmulatorConnectionRecord } from '../../src/emulator';
import { scriptedScenario } from '../../src/emulator';
import { referenceDecode } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { API, suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();
const REPLY = 'I heard you.';
/** Ms of audio the emulator received before each activity marker, in order: `[{kind, audioMs}]`. */
function markerPlaces(rec: EmulatorConnectionRecord): Array<{ kind: string; audioMs: number }> {
  const out: Array<{ kind: string; audioMs: number }> = [];
  let audio = 0;
  let bytes = 0;
  for (const m of rec.messages) {
    if (m.kind === 'audio') bytes += rec.audioChunks[audio++]!;
    else if (m.kind === 'activityStart' || m.kind === 'activityEnd') out.push({ kind: m.kind, audioMs: bytes / 32 });
  }
  return out;
}

/** Ms of 16 kHz PCM the reference decoder makes of a recording's first `n` chunks. */
const referenceMs = (chunks: Buffer[], n: number) => referenceDecode(Buffer.concat(chunks.slice(0, n))).length / 32;

describe(`manual activity detection (seed ${SEED})`, () => {
  let t: TestServer;
  const sockets: WsTestClient[] = [];
  const long = loadRecording('chromium-long-22s');
  const SPLIT = 9;
  let ref1 = 0;
  let refAll = 0;

  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '200' } });
    ref1 = referenceMs(long.chunks, SPLIT);
    refAll = referenceMs(long.chunks, long.chunks.length);
  });
  beforeEach(() => t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'hello', reply: REPLY } })));
  afterEach(() => {
    for (const c of sockets.splice(0)) c.close();
    t.server.registry.endAll('client_end', 'test cleanup');
  });
  afterAll(() => t.close());

  const h = () => ({ 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' });
  const startRest = (body: Record<string, unknown>) => request(t.url).post(`${API}/session/start`).set(h()).send(body);
  const transcribe = (body: Record<string, unknown>) => request(t.url).post(`${API}/transcribe`).set(h()).send(body);
  const chunkBody = (id: string, i: number, extra: Record<string, unknown> = {}) => ({
    session_id: id,
    audio_data: long.chunks[i]!.toString('base64'),
    format: 'webm',
    ...extra,
  });

  /** Waits until the emulator connection has `n` activity markers and the audio stopped growing after the last one. */
  async function settledPlaces(rec: () => EmulatorConnectionRecord, n: number) {
    await t.emu.waitFor(() => markerPlaces(rec()).length >= n, 15_000);
    let last = -1;
    for (let i = 0; i < 50 && rec().audioBytes !== last; i++) {
      last = rec().audioBytes;
      await sleep(150);
    }
    return markerPlaces(rec());
  }

  it('the setup disables automatic detection; the echo and the status say manual', async () => {
    const before = t.emu.connections.length;
    const res = await startRest({ session_id: 'mv_setup', vad: { manual: true } });
    expect(res.status).toBe(200);
    expect(res.body.data.setup.vad).toEqual({ manual: true });
    await t.emu.waitFor(() => t.emu.connections[before]?.setup !== undefined);
    expect(t.emu.connections[before]!.setup.realtimeInputConfig).toEqual({ automaticActivityDetection: { disabled: true } });
    const st = await request(t.url).get(`${API}/session/mv_setup/status`).set(h());
    expect(st.body.data.activity).toEqual({ manual: true, open: false, pendingMarkers: 0, starts: 0, ends: 0 });
  });

  it('WebSocket: two turns of real WebM sent in bursts; each marker lands exactly between its audio, the model answers each end, no audioStreamEnd', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED);
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      const first = t.emu.connections.length;
      c.send({ type: 'start_session', session_id: 'mv_ws', vad: { manual: true } });
      await c.next('session_started');
      const rec = () => t.emu.connections[first]!;
      const sendTurn = async (from: number, to: number) => {
        c.send({ type: 'activity_start' });
        for (let i = from; i < to; i++) {
          c.send({ type: 'audio_chunk', audio_data: long.chunks[i]!.toString('base64'), format: 'webm' });
          if (rnd() < 0.3) await sleep(Math.floor(rnd() * 30)); // mostly bunched: the decoder and the pacer lag behind
        }
        c.send({ type: 'activity_end' }); // right behind the last chunk: its audio is still inside ffmpeg
      };
      await sendTurn(0, SPLIT);
      await c.next('turn_complete', () => true, 15_000);
      await sendTurn(SPLIT, long.chunks.length);
      await c.next('turn_complete', () => true, 15_000);

      const places = await settledPlaces(rec, 4);
      expect(places.map((p) => p.kind)).toEqual(['activityStart', 'activityEnd', 'activityStart', 'activityEnd']);
      expect(places[0]!.audioMs).toBe(0);
      // The first end comes after every PCM frame of the first 9 chunks (the reference decode of those bytes), and
      // before any of the tenth: ffmpeg's own output of a cut stream is within one Opus frame of the reference.
      expect(Math.abs(places[1]!.audioMs - ref1)).toBeLessThanOrEqual(20);
      expect(places[2]!.audioMs).toBe(places[1]!.audioMs); // nothing between an end and the next start
      const total = rec().audioBytes / 32;
      expect(places[3]!.audioMs).toBe(total); // the last end after the last frame
      expect(Math.abs(total - refAll)).toBeLessThanOrEqual(40);
      expect(rec().messages.some((m) => m.kind === 'audioStreamEnd')).toBe(false);
      expect(rec().closed).toBeUndefined();
      expect(rec().turns).toBe(2);
      expect(c.ofType('error')).toEqual([]);
      // The audio really was still on its way when the ends came: the pacer held some of it.
      const st = await c.request({ type: 'get_status' }, 'session_status');
      expect(st.data.audio.pacing.maxQueuedMs).toBeGreaterThan(0);
      expect(st.data.activity).toMatchObject({ manual: true, open: false, pendingMarkers: 0, starts: 2, ends: 2 });
    }));

  it('REST: chunks posted concurrently in a seeded order, activity_end riding on the last chunk (which may arrive first): the end follows that chunk\'s last frame', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED + 1);
      const first = t.emu.connections.length;
      expect((await startRest({ session_id: 'mv_rest', vad: { manual: true } })).status).toBe(200);
      const rec = () => t.emu.connections[first]!;
      // The head first (with the start), then chunks 1..SPLIT-1 fired at once in a shuffled order; the last one of
      // the turn carries activity_end and is sent first half of the time.
      const head = await transcribe(chunkBody('mv_rest', 0, { activity_start: true }));
      expect(head.status).toBe(200);
      const rest = Array.from({ length: SPLIT - 1 }, (_, k) => k + 1);
      for (let k = rest.length - 1; k > 0; k--) {
        const j = Math.floor(rnd() * (k + 1));
        [rest[k], rest[j]] = [rest[j]!, rest[k]!];
      }
      if (rnd() < 0.5) rest.unshift(...rest.splice(rest.indexOf(SPLIT - 1), 1));
      const answers = await Promise.all(
        rest.map(async (i, n) => {
          await sleep(n * Math.floor(rnd() * 15));
          return transcribe(chunkBody('mv_rest', i, i === SPLIT - 1 ? { activity_end: true } : {}));
        }),
      );
      for (const a of answers) expect([a.status, a.body.code]).toEqual([200, undefined]);
      const places = await settledPlaces(rec, 2);
      expect(places.map((p) => p.kind)).toEqual(['activityStart', 'activityEnd']);
      expect(places[0]!.audioMs).toBe(0);
      expect(Math.abs(places[1]!.audioMs - ref1)).toBeLessThanOrEqual(20);
      expect(places[1]!.audioMs).toBe(rec().audioBytes / 32);
      // The model answered after the end; a marker-only request (no audio_data) reads it.
      await t.emu.waitFor(() => rec().turns === 1, 10_000);
      const tr = await request(t.url).get(`${API}/session/mv_rest/transcript`).set(h());
      expect(tr.body.data.turns.map((x: { replyText: string }) => x.replyText)).toEqual([REPLY]);
      // A marker-only start and end (no audio): an empty activity, still in order, and the status counts them.
      expect((await transcribe({ session_id: 'mv_rest', activity_start: true })).status).toBe(200);
      expect((await transcribe({ session_id: 'mv_rest', activity_end: true })).status).toBe(200);
      const after = await settledPlaces(rec, 4);
      expect(after.map((p) => p.kind)).toEqual(['activityStart', 'activityEnd', 'activityStart', 'activityEnd']);
      const st = await request(t.url).get(`${API}/session/mv_rest/status`).set(h());
      expect(st.body.data.activity).toMatchObject({ manual: true, open: false, starts: 2, ends: 2 });
      expect(rec().messages.some((m) => m.kind === 'audioStreamEnd')).toBe(false);
      expect(rec().closed).toBeUndefined();
    }));

  it('markers on a session without manual detection, an end without a start, a second start: 409 with a clear code, nothing reaches the model', () =>
    withSeed(SEED, async () => {
      const first = t.emu.connections.length;
      expect((await startRest({ session_id: 'mv_auto' })).status).toBe(200);
      const auto = await transcribe({ session_id: 'mv_auto', activity_start: true });
      expect([auto.status, auto.body.code, auto.body.success]).toEqual([409, 'MANUAL_ACTIVITY_DISABLED', false]);
      const withAudio = await transcribe(chunkBody('mv_auto', 0, { activity_end: true }));
      expect([withAudio.status, withAudio.body.code]).toEqual([409, 'MANUAL_ACTIVITY_DISABLED']);
      const bad = await transcribe({ session_id: 'mv_auto', activity_end: 'yes' });
      expect([bad.status, bad.body.code]).toEqual([400, 'INVALID_FIELD']);

      expect((await startRest({ session_id: 'mv_man', vad: { manual: true } })).status).toBe(200);
      const endFirst = await transcribe({ session_id: 'mv_man', activity_end: true });
      expect([endFirst.status, endFirst.body.code]).toEqual([409, 'ACTIVITY_NOT_STARTED']);
      expect((await transcribe({ session_id: 'mv_man', activity_start: true })).status).toBe(200);
      const twice = await transcribe({ session_id: 'mv_man', activity_start: true });
      expect([twice.status, twice.body.code]).toEqual([409, 'ACTIVITY_ALREADY_STARTED']);

      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      c.send({ type: 'start_session', session_id: 'mv_ws_auto' });
      await c.next('session_started');
      c.send({ type: 'activity_start' });
      const err = await c.next('error');
      expect(err).toMatchObject({ code: 'MANUAL_ACTIVITY_DISABLED' });
      c.send({ type: 'ping' });
      await c.next('pong');

      await sleep(200);
      const recs = t.emu.connections.slice(first);
      expect(recs).toHaveLength(3);
      expect(recs[0]!.messages.filter((m) => m.kind.startsWith('activity'))).toEqual([]);
      expect(recs[1]!.messages.filter((m) => m.kind.startsWith('activity')).map((m) => m.kind)).toEqual(['activityStart']);
      expect(recs[2]!.messages.filter((m) => m.kind.startsWith('activity'))).toEqual([]);
      for (const r of recs) expect(r.closed).toBeUndefined();
    }));

  it('WebSocket barge-in: activity_start while the model is replying interrupts the reply', () =>
    withSeed(SEED, async () => {
      t.emu.setScenario(
        scriptedScenario([], { pacing: 'realtime', fallback: { userTranscript: 'tell me a story', reply: 'Once upon a time.', replyAudioMs: 3000 } }),
      );
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      const first = t.emu.connections.length;
      c.send({ type: 'start_session', session_id: 'mv_barge', vad: { manual: true }, response_modality: 'audio' });
      await c.next('session_started');
      c.send({ type: 'activity_start' });
      for (let i = 0; i < 2; i++) c.send({ type: 'audio_chunk', audio_data: long.chunks[i]!.toString('base64'), format: 'webm' });
      c.send({ type: 'activity_end' });
      await c.next('audio_output', () => true, 10_000);
      c.send({ type: 'activity_start' });
      const cut = await c.next('interrupted', () => true, 10_000);
      expect(cut.data.by).toBe('upstream');
      expect(t.emu.connections[first]!.interruptedTurns).toBe(1);
      expect(t.emu.connections[first]!.closed).toBeUndefined();
    }));
});

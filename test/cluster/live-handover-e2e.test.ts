/**
 * Issue 15, "a client cannot tell how many instances serve it": the owner of a WebSocket session is ALIVE, the
 * client's path to it dies (a proxy in between loses the connection: the client's socket dies, the owner's side
 * stays open and silent), and the client reconnects to another instance and `resume`s there. For real: a real
 * redis-server, two server processes, the Gemini Live emulator, the 22 s Chromium recording as MediaRecorder
 * chunks. The owner hands the session over (its accepted audio flushed upstream, its record written with the
 * latest handle and WebM header, released, its upstream closed), the other instance takes it over at once (no
 * heartbeat timeout), resumed with the stored handle (the emulator sees the resume). The recording reaches the
 * emulator once and in order: all of what the owner accepted on its upstream, the rest on the new one; the
 * transcript holds turns from both sides of the cut. The moment of the cut is drawn from a seeded PRNG
 * (`TEST_SEED` replays one).
 */
import { scriptedScenario } from '../../src/emulator';
import type { RedisConnection, SessionRecordStore } from '../../src/cluster';
import { webmPrimingBytes, WebmResumeTracker } from '../../src/services/audio/webm-resume';
import { referenceDecode } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { openClusterRecords, startCluster, type TestCluster, stopClusterLeavingNone } from '../helpers/cluster';
import { startCuttableProxy, type CuttableProxy } from '../helpers/cuttable-proxy';
import { prng } from '../ops/helpers';
import { connect, type WsTestClient, wsUrl } from '../helpers/ws-test-client';

jest.setTimeout(180_000);

const rec = loadRecording('chromium-long-22s');
const REPLY = 'Still here. Go on.';
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
const BYTES_PER_MS = 32;

let cluster: TestCluster;
let redis: RedisConnection;
let records: SessionRecordStore;
let proxy: CuttableProxy | undefined;

beforeAll(async () => {
  cluster = await startCluster({
    instances: 2,
    nginx: false,
    env: { LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '300', LIVE_AUDIO_MISSED_HEARTBEATS: '3' },
  });
  cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } }));
  ({ redis, records } = await openClusterRecords(cluster));
}, 180_000);

afterAll(async () => {
  await proxy?.close();
  await redis?.close();
  if (!cluster) return;
  expect(await stopClusterLeavingNone(cluster)).toEqual([]);
});

async function authed(url: string): Promise<WsTestClient> {
  const c = await connect(wsUrl(url, { token: cluster.keys.alice }));
  await c.waitFor((m) => m.type === 'auth_success', 10_000);
  return c;
}

const sendChunk = (c: WsTestClient, i: number) => c.sendIfOpen({ type: 'audio_chunk', audio_data: rec.chunks[i].toString('base64'), format: 'webm' });

it(`the client's path to a live owner dies; resume on another instance hands the session over, nothing lost or sent twice (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  const [A, B] = cluster.instances;
  proxy = await startCuttableProxy(A.port);
  const CUT_BEFORE = 6 + Math.floor(rnd() * 10); // the first chunk sent to B
  const settleBeforeCutMs = Math.floor(rnd() * 800); // how much of A's backlog is still unsent at the cut
  const sessionId = `ws_live_handover_${SEED}_${Date.now()}`;
  const connsBefore = cluster.emulator.connections.length;

  const first = await authed(proxy.url);
  expect((await first.ask({ type: 'start_session', session_id: sessionId }, ['session_started', 'error'], 15_000)).type).toBe('session_started');
  expect((await records.get({ principal: 'key:alice', sessionId }))!.owner).toBe(A.id);

  const beforeCut = expectedUpTo(CUT_BEFORE);
  // Like MediaRecorder until the model has answered a turn (a resumption handle is stored) ...
  let sent = 0;
  for (; sent < 5; sent++) {
    sendChunk(first, sent);
    await new Promise((r) => setTimeout(r, 250 + rnd() * 100));
  }
  await cluster.emulator.waitFor(() => (cluster.emulator.connections[connsBefore]?.turns ?? 0) > 0, 30_000);
  const handle = await waitForRecord(sessionId, (r) => r.resumptionHandle !== undefined);
  expect(handle.owner).toBe(A.id);
  // ... then faster than real time, gaps jittered by the seed: the owner builds a paced backlog.
  for (; sent < CUT_BEFORE; sent++) {
    sendChunk(first, sent);
    await new Promise((r) => setTimeout(r, 100 + rnd() * 150));
  }
  // The owner has every chunk sent so far (its answer follows them on the same socket).
  const st = await first.ask({ type: 'get_status' }, ['session_status'], 10_000);
  expect(st.data.audio.chunks).toBe(CUT_BEFORE);
  await new Promise((r) => setTimeout(r, settleBeforeCutMs));
  const unsentAtCut = beforeCut.length - cluster.emulator.connections[connsBefore].audioBytes;
  const cutAt = Date.now();
  proxy.cut();
  await first.waitClose(5000);

  // The client reconnects, to the other instance, and resumes: served at once (A is alive: no heartbeat wait).
  const t0 = performance.now();
  const second = await authed(B.server.url);
  const resumed = await second.ask({ type: 'start_session', session_id: sessionId, resume: true }, ['session_started', 'error'], 20_000);
  const handOverMs = performance.now() - t0;
  expect(resumed).toMatchObject({ type: 'session_started', data: { sessionId, resumed: true } });
  console.log(
    `seed ${SEED}: cut before chunk ${CUT_BEFORE}, ${settleBeforeCutMs} ms after the last ack (${(unsentAtCut / BYTES_PER_MS).toFixed(0)} ms of audio not yet upstream); resume at ${B.id} answered in ${handOverMs.toFixed(0)} ms`,
  );
  const after = await records.get({ principal: 'key:alice', sessionId });
  expect(after).toMatchObject({ status: 'live', owner: B.id });
  // Handed over, not taken over after a death: the owner was alive all along.
  expect(await redis.run((c) => c.exists(redis.key('instance', A.id)))).toBe(1);
  const conns = cluster.emulator.connections.slice(connsBefore);
  expect(conns).toHaveLength(2);
  // Resumed with the latest handle the owner's upstream issued (written with the record at the hand-over).
  expect(conns[1].resumedFrom).toBeDefined();
  if (conns[0].handles.length > 0) expect(conns[1].resumedFrom).toBe(conns[0].handles[conns[0].handles.length - 1]);
  expect(A.server.logLines().some((l) => l.msg === 'session handed over to a client resuming it elsewhere' && l.sessionId === sessionId)).toBe(true);

  for (let i = CUT_BEFORE; i < rec.chunks.length; i++) {
    sendChunk(second, i);
    await new Promise((r) => setTimeout(r, 150 + rnd() * 200));
  }

  // Once and in order: the owner's upstream got all it accepted (flushed before it let go), and closed before the
  // new one received anything; the new upstream got the rest of the recording as a decoder primed at the cut
  // decodes it (within one 20 ms Opus frame and the framer's tail).
  const tracker = new WebmResumeTracker();
  for (const c of rec.chunks.slice(0, CUT_BEFORE)) tracker.push(c);
  const afterCut = referenceDecode(Buffer.concat([webmPrimingBytes(tracker.initSegment!, tracker.resumePoint()), ...rec.chunks.slice(CUT_BEFORE)]));
  await cluster.emulator.waitFor(() => conns[1].audioBytes >= afterCut.length - 1280, 30_000);
  await new Promise((r) => setTimeout(r, 300));
  console.log(
    `owner's upstream: ${conns[0].audioBytes / BYTES_PER_MS} ms of ${beforeCut.length / BYTES_PER_MS} ms accepted; new upstream: ${conns[1].audioBytes / BYTES_PER_MS} ms of ${afterCut.length / BYTES_PER_MS} ms`,
  );
  expect(Math.abs(beforeCut.length - conns[0].audioBytes) / BYTES_PER_MS).toBeLessThanOrEqual(40);
  expect(Math.abs(afterCut.length - conns[1].audioBytes) / BYTES_PER_MS).toBeLessThanOrEqual(40);
  expect(conns[0].closed).toBeDefined();
  const lastOld = Math.max(...conns[0].messages.filter((m) => m.kind === 'audio').map((m) => m.at));
  const firstNew = Math.min(...conns[1].messages.filter((m) => m.kind === 'audio').map((m) => m.at));
  expect(firstNew).toBeGreaterThan(lastOld);
  // The emulator's received PCM, in arrival order, is the old upstream's then the new one's.
  if (conns[0].pcm.length > 0) {
    const all = cluster.emulator.receivedPcm();
    const mine = Buffer.concat([...conns[0].pcm, ...conns[1].pcm]);
    expect(all.subarray(all.length - mine.length).equals(mine)).toBe(true);
  }

  // The conversation goes on: turns answered on both sides of the cut, in one transcript.
  await cluster.emulator.waitFor(() => conns[1].turns > 0, 30_000);
  const tr = await second.ask({ type: 'get_transcript' }, ['transcript', 'error'], 10_000);
  const turns = tr.data.turns as { index: number; replyText: string; startedAt: number }[];
  expect(turns.some((t) => t.startedAt < cutAt && t.replyText.includes(REPLY))).toBe(true);
  expect(turns.some((t) => t.startedAt > cutAt && t.replyText.includes(REPLY))).toBe(true);
  for (let k = 1; k < turns.length; k++) expect(turns[k].index).toBeGreaterThan(turns[k - 1].index);
  expect((await records.get({ principal: 'key:alice', sessionId }))!.turn).toMatchObject({ handovers: 1, takeovers: 0, lostMs: 0 });

  expect((await second.ask({ type: 'end_session' }, ['session_ended'], 10_000)).data).toMatchObject({ reason: 'client_end' });
  await second.close();
});

/** The reference decode of chunks [0, n). */
function expectedUpTo(n: number): Buffer {
  return referenceDecode(Buffer.concat(rec.chunks.slice(0, n)));
}

async function waitForRecord(sessionId: string, pred: (r: NonNullable<Awaited<ReturnType<SessionRecordStore['get']>>>) => boolean) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await records.get({ principal: 'key:alice', sessionId });
    if (r && pred(r)) return r;
    if (Date.now() > deadline) throw new Error(`record of ${sessionId} never matched: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

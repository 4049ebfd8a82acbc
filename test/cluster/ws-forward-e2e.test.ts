/**
 * Issue 15, "a client cannot tell how many instances serve it", for WebSocket calls naming a session another live
 * instance serves. For real: a real redis-server, two server processes (A and B), the Gemini Live emulator; the
 * client talks to each instance directly, so which one serves a call is chosen by the test.
 *
 * - `end_session`, `get_transcript`, `get_status` at B for a session live on A are A's answers (asked fresh: the
 *   transcript is the live one, not the copy stored at the last turn boundary); once ended, the stored copy.
 * - A second socket resuming the session on B wins over the first one on A (`session_detached` there), as on one
 *   instance.
 * Attacks: a stranger naming another key's live session id at B gets exactly the answers of an unknown id, and
 * nothing is asked of A (no owner call in its access log) nor handed over; a key holder ping-ponging `resume`
 * between A and B is held to the session-start rate (each hand-over opens an upstream: at most
 * `LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE` a minute); a resume of an ended session hands nothing over.
 */
import { scriptedScenario } from '../../src/emulator';
import type { RedisConnection, SessionRecordStore } from '../../src/cluster';
import { openClusterRecords, startCluster, type ClusterInstance, type TestCluster, stopClusterLeavingNone } from '../helpers/cluster';
import { connect, type Msg, type WsTestClient, wsUrl } from '../helpers/ws-test-client';

jest.setTimeout(180_000);

const STARTS_PER_MINUTE = 3;
const REPLY = 'Hi there.';

let cluster: TestCluster;
let redis: RedisConnection;
let records: SessionRecordStore;
let A: ClusterInstance;
let B: ClusterInstance;
const sockets: WsTestClient[] = [];

beforeAll(async () => {
  cluster = await startCluster({
    instances: 2,
    nginx: false,
    env: { LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '300', LIVE_AUDIO_MISSED_HEARTBEATS: '3', LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: String(STARTS_PER_MINUTE) },
  });
  [A, B] = cluster.instances;
  cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: 'hello', reply: REPLY } }));
  ({ redis, records } = await openClusterRecords(cluster));
}, 180_000);

afterAll(async () => {
  for (const s of sockets) await s.close();
  await redis?.close();
  if (!cluster) return;
  expect(await stopClusterLeavingNone(cluster)).toEqual([]);
});

async function open(inst: ClusterInstance, who: 'alice' | 'bob'): Promise<WsTestClient> {
  const c = await connect(wsUrl(inst.server.url, { token: cluster.keys[who] }));
  sockets.push(c);
  await c.waitFor((m) => m.type === 'auth_success', 10_000);
  return c;
}

async function start(c: WsTestClient, sessionId: string): Promise<void> {
  const m = await c.ask({ type: 'start_session', session_id: sessionId, response_modality: 'text' }, ['session_started', 'error'], 15_000);
  expect(m).toMatchObject({ type: 'session_started', data: { resumed: false } });
}

async function turn(c: WsTestClient, text: string): Promise<Msg> {
  return c.ask({ type: 'text', text }, ['turn_complete', 'error'], 15_000);
}

/** Owner calls instance `inst` has answered so far (its access log). */
const ownerCalls = (inst: ClusterInstance) =>
  inst.server.logLines().filter((l) => String((l.req as { url?: string } | undefined)?.url ?? '').startsWith('/cluster/v1/owner-calls')).length;

/** Resolves once `pred` holds (polled; fails after 5 s). */
async function until(pred: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('condition never held');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function untilAsync(pred: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error('condition never held');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A message without what differs between two ids or two moments (the id itself, counters of the connection). */
const shape = (m: Msg) => JSON.parse(JSON.stringify(m).replaceAll(/"[A-Za-z0-9_-]*_(?:alice|never)_[A-Za-z0-9_-]*"/g, '"<id>"')) as Msg;

it('end_session, get_transcript and get_status at B for a session live on A are the owner\'s answers; once ended, the stored copy', async () => {
  const sessionId = `ws_fwd_${Date.now()}`;
  const a = await open(A, 'alice');
  await start(a, sessionId);
  expect((await turn(a, 'hello')).type).toBe('turn_complete');
  const owned = await records.get({ principal: 'key:alice', sessionId });
  expect(owned!.owner).toBe(A.id);
  const b = await open(B, 'alice');
  const callsBefore = ownerCalls(A);

  // Status: the owner's own view (upstream open, the audio counters of the live session), not the record's.
  const viaB = await b.ask({ type: 'get_status', session_id: sessionId }, ['session_status', 'error'], 10_000);
  const onA = await a.ask({ type: 'get_status' }, ['session_status'], 10_000);
  expect(viaB.data).toMatchObject({ sessionId, status: 'active', upstream: { state: 'open', connected: true } });
  expect(viaB.data.startTime).toBe(onA.data.startTime);
  expect(viaB.data.ownerAvailable).toBeUndefined();

  // Transcript: the live one from the owner (`live: true`), the same as the owner's socket reads.
  const tB = await b.ask({ type: 'get_transcript', session_id: sessionId }, ['transcript', 'error'], 10_000);
  const tA = await a.ask({ type: 'get_transcript' }, ['transcript'], 10_000);
  expect(tB.data.live).toBe(true);
  expect(tB.data.turns).toEqual(tA.data.turns);
  expect((tB.data.turns as { replyText: string }[]).some((t) => t.replyText.includes(REPLY))).toBe(true);
  // Asked of the owner (its access log, written asynchronously), and nothing moved: same owner, same fence.
  await until(() => ownerCalls(A) >= callsBefore + 2);
  expect(ownerCalls(A)).toBe(callsBefore + 2);
  expect(await records.get({ principal: 'key:alice', sessionId })).toMatchObject({ owner: A.id, epoch: owned!.epoch });

  // End: the owner ends it and its answer is B's; the owner's socket gets session_ended too.
  const conn = cluster.emulator.connections.find((c) => !c.closed && c.turns > 0);
  const ended = await b.ask({ type: 'end_session', session_id: sessionId }, ['session_ended', 'error'], 10_000);
  expect(ended).toMatchObject({ type: 'session_ended', session_id: sessionId, data: { reason: 'client_end' } });
  expect(ended.data.alreadyEnded).toBeUndefined();
  expect((await a.waitFor((m) => m.type === 'session_ended', 10_000)).data).toMatchObject({ reason: 'client_end' });
  await untilAsync(async () => (await records.get({ principal: 'key:alice', sessionId }))?.status === 'ended');
  await cluster.emulator.waitFor(() => conn?.closed !== undefined, 5000);
  const again = await b.ask({ type: 'end_session', session_id: sessionId }, ['session_ended', 'error'], 10_000);
  expect(again).toMatchObject({ type: 'session_ended', data: { alreadyEnded: true } });

  // Ended: the copy stored at its end, from any instance.
  const stored = await b.ask({ type: 'get_transcript', session_id: sessionId }, ['transcript', 'error'], 10_000);
  expect(stored.data.live).toBe(false);
  expect(stored.data.turns.length).toBe(tA.data.turns.length);

  // A resume of the ended session hands nothing over and asks nothing of A: as on one instance, a resume of an id
  // that is not live starts it afresh (`resumed: false`).
  const callsAtEnd = ownerCalls(A);
  const conns = cluster.emulator.connections.length;
  const fresh = await b.ask({ type: 'start_session', session_id: sessionId, resume: true, response_modality: 'text' }, ['session_started', 'error'], 15_000);
  expect(fresh).toMatchObject({ type: 'session_started', data: { sessionId, resumed: false } });
  expect(cluster.emulator.connections.length).toBe(conns + 1);
  expect(cluster.emulator.connections[conns].resumedFrom).toBeUndefined();
  expect(ownerCalls(A)).toBe(callsAtEnd);
  await b.ask({ type: 'end_session' }, ['session_ended'], 10_000);
});

it("a stranger naming another key's live session id at B gets exactly an unknown id's answers; nothing is asked of A", async () => {
  const sessionId = `ws_alice_${Date.now()}`;
  const never = `ws_never_${Date.now()}`;
  const a = await open(A, 'alice');
  await start(a, sessionId);
  const owned = await records.get({ principal: 'key:alice', sessionId });
  const bob = await open(B, 'bob');
  const callsBefore = ownerCalls(A);
  const connsBefore = cluster.emulator.connections.length;

  for (const [type, answers] of [
    ['get_status', ['session_status', 'error']],
    ['get_transcript', ['transcript', 'error']],
    ['end_session', ['session_ended', 'session_not_found', 'error']],
  ] as const) {
    const foreign = await bob.ask({ type, session_id: sessionId }, [...answers], 10_000);
    const unknown = await bob.ask({ type, session_id: never }, [...answers], 10_000);
    const strip = (m: Msg) => {
      const s = shape(m);
      delete (s.data as Record<string, unknown> | undefined)?.connection;
      delete (s.data as Record<string, unknown> | undefined)?.rateLimits;
      return s;
    };
    expect(strip(foreign)).toEqual(strip(unknown));
    // (end_session of an unknown id is a `session_ended` with status not_found: it ended nothing.)
    if (foreign.type === 'session_ended') expect(foreign.data.status).toBe('not_found');
  }
  // resume of her id: a session of his own with that id (as for an id nobody has), hers untouched.
  const resumed = await bob.ask({ type: 'start_session', session_id: sessionId, resume: true, response_modality: 'text' }, ['session_started', 'error'], 15_000);
  expect(resumed).toMatchObject({ type: 'session_started', data: { sessionId, resumed: false } });
  expect(cluster.emulator.connections.length).toBe(connsBefore + 1);
  expect(cluster.emulator.connections[connsBefore].resumedFrom).toBeUndefined();
  expect(ownerCalls(A)).toBe(callsBefore);
  expect(await records.get({ principal: 'key:alice', sessionId })).toMatchObject({ status: 'live', owner: A.id, epoch: owned!.epoch });
  expect(await records.get({ principal: 'key:bob', sessionId })).toMatchObject({ status: 'live', owner: B.id });
  expect((await turn(a, 'still mine?')).type).toBe('turn_complete');
  expect(a.ofType('session_detached')).toHaveLength(0);
  await bob.ask({ type: 'end_session' }, ['session_ended'], 10_000);
  await a.ask({ type: 'end_session' }, ['session_ended'], 10_000);
});

it('a second socket resuming on B wins over the first one on A (session_detached there), as on one instance', async () => {
  const sessionId = `ws_second_${Date.now()}`;
  const a = await open(A, 'alice');
  await start(a, sessionId);
  expect((await turn(a, 'hello')).type).toBe('turn_complete');
  const b = await open(B, 'alice');
  const resumed = await b.ask({ type: 'start_session', session_id: sessionId, resume: true }, ['session_started', 'error'], 20_000);
  expect(resumed).toMatchObject({ type: 'session_started', data: { sessionId, resumed: true } });
  expect(await a.waitFor((m) => m.type === 'session_detached', 10_000)).toEqual({
    type: 'session_detached',
    session_id: sessionId,
    data: { sessionId, reason: 'resumed_by_another_connection' },
  });
  expect(a.ofType('session_ended')).toHaveLength(0);
  expect(a.ofType('reconnect')).toHaveLength(0);
  expect((await records.get({ principal: 'key:alice', sessionId }))!.owner).toBe(B.id);
  const turnsOnA = a.ofType('turn_complete').length;
  expect((await turn(b, 'and now?')).type).toBe('turn_complete');
  await new Promise((r) => setTimeout(r, 200));
  expect(a.ofType('turn_complete')).toHaveLength(turnsOnA);
  // The old socket closing (without keep-alive) no longer touches the session: it lives on B.
  await a.close();
  await new Promise((r) => setTimeout(r, 300));
  expect((await turn(b, 'still there?')).type).toBe('turn_complete');
  const tr = await b.ask({ type: 'get_transcript' }, ['transcript'], 10_000);
  expect((tr.data.turns as unknown[]).length).toBeGreaterThanOrEqual(3);
  // Back on A, which handed it over (its tombstone here says `handed_over`, not how the session ended): reads and
  // the end by id are B's answers, the session is not "already ended".
  const back = await open(A, 'alice');
  const st = await back.ask({ type: 'get_status', session_id: sessionId }, ['session_status', 'error'], 10_000);
  expect(st.data).toMatchObject({ sessionId, status: 'active', upstream: { state: 'open' } });
  const tA = await back.ask({ type: 'get_transcript', session_id: sessionId }, ['transcript', 'error'], 10_000);
  expect(tA.data).toMatchObject({ live: true });
  expect(tA.data.turns).toEqual(tr.data.turns);
  const ended = await back.ask({ type: 'end_session', session_id: sessionId }, ['session_ended', 'error'], 10_000);
  expect(ended).toMatchObject({ type: 'session_ended', data: { status: 'ended', reason: 'client_end' } });
  expect(ended.data.alreadyEnded).toBeUndefined();
  expect((await b.waitFor((m) => m.type === 'session_ended', 10_000)).data).toMatchObject({ reason: 'client_end' });
  // Ended: its status is the record's, on either instance.
  await untilAsync(async () => (await records.get({ principal: 'key:alice', sessionId }))?.status === 'ended');
  const endedA = await back.ask({ type: 'get_status', session_id: sessionId }, ['session_status'], 10_000);
  expect(endedA.data).toMatchObject({ sessionId, status: 'ended', endReason: 'client_end' });
});

it(`one key ping-ponging resume between A and B reopens at most ${STARTS_PER_MINUTE} upstreams a minute (the session-start rate)`, async () => {
  const sessionId = `ws_pingpong_${Date.now()}`;
  const first = await open(A, 'bob');
  await start(first, sessionId);
  // (Each owner's model answers a turn, so that every hand-over has a resumption handle to resume with.)
  expect((await turn(first, 'hello')).type).toBe('turn_complete');
  const connsBefore = cluster.emulator.connections.length;
  const order = [B, A, B, A];
  const answers: Msg[] = [];
  let holder = first;
  for (const inst of order) {
    const c = await open(inst, 'bob');
    const m = await c.ask({ type: 'start_session', session_id: sessionId, resume: true }, ['session_started', 'error'], 20_000);
    answers.push(m);
    if (m.type === 'session_started') {
      holder = c;
      expect((await turn(holder, 'hello')).type).toBe('turn_complete');
    }
    // Let the shared counters settle between tries (reconciled every 200 ms).
    await new Promise((r) => setTimeout(r, 400));
  }
  console.log(`ping-pong answers: ${answers.map((m) => (m.type === 'error' ? `${String(m.code ?? m.data?.code)} (${String(m.error ?? m.data?.error)})` : `${m.type}(resumed=${String(m.data.resumed)})`)).join(', ')}`);
  // What each owner answered to the release calls, and how its hand-overs went (for a failure's diagnosis).
  for (const inst of [A, B]) {
    const lines = inst.server.logLines().filter((l) => l.sessionId === sessionId || String((l.req as { url?: string } | undefined)?.url ?? '').includes('owner-calls/release'));
    console.log(`${inst.id}: ${lines.map((l) => `${String(l.msg)}${l.res ? ` ${String((l.res as { statusCode?: number }).statusCode)}` : ''}${l.released !== undefined ? ` released=${String(l.released)}` : ''}`).join('; ')}`);
  }
  const served = answers.filter((m) => m.type === 'session_started');
  expect(served).toHaveLength(STARTS_PER_MINUTE);
  for (const m of served) expect(m.data.resumed).toBe(true);
  for (const m of answers.slice(STARTS_PER_MINUTE)) {
    expect(m.type).toBe('error');
    expect(m.code ?? m.data?.code).toBe('SESSION_START_RATE_LIMITED');
  }
  // One upstream per hand-over that happened, each resumed; the refused ones opened nothing and moved nothing.
  const conns = cluster.emulator.connections.slice(connsBefore);
  expect(conns).toHaveLength(STARTS_PER_MINUTE);
  for (const c of conns) expect(c.resumedFrom).toBeDefined();
  const servedBy = order[STARTS_PER_MINUTE - 1];
  expect((await records.get({ principal: 'key:bob', sessionId }))!.owner).toBe(servedBy.id);
  // A resume where the session lives moves nothing and costs nothing (the budget is spent, yet it is served).
  const here = await open(servedBy, 'bob');
  const m = await here.ask({ type: 'start_session', session_id: sessionId, resume: true }, ['session_started', 'error'], 20_000);
  expect(m).toMatchObject({ type: 'session_started', data: { resumed: true } });
  // (The old connection is told on its own socket: its message may arrive after the new one's answer.)
  await holder.waitFor((msg) => msg.type === 'session_detached', 5000);
  expect(holder.ofType('session_detached')).toHaveLength(1);
  holder = here;
  expect(cluster.emulator.connections.length).toBe(connsBefore + STARTS_PER_MINUTE);
  expect((await turn(holder, 'still here')).type).toBe('turn_complete');
  await holder.ask({ type: 'end_session' }, ['session_ended'], 10_000);
});

it('the owner-call route answers peers only: without the cluster secret 401, with a wrong one 403, and nothing is handed over', async () => {
  const sessionId = `ws_forged_${Date.now()}`;
  const a = await open(A, 'alice');
  await start(a, sessionId);
  const owned = await records.get({ principal: 'key:alice', sessionId });
  const post = (headers: Record<string, string>) =>
    fetch(`${A.server.url}/cluster/v1/owner-calls/release`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ principal: 'key:alice', sessionId }),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
  expect(await post({})).toEqual({ status: 401, body: { success: false, error: 'Instance credentials required', code: 'CLUSTER_AUTH_REQUIRED' } });
  // Even with a valid API key: a client is never a peer.
  expect((await post({ 'x-api-key': cluster.keys.alice })).status).toBe(401);
  const forged = await post({ 'x-live-audio-cluster-secret': 'x'.repeat(64), 'x-live-audio-forwarded-by': B.id });
  expect(forged).toMatchObject({ status: 403, body: { code: 'CLUSTER_FORBIDDEN' } });
  // A peer's call with a malformed body: 400, nothing done.
  const bad = await fetch(`${A.server.url}/cluster/v1/owner-calls/release`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-live-audio-cluster-secret': cluster.secret, 'x-live-audio-forwarded-by': B.id },
    body: JSON.stringify({ principal: 'nobody', sessionId: '../x' }),
  });
  expect(bad.status).toBe(400);
  await new Promise((r) => setTimeout(r, 300));
  expect(await records.get({ principal: 'key:alice', sessionId })).toMatchObject({ status: 'live', owner: A.id, epoch: owned!.epoch });
  expect(a.ofType('session_detached')).toHaveLength(0);
  expect((await turn(a, 'hello')).type).toBe('turn_complete');
  // The secret is in no log line of either instance.
  for (const inst of [A, B]) expect(JSON.stringify(inst.server.logLines())).not.toContain(cluster.secret);
  await a.ask({ type: 'end_session' }, ['session_ended'], 10_000);
});

/**
 * Elk realtime's HTTP calls in cluster mode (issue 17 item 2 with issue 15), on real processes: a real redis-server,
 * two real server instances (`spawnServer`) and Debian's nginx in front doing plain round-robin. An Elk client,
 * written from the text only, opens its socket (`initialize_session`) on one instance and streams the 22 s
 * Chromium recording as 24 kHz stereo PCM with `POST /api/ai/gemini/send-audio` through nginx: the calls land on
 * both instances, the non-owner forwards its share through the cluster's session door, the audio reaches the
 * emulator whole through the owner's one upstream, and the results arrive on the socket. `POST /conversation`
 * answers the turn's reply through either instance, and after a kill -9 of the owner the survivor takes the
 * session over. Attacker's tests: another key's calls through the non-owner answer exactly like an unknown id and
 * change nothing; forged instance-to-instance headers are refused; the cluster secret is in no log.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { loadRecording } from '../helpers/fixtures';
import { clusterForFile, keyHeaders, upstreamPortOf } from '../helpers/cluster';
import { prng } from '../ops/helpers';
import { connect, dialectUrl, pcmChunks, recordingAsPcm, runSeed, sleep, type WsTestClient } from './dialect-helpers';

jest.setTimeout(240_000);

const SEED = runSeed('elk-http-cluster');
const rec = loadRecording('chromium-long-22s');
const REPLY = 'Thanks, that was a thorough answer. Next question.';
const ELK = '/api/ai/gemini';
const json = { 'Content-Type': 'application/json' };

const file = clusterForFile({
  instances: 2,
  nginx: true,
  env: {
    LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '300',
    LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '2000',
    LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '600',
    // Shorter than a slow reply (below): a forwarded conversation call must still wait for the owner's answer.
    LIVE_AUDIO_FORWARD_TIMEOUT_MS: '4000',
  },
});
const { cluster } = file;
const sockets: WsTestClient[] = [];
const { alice, bob } = keyHeaders(cluster);
const portOf = upstreamPortOf;

afterAll(() => {
  for (const s of sockets.splice(0)) s.close();
});

async function openElk(baseUrl: string, token: string): Promise<WsTestClient> {
  const c = await connect(dialectUrl(baseUrl, `${ELK}/realtime`, token));
  sockets.push(c);
  return c;
}

it(`send-audio through nginx round-robin: the non-owner forwards, the 22 s recording (24 kHz stereo) reaches the owner's upstream whole, results on the socket (seed ${SEED})`, async () => {
  const rnd = prng(SEED);
  cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: REPLY } }));
  const owner = cluster.instances[0];
  const socket = await openElk(owner.server.url, cluster.keys.alice);
  socket.send({ type: 'initialize_session', language: 'en-US' });
  const { sessionId } = await socket.next('session_initialized', () => true, 10_000);
  expect(sessionId).toMatch(/^elk_/);
  const connsBefore = cluster.emulator.connections.length;
  expect(connsBefore).toBeGreaterThan(0);
  const upstream = cluster.emulator.connections.at(-1)!;
  const logBefore = cluster.nginx!.accessLog().length;

  const pcm = recordingAsPcm('chromium-long-22s', 24000, 2);
  const chunks = pcmChunks(pcm, 24000, 2, 250);
  for (const chunk of chunks) {
    const r = await request(cluster.url)
      .post(`${ELK}/send-audio`)
      .set(alice())
      .send({ sessionId, audioData: chunk.toString('base64'), mimeType: 'audio/pcm;rate=24000;channels=2' });
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { success: true, sessionId } });
    await sleep(40 + Math.floor(rnd() * 80));
  }

  // Both instances served send-audio calls (round-robin, no stickiness): the non-owner forwarded its share.
  const deadline = Date.now() + 5000;
  while (cluster.nginx!.accessLog().length < logBefore + chunks.length && Date.now() < deadline) await sleep(20);
  const sends = cluster.nginx!.accessLog().slice(logBefore).filter((e) => e.request.includes('/send-audio'));
  expect(sends).toHaveLength(chunks.length);
  const perPort = new Map<number, number>();
  for (const e of sends) perPort.set(portOf(e.upstream), (perPort.get(portOf(e.upstream)) ?? 0) + 1);
  console.log(`seed ${SEED}: ${chunks.length} send-audio calls through nginx per instance port: ${JSON.stringify(Object.fromEntries(perPort))}`);
  expect(perPort.size).toBe(2);
  for (const n of perPort.values()) expect(n).toBeGreaterThanOrEqual(chunks.length / 4);

  // The results go to the session's socket (on the owner), in Elk's shape.
  const done = await socket.next('complete', (m) => m.transcription === rec.spokenText, 30_000);
  expect(done).toEqual({ type: 'complete', transcription: rec.spokenText, response: REPLY });
  // (The recording's pauses may end earlier turns; each turn's pieces, new text only, add up to its reply.)
  const end = socket.messages.indexOf(done);
  const turnStart = socket.messages.slice(0, end).map((m) => m.type).lastIndexOf('complete') + 1;
  const pieces = socket.messages.slice(turnStart, end).filter((m) => m.type === 'response').map((m) => m.data as string);
  expect(pieces.join('').trim()).toBe(REPLY);

  // Whole, through the owner's one upstream: mixed to mono and resampled to 16 kHz, about the recording's length.
  const recordedBytes = recordingAsPcm('chromium-long-22s', 16000, 1).length;
  await cluster.emulator.waitFor(() => upstream.audioBytes >= recordedBytes * 0.95, 20_000);
  // (Then until nothing more arrives for 500 ms.)
  for (let last = -1; last !== upstream.audioBytes; ) {
    last = upstream.audioBytes;
    await sleep(500);
  }
  console.log(`owner's upstream heard ${(upstream.audioBytes / 32).toFixed(0)} ms of ${(recordedBytes / 32).toFixed(0)} ms recorded`);
  expect(upstream.audioBytes).toBeGreaterThanOrEqual(recordedBytes * 0.98);
  expect(upstream.audioBytes).toBeLessThanOrEqual(recordedBytes * 1.02);
  expect(cluster.emulator.connections.length).toBe(connsBefore);

  // A conversation answers with the next turn that completes: before each, the upstream's turns must have settled
  // (no turn of the recording or of the previous question still on its way; CI once saw one arrive late).
  const turnsSettled = async () => {
    for (let last = -1; last !== upstream.turns; ) {
      last = upstream.turns;
      await sleep(1000);
    }
  };
  // conversation: the turn's reply through either instance (the other one forwards, its bounded wait included).
  for (const [i, inst] of cluster.instances.entries()) {
    await turnsSettled();
    const reply = `Answer number ${i + 1}.`;
    cluster.emulator.setScenario(scriptedScenario([{ userTranscript: '', reply }]));
    const conv = await request(inst.server.url).post(`${ELK}/conversation`).set(alice()).send({ sessionId, text: `Question ${i + 1}?` });
    expect({ status: conv.status, body: conv.body }).toEqual({ status: 200, body: { success: true, sessionId, transcription: '', response: reply } });
  }
  expect(cluster.emulator.connections.length).toBe(connsBefore);
  // A slow reply (longer than the cluster's forward timeout, within the dialect's reply wait) through the non-owner.
  await turnsSettled();
  cluster.emulator.setFaults({ replyDelayMs: 6000 });
  try {
    cluster.emulator.setScenario(scriptedScenario([{ userTranscript: '', reply: 'A considered answer.' }]));
    const t0 = performance.now();
    const slow = await request(cluster.instances[1].server.url).post(`${ELK}/conversation`).set(alice()).send({ sessionId, text: 'Take your time?' });
    console.log(`forwarded conversation with a 6 s reply (forward timeout 4 s) answered in ${(performance.now() - t0).toFixed(0)} ms`);
    expect({ status: slow.status, body: slow.body }).toEqual({ status: 200, body: { success: true, sessionId, transcription: '', response: 'A considered answer.' } });
  } finally {
    cluster.emulator.setFaults({});
  }

  // An ordinary session: any instance lists it.
  for (const inst of cluster.instances) {
    const list = await request(inst.server.url).get('/api/v1/live-audio/sessions').set(alice());
    expect(list.body.data.sessions.map((s: { sessionId: string }) => s.sessionId)).toContain(sessionId);
  }
  socket.send({ type: 'close_session' });
  await socket.next('session_closed');
});

describe('attacker', () => {
  it("another key's send-audio and conversation through the non-owner answer like an unknown id and change nothing; forged peer headers get 403", async () => {
    cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'ok' } }));
    const [owner, other] = cluster.instances;
    const init = await request(owner.server.url).post(`${ELK}/initialize`).set(alice()).send({});
    expect(init.status).toBe(200);
    const sessionId = init.body.sessionId as string;
    const conns = cluster.emulator.connections.length;
    const heard = cluster.emulator.connections.at(-1)!.audioBytes;
    const chunk = Buffer.alloc(4800).toString('base64');
    const unknown = await request(other.server.url).post(`${ELK}/send-audio`).set(bob()).send({ sessionId: `elk_${Date.now()}_000000000000`, audioData: chunk });
    expect({ status: unknown.status, code: unknown.body.code }).toEqual({ status: 404, code: 'SESSION_NOT_FOUND' });
    for (const inst of cluster.instances) {
      const send = await request(inst.server.url).post(`${ELK}/send-audio`).set(bob()).send({ sessionId, audioData: chunk });
      expect({ status: send.status, body: send.body }).toEqual({ status: unknown.status, body: unknown.body });
      const conv = await request(inst.server.url).post(`${ELK}/conversation`).set(bob()).send({ sessionId, text: 'Whose session is this?' });
      expect({ status: conv.status, body: conv.body }).toEqual({ status: 404, body: unknown.body });
      // A stranger without a key.
      const anon = await request(inst.server.url).post(`${ELK}/send-audio`).set(json).send({ sessionId, audioData: chunk });
      expect({ status: anon.status, code: anon.body.code }).toEqual({ status: 401, code: 'AUTH_REQUIRED' });
    }
    // Nothing reached alice's session: no audio, no new upstream.
    await sleep(300);
    expect(cluster.emulator.connections.at(-1)!.audioBytes).toBe(heard);
    expect(cluster.emulator.connections.length).toBe(conns);

    // A key holder (or a stranger) claiming to be a peer, to skip the owner lookup: refused before anything runs.
    for (const who of [json, bob(), alice()]) {
      for (const forged of [{ 'X-Live-Audio-Forwarded-By': owner.id }, { 'X-Live-Audio-Forwarded-By': owner.id, 'X-Live-Audio-Cluster-Secret': 'x'.repeat(64) }]) {
        const r = await request(other.server.url).post(`${ELK}/send-audio`).set({ ...who, ...forged }).send({ sessionId, audioData: chunk });
        expect({ status: r.status, body: r.body }).toEqual({ status: 403, body: { success: false, error: 'Forbidden', code: 'CLUSTER_FORBIDDEN' } });
      }
    }
    // A socket attaching to it on the non-owner: for bob exactly what an unknown id gets (nothing moves); alice's
    // (issue 15: a client cannot tell how many instances serve it) has the live owner hand the session over there.
    const bobWs = await openElk(other.server.url, cluster.keys.bob);
    bobWs.send({ type: 'initialize_session', sessionId });
    expect(await bobWs.next('error', () => true, 10_000)).toMatchObject({ type: 'error', code: 'SESSION_NOT_FOUND' });
    expect(cluster.emulator.connections.length).toBe(conns);
    const aliceWs = await openElk(other.server.url, cluster.keys.alice);
    aliceWs.send({ type: 'initialize_session', sessionId });
    expect(await aliceWs.next('session_initialized', () => true, 15_000)).toEqual({ type: 'session_initialized', sessionId });
    expect(cluster.emulator.connections.length).toBe(conns + 1);
    // Alice's own call (through either instance) goes to the session where it lives now.
    const mine = await request(owner.server.url).post(`${ELK}/send-audio`).set(alice()).send({ sessionId, audioData: chunk });
    expect({ status: mine.status, body: mine.body }).toEqual({ status: 200, body: { success: true, sessionId } });
    await cluster.emulator.waitFor(() => cluster.emulator.connections.at(-1)!.audioBytes > 0, 5000);
    for (const i of cluster.instances) expect(i.server.output()).not.toContain(cluster.secret);
    await request(owner.server.url).post('/api/v1/live-audio/session/end').set(alice()).send({ session_id: sessionId });
  });
});

it('kill -9 of the owner: the next conversation call on the survivor takes the Elk session over and answers', async () => {
  const [owner, survivor] = cluster.instances;
  cluster.emulator.setScenario(scriptedScenario([{ userTranscript: '', reply: 'First answer.' }]));
  const init = await request(owner.server.url).post(`${ELK}/initialize`).set(alice()).send({});
  const sessionId = init.body.sessionId as string;
  // Forwarded to the owner; its reply gives the session a resumption handle.
  const first = await request(survivor.server.url).post(`${ELK}/conversation`).set(alice()).send({ sessionId, text: 'One?' });
  expect(first.body).toMatchObject({ success: true, sessionId, response: 'First answer.' });
  const conns = cluster.emulator.connections.length;
  // Wait until the owner has stored the handle in the session's record (as a takeover needs).
  const deadline = Date.now() + 10_000;
  while (!(await file.records.get({ principal: 'key:alice', sessionId }))?.resumptionHandle && Date.now() < deadline) await sleep(50);
  expect((await file.records.get({ principal: 'key:alice', sessionId }))?.resumptionHandle).toBeDefined();
  owner.server.child.kill('SIGKILL');
  cluster.emulator.setScenario(scriptedScenario([{ userTranscript: '', reply: 'Second answer, after the move.' }]));
  const t0 = performance.now();
  const second = await request(survivor.server.url).post(`${ELK}/conversation`).set(alice()).send({ sessionId, text: 'Two?' });
  console.log(`conversation after kill -9 of the owner answered in ${(performance.now() - t0).toFixed(0)} ms`);
  expect({ status: second.status, body: second.body }).toEqual({
    status: 200,
    body: { success: true, sessionId, transcription: '', response: 'Second answer, after the move.' },
  });
  // Taken over: one new upstream connection, resumed with the stored handle.
  expect(cluster.emulator.connections.length).toBe(conns + 1);
  expect(cluster.emulator.connections.at(-1)!.resumedFrom).toBeDefined();
});

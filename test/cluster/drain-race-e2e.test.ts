/**
 * The REST race of a rolling deploy (issue 15, "SIGTERM of the owner: no client-visible error"), on real processes
 * (a real redis-server, three spawned instances).
 *
 * The window: a draining instance A that released a session forwards a call for it to a live peer (its first one,
 * `peers()[0]`, say B) so that B takes it over; meanwhile another call of the same client, through another
 * instance C, took it over first. B then receives a forwarded call for a session a live third instance (C) owns:
 * it must not forward it again (never twice) and must not answer it from its own registry (it has no such session:
 * 404 SESSION_NOT_FOUND, which the client saw). It answers "moved" (503 + the moved header, consumed by A, which
 * looks the record up again and forwards to C).
 *
 * The window is provoked deterministically: the session lives on C, and the test sends B exactly the call A sends
 * (the same method, path, body and cluster headers, with the cluster's secret). The same call without the secret
 * is refused (403), so only a peer can ask this.
 */
import request from 'supertest';
import { scriptedScenario } from '../../src/emulator';
import { CLUSTER_SECRET_HEADER, FORWARDED_BY_HEADER, FORWARDED_CLIENT_IP_HEADER, SESSION_MOVED_HEADER } from '../../src/cluster/cluster-headers';
import { loadRecording } from '../helpers/fixtures';
import { LIVE_AUDIO_API as API } from '../helpers/frontend-client';
import { clusterForFile, FAST_HEARTBEATS, keyHeaders } from '../helpers/cluster';
import { prng } from '../ops/helpers';

jest.setTimeout(180_000);

const rec = loadRecording('chromium-long-22s');
const SEED = Number(process.env.TEST_SEED ?? Date.now() % 100_000);
const fc = clusterForFile({ instances: 3, nginx: false, env: { ...FAST_HEARTBEATS, LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '1000' } });
const cluster = fc.cluster;

describe('a forwarded call reaching an instance that does not own the session (the drain race)', () => {
  it(`answers "moved" (never 404), the forwarding instance's client gets the owner's 200 (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const [, b, c] = cluster.instances;
    const headers = keyHeaders(cluster).alice();
    const sessionId = `drain_race_${SEED}_${Date.now()}`;
    cluster.emulator.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'OK.' } }));
    expect((await request(c.server.url).post(`${API}/session/start`).set(headers).send({ session_id: sessionId })).status).toBe(200);
    const chunk = (i: number) => ({ session_id: sessionId, audio_data: rec.chunks[i].toString('base64'), format: 'webm' });
    expect((await request(c.server.url).post(`${API}/transcribe`).set(headers).send(chunk(0))).status).toBe(200);
    expect(await fc.records.get({ principal: 'key:alice', sessionId })).toMatchObject({ status: 'live', owner: c.id });

    // What the draining instance sends its first peer (B): the client's call plus the cluster headers.
    const fromDrainingPeer = { ...headers, [CLUSTER_SECRET_HEADER]: cluster.secret, [FORWARDED_BY_HEADER]: cluster.instances[0].id, [FORWARDED_CLIENT_IP_HEADER]: '127.0.0.1' };
    const calls = [
      () => request(b.server.url).post(`${API}/transcribe`).set(fromDrainingPeer).send(chunk(1)),
      () => request(b.server.url).get(`${API}/session/${sessionId}/status`).set(fromDrainingPeer),
      () => request(b.server.url).post(`${API}/session/end`).set(fromDrainingPeer).send({ session_id: sessionId }),
    ];
    // (In a seeded order: none of them may depend on another having come first.)
    const order = [0, 1, 2].sort(() => rnd() - 0.5);
    for (const k of order) {
      const r = await calls[k]();
      const seen = { call: k, status: r.status, code: r.body.code, moved: r.headers[SESSION_MOVED_HEADER] };
      expect(seen).toEqual({ call: k, status: 503, code: 'SESSION_MOVED', moved: '1' });
    }
    // Nothing was taken over, ended or started at B: the session still lives on C, untouched.
    expect(await fc.records.get({ principal: 'key:alice', sessionId })).toMatchObject({ status: 'live', owner: c.id });

    // The same call without the secret: refused, it cannot make B answer anything about the session.
    const stranger = await request(b.server.url).post(`${API}/transcribe`).set({ ...headers, [FORWARDED_BY_HEADER]: cluster.instances[0].id }).send(chunk(1));
    expect(stranger.status).toBe(403);
    expect(JSON.stringify(stranger.body)).not.toContain(cluster.secret);
    for (const inst of cluster.instances) expect(JSON.stringify(inst.server.logLines())).not.toContain(cluster.secret);

    // A client's own call at B is forwarded to C and answered there (the chunk goes on in order).
    const viaB = await request(b.server.url).post(`${API}/transcribe`).set(headers).send(chunk(1));
    expect({ status: viaB.status, code: viaB.body.code }).toEqual({ status: 200, code: undefined });
    expect(await fc.records.get({ principal: 'key:alice', sessionId })).toMatchObject({ status: 'live', owner: c.id });
    expect((await request(b.server.url).post(`${API}/session/end`).set(headers).send({ session_id: sessionId })).body.data.status).toBe('ended');
  });
});

/**
 * Issue 13 (memory across 10,000 sessions), on a real spawned server: what the process keeps of ended sessions
 * (tombstones that answer their status, stored transcripts) is bounded by count, whatever the rate. Key holders
 * open and end 3,000 sessions as fast as the server lets them (their per-minute limits lifted: the strongest form
 * of "one key opens and ends sessions as fast as its limits allow for an hour"); the retained-records gauge of
 * /metrics never passes its caps, reaches them (so the gauge is live), and the oldest sessions are forgotten while
 * the newest still answer.
 *
 * And fairly between keys: one key holder who ends 3,000 sessions against caps of a few hundred pushes out its own
 * records only; another key's sessions, ended before and during the flood, keep their status and transcript
 * readable through the REST endpoints, and every eviction is counted (`live_audio_retained_evictions_total`).
 */
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { suiteSeed, withSeed } from '../helpers/seed';
import { prng } from '../ops/helpers';
import { getMetrics, metricValue } from './attack-helpers';

const SEED = suiteSeed();
const API = '/api/v1/live-audio';
const METRICS_TOKEN = 'metrics-token-for-the-retention-test';
const SESSIONS = 3_000;
const CONCURRENCY = 16;
const TOMBSTONE_MAX = 500;
const TRANSCRIPT_MAX = 400;

async function call(s: SpawnedServer, key: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${s.url}${API}${path}`, {
    method,
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const LIFTED_LIMITS = {
  LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_SESSIONS_PER_USER: String(CONCURRENCY),
};

/** One session of `key`: started, a little PCM transcribed, ended; the three statuses. */
async function shortSession(s: SpawnedServer, key: string, id: string, pcmBytes: number): Promise<string[]> {
  const start = await call(s, key, 'POST', '/session/start', { session_id: id, response_modality: 'text' });
  const pcm = Buffer.alloc(pcmBytes, 1).toString('base64');
  const transcribe = await call(s, key, 'POST', '/transcribe', { session_id: id, format: 'pcm', audio_data: pcm });
  const end = await call(s, key, 'POST', '/session/end', { session_id: id });
  return [`start ${start.status}`, `transcribe ${transcribe.status}`, `end ${end.status}`];
}

async function retained(s: SpawnedServer): Promise<{ tombstones: number; transcripts: number; bytes: number }> {
  const m = await getMetrics(s.url, METRICS_TOKEN);
  return {
    tombstones: metricValue(m, 'live_audio_retained_records{kind="tombstones"}') ?? NaN,
    transcripts: metricValue(m, 'live_audio_retained_records{kind="transcripts"}') ?? NaN,
    bytes: metricValue(m, 'live_audio_retained_transcript_bytes') ?? NaN,
  };
}

/** A spawned server keeping at most `tombstones` ended sessions' status and `transcripts` transcripts, limits lifted. */
function serverWithCaps(tombstones: number, transcripts: number): Promise<SpawnedServer> {
  return spawnServer({
    env: {
      METRICS_TOKEN,
      LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
      LIVE_AUDIO_SESSION_TOMBSTONE_MAX: String(tombstones),
      LIVE_AUDIO_TRANSCRIPT_MAX_RECORDS: String(transcripts),
      ...LIFTED_LIMITS,
    },
  });
}

describe(`what is kept of ended sessions stays bounded (issue 13; seed ${SEED})`, () => {
  let srv: SpawnedServer;
  beforeAll(async () => {
    srv = await serverWithCaps(TOMBSTONE_MAX, TRANSCRIPT_MAX);
  }, 60_000);
  afterAll(async () => srv?.stop());

  it(`${SESSIONS} sessions started and ended back to back: tombstones ≤ ${TOMBSTONE_MAX}, transcripts ≤ ${TRANSCRIPT_MAX}, the oldest forgotten`, () =>
    withSeed(SEED, async () => {
      const rand = prng(SEED);
      const keys = [srv.keys.alice, srv.keys.bob];
      // Which key each session belongs to and how much PCM it sends: seeded.
      const plan = Array.from({ length: SESSIONS }, () => ({ key: keys[Math.floor(rand() * 2)], pcmBytes: 2 * (160 + Math.floor(rand() * 1_440)) }));
      const statuses = new Map<string, number>();
      const count = (k: string) => statuses.set(k, (statuses.get(k) ?? 0) + 1);
      const seen: Array<{ tombstones: number; transcripts: number; bytes: number }> = [];
      let next = 0;
      const worker = async () => {
        while (next < SESSIONS) {
          const i = next++;
          const { key, pcmBytes } = plan[i];
          const id = `kept_${i}`;
          count(`start ${(await call(srv, key, 'POST', '/session/start', { session_id: id, response_modality: 'text' })).status}`);
          const pcm = Buffer.alloc(pcmBytes, 1).toString('base64');
          count(`transcribe ${(await call(srv, key, 'POST', '/transcribe', { session_id: id, format: 'pcm', audio_data: pcm })).status}`);
          count(`end ${(await call(srv, key, 'POST', '/session/end', { session_id: id })).status}`);
          if (i % 500 === 499) seen.push(await retained(srv));
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      seen.push(await retained(srv));

      expect(Object.fromEntries(statuses)).toEqual({ 'start 200': SESSIONS, 'transcribe 200': SESSIONS, 'end 200': SESSIONS });
      // Never above the caps, and at them once more sessions than that have ended.
      for (const r of seen) {
        expect(r.tombstones).toBeLessThanOrEqual(TOMBSTONE_MAX);
        expect(r.transcripts).toBeLessThanOrEqual(TRANSCRIPT_MAX);
        expect(r.bytes).toBeGreaterThan(0);
      }
      expect(seen[seen.length - 1]).toMatchObject({ tombstones: TOMBSTONE_MAX, transcripts: TRANSCRIPT_MAX });

      // The newest session still answers its status (with its setup) and transcript; the oldest is forgotten.
      const last = SESSIONS - 1;
      const status = await call(srv, plan[last].key, 'GET', `/session/kept_${last}/status`);
      expect(status.body.data).toMatchObject({ sessionId: `kept_${last}`, status: 'ended', endReason: 'client_end', setup: { response_modality: 'text' } });
      expect((await call(srv, plan[last].key, 'GET', `/session/kept_${last}/transcript`)).status).toBe(200);
      const first = await call(srv, plan[0].key, 'GET', '/session/kept_0/status');
      expect(first.body.data).toMatchObject({ sessionId: 'kept_0', status: 'not_found' });
      expect((await call(srv, plan[0].key, 'GET', '/session/kept_0/transcript')).status).toBe(404);
      // The server took all of it in its stride.
      expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    }),
  240_000);
});

describe(`one key's flood of ended sessions does not push another key's records out (seed ${SEED})`, () => {
  const TOMBSTONES = 300;
  const TRANSCRIPTS = 200;
  let srv: SpawnedServer;
  beforeAll(async () => {
    srv = await serverWithCaps(TOMBSTONES, TRANSCRIPTS);
  }, 60_000);
  afterAll(async () => srv?.stop());

  it(`key A ends ${SESSIONS} sessions (caps ${TOMBSTONES} / ${TRANSCRIPTS}); key B's sessions ended before and during it stay readable`, () =>
    withSeed(SEED, async () => {
      const rand = prng(SEED ^ 0xfa1);
      const mallory = srv.keys.alice;
      const bob = srv.keys.bob;
      const statuses = new Map<string, number>();
      const count = (list: string[]) => list.forEach((k) => statuses.set(k, (statuses.get(k) ?? 0) + 1));
      const bobIds: string[] = [];
      const bobSession = async (id: string) => {
        count(await shortSession(srv, bob, id, 2 * (160 + Math.floor(rand() * 1_440))));
        bobIds.push(id);
      };
      // Every one of B's ended sessions answers `ended` (with its setup) and its transcript.
      const bobReadable = async () => {
        for (const id of bobIds) {
          const status = await call(srv, bob, 'GET', `/session/${id}/status`);
          expect([id, status.status, status.body.data]).toEqual([id, 200, expect.objectContaining({ sessionId: id, status: 'ended', endReason: 'client_end', setup: expect.objectContaining({ response_modality: 'text' }) })]);
          const transcript = await call(srv, bob, 'GET', `/session/${id}/transcript`);
          expect([id, transcript.status, transcript.body.data]).toEqual([id, 200, expect.objectContaining({ sessionId: id })]);
        }
      };
      for (let i = 0; i < 3; i++) await bobSession(`bob_before_${i}`);

      const seen: Array<{ tombstones: number; transcripts: number; bytes: number }> = [];
      let next = 0;
      const worker = async () => {
        while (next < SESSIONS) {
          const i = next++;
          count(await shortSession(srv, mallory, `flood_${i}`, 2 * (160 + Math.floor(rand() * 1_440))));
          // B ends a session now and then while A floods, and reads all of its records back.
          if (i % 1_000 === 500) {
            await bobSession(`bob_during_${i}`);
            await bobReadable();
          }
          if (i % 500 === 499) seen.push(await retained(srv));
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      seen.push(await retained(srv));

      const ended = SESSIONS + bobIds.length;
      expect(bobIds).toHaveLength(6);
      expect(Object.fromEntries(statuses)).toEqual({ 'start 200': ended, 'transcribe 200': ended, 'end 200': ended });
      await bobReadable();

      // Memory stays bounded: never above the caps, at them at the end; A paid for its flood with its own records.
      for (const r of seen) expect([r.tombstones <= TOMBSTONES, r.transcripts <= TRANSCRIPTS, r.bytes > 0]).toEqual([true, true, true]);
      expect(seen[seen.length - 1]).toMatchObject({ tombstones: TOMBSTONES, transcripts: TRANSCRIPTS });
      const m = await getMetrics(srv.url, METRICS_TOKEN);
      expect({
        tombstones: metricValue(m, 'live_audio_retained_evictions_total{kind="tombstones",reason="records"}'),
        transcripts: metricValue(m, 'live_audio_retained_evictions_total{kind="transcripts",reason="records"}'),
        bytes: metricValue(m, 'live_audio_retained_evictions_total{kind="transcripts",reason="bytes"}'),
      }).toEqual({ tombstones: ended - TOMBSTONES, transcripts: ended - TRANSCRIPTS, bytes: 0 });
      const newest = await call(srv, mallory, 'GET', `/session/flood_${SESSIONS - 1}/status`);
      expect(newest.body.data).toMatchObject({ status: 'ended' });
      const oldest = await call(srv, mallory, 'GET', '/session/flood_0/status');
      expect(oldest.body.data).toMatchObject({ sessionId: 'flood_0', status: 'not_found' });
      expect((await call(srv, mallory, 'GET', '/session/flood_0/transcript')).status).toBe(404);
      expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    }),
  240_000);
});

/**
 * Issue 11 row 6 / item 6, on a real spawned server in its default offline demo setup (no Gemini key: the
 * emulator runs in-process): several WebSocket sessions stream speech-like PCM and reply audio comes back; the
 * sessions end; again and again. The emulator keeps no PCM and no per-message logs, its connection records stay
 * bounded, and the server's memory stays flat across rounds. Figures are printed (`demo-memory:` lines).
 * Only the per-user budgets are raised (this test streams far more than one user would); everything else is
 * `npm start`'s defaults.
 */
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { prng } from '../ops/helpers';
import { patternPcm } from '../resilience/helpers';
import { connect, wsUrl, type WsTestClient } from '../helpers/ws-test-client';
import { GC_NODE_ARGS, MiB, collectGarbage, getMetrics, metricValue, mib } from './attack-helpers';

const SEED = Number(process.env.SECURITY_SEED ?? Math.floor(Math.random() * 1e9));
const METRICS_TOKEN = 'metrics-token-for-the-demo-memory-test';
const ROUNDS = Number(process.env.DEMO_ROUNDS ?? 4);
/** Five per key: the default per-user session and WebSocket connection caps. */
const SESSIONS_PER_ROUND = 10;
const AUDIO_MS_PER_SESSION = 12_000;
const CHUNK_MS = 200;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const report = (line: string) => process.stdout.write(`demo-memory: ${line}\n`);

interface Retained {
  pcmBytes: number;
  messageLogEntries: number;
  connectionRecords: number;
  openConnections: number;
}

async function scrape(srv: SpawnedServer): Promise<{ retained: Retained; heapUsed: number; external: number; relayedSeconds: number }> {
  const m = await getMetrics(srv.url, METRICS_TOKEN);
  const kind = (k: string) => metricValue(m, `live_audio_emulator_retained{kind="${k}"}`) ?? NaN;
  return {
    retained: {
      pcmBytes: kind('pcm_bytes'),
      messageLogEntries: kind('message_log_entries'),
      connectionRecords: kind('connection_records'),
      openConnections: kind('open_connections'),
    },
    heapUsed: metricValue(m, 'live_audio_process_memory_bytes{kind="heap_used"}') ?? NaN,
    external: metricValue(m, 'live_audio_process_memory_bytes{kind="external"}') ?? NaN,
    relayedSeconds: metricValue(m, 'live_audio_audio_relayed_seconds_total') ?? NaN,
  };
}

/** One WebSocket session: start, stream `pcm` at 2x real time, wait for the replies, end. */
async function streamSession(srv: SpawnedServer, key: string, id: string, pcm: Buffer, jitterMs: number): Promise<{ turns: number; replyAudio: number }> {
  await sleep(jitterMs);
  const c: WsTestClient = await connect(wsUrl(srv.url, { token: key }));
  try {
    await c.next('auth_success');
    c.send({ type: 'start_session', session_id: id, response_modality: 'audio' });
    await c.next('session_started', () => true, 10_000);
    const size = (CHUNK_MS * 16_000 * 2) / 1000;
    for (let off = 0; off < pcm.length; off += size) {
      c.send({ type: 'audio_chunk', format: 'pcm', sample_rate: 16000, channels: 1, audio_data: pcm.subarray(off, off + size).toString('base64') });
      await sleep(CHUNK_MS / 2);
    }
    // The last utterance's reply, then the session ends.
    await c.until(() => c.ofType('turn_complete').length >= 6, 15_000, 'six answered turns');
    c.send({ type: 'end_session' });
    await c.next('session_ended', () => true, 10_000);
    return { turns: c.ofType('turn_complete').length, replyAudio: c.ofType('audio_output').length };
  } finally {
    c.close();
    await c.closed;
  }
}

describe(`offline demo memory (issue 11 row 6; seed ${SEED})`, () => {
  let srv: SpawnedServer;
  beforeAll(async () => {
    srv = await spawnServer({
      // npm start's server, plus a test-only SIGUSR2 → full GC hook to measure what it retains.
      nodeArgs: GC_NODE_ARGS,
      env: {
        METRICS_TOKEN,
        LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '0',
        LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '100000',
        LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '0',
      },
    });
  }, 60_000);
  afterAll(async () => srv?.stop());

  it('sessions streaming and ending, round after round: no PCM kept, records bounded, memory flat', async () => {
    expect(srv.output()).toMatch(/offline demo|emulat/i);
    const rand = prng(SEED);
    // 12 s of "speech": 800 ms tone + 1200 ms quiet, six utterances the emulator answers (with reply audio).
    const pcm = patternPcm(AUDIO_MS_PER_SESSION, { toneMs: 800, silenceMs: 1_200 });
    const rows: string[] = [];
    const rss: number[] = [];
    const heap: number[] = [];
    let streamedSeconds = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const results = await Promise.all(
        Array.from({ length: SESSIONS_PER_ROUND }, (_, i) =>
          streamSession(srv, i % 2 ? srv.keys.bob : srv.keys.alice, `demo_${round}_${i}`, pcm, Math.floor(rand() * 300)),
        ),
      );
      streamedSeconds += (SESSIONS_PER_ROUND * AUDIO_MS_PER_SESSION) / 1000;
      for (const r of results) expect(r).toMatchObject({ turns: 6 });
      expect(results.every((r) => r.replyAudio > 0)).toBe(true);
      // What the process retains: heap and external memory right after a full garbage collection.
      await collectGarbage(srv.pid);
      const s = await scrape(srv);
      rss.push(srv.rss());
      heap.push(s.heapUsed + s.external);
      rows.push(
        `round ${round}: ${streamedSeconds} s streamed in total, ${s.relayedSeconds.toFixed(1)} s relayed; emulator holds ` +
          `${s.retained.pcmBytes} PCM bytes, ${s.retained.messageLogEntries} log entries, ${s.retained.connectionRecords} records ` +
          `(${s.retained.openConnections} open); server RSS ${mib(rss[rss.length - 1])}, heap + external after a full GC ${mib(heap[heap.length - 1])}`,
      );
      // Everything streamed reached the emulator, and it kept none of it.
      expect(s.relayedSeconds).toBeGreaterThanOrEqual(streamedSeconds * 0.98);
      expect(s.retained).toEqual({ pcmBytes: 0, messageLogEntries: 0, connectionRecords: Math.min(50, round * SESSIONS_PER_ROUND), openConnections: 0 });
    }
    for (const r of rows) report(r);
    const pcmIfKept = streamedSeconds * 32_000;
    const growth = rss[rss.length - 1] - rss[0];
    const heapGrowth = heap[heap.length - 1] - heap[0];
    report(
      `after ${ROUNDS} rounds: RSS ${mib(rss[0])} → ${mib(rss[rss.length - 1])} (${growth >= 0 ? '+' : ''}${mib(growth)}), heap + external ` +
        `${mib(heap[0])} → ${mib(heap[heap.length - 1])}; the old emulator would hold ${mib(pcmIfKept)} of PCM by now; seed ${SEED}`,
    );
    // Flat after the first (warm-up) round. What a process retains lives in its heap and its external buffers (PCM
    // is external): after a full GC they grow by less than the PCM the old emulator kept in one round (3.8 MB), so
    // keeping PCM again would fail here as well as in the emulator's own count above. RSS only guards against gross
    // leaks: it does not shrink after a peak, and under heavy CPU contention V8 may grow its heap capacity while its
    // GC threads wait.
    const keptPerRoundByOldEmulator = SESSIONS_PER_ROUND * AUDIO_MS_PER_SESSION * 32;
    expect({
      retainedGrowth: heapGrowth < keptPerRoundByOldEmulator,
      rssGrowthUnder64MiB: growth < 64 * MiB,
      seed: SEED,
    }).toEqual({ retainedGrowth: true, rssGrowthUnder64MiB: true, seed: SEED });
  }, 180_000);

  it('connection records stay bounded however many sessions come and go', async () => {
    const headers = (key: string) => ({ 'X-API-Key': key, 'Content-Type': 'application/json' });
    const post = async (path: string, body: object) => {
      const r = await fetch(`${srv.url}/api/v1/live-audio${path}`, { method: 'POST', headers: headers(srv.keys.alice), body: JSON.stringify(body) });
      expect(r.status).toBe(200);
    };
    for (let i = 0; i < 60; i++) {
      await post('/session/start', { session_id: `churn_${i}` });
      await post('/session/end', { session_id: `churn_${i}` });
    }
    const deadline = Date.now() + 5_000;
    let s = await scrape(srv);
    while (s.retained.openConnections > 0 && Date.now() < deadline) {
      await sleep(50);
      s = await scrape(srv);
    }
    report(`after 60 more sessions: the emulator holds ${s.retained.connectionRecords} connection records (bound 50), ${s.retained.pcmBytes} PCM bytes`);
    expect(s.retained).toMatchObject({ connectionRecords: 50, openConnections: 0, pcmBytes: 0, messageLogEntries: 0 });
  }, 60_000);
});

/**
 * `npx tsx bench/reorder-latency.ts [--seed N]`: what the WebM reorder buffer costs in latency.
 *
 * 1. In isolation: the time `WebmSequencer.submit()` takes for an in-order chunk of the 22 s Chromium recording
 *    (parse, fingerprint, write issued inside the call), over 200 passes of the recording.
 * 2. End to end (real server in this process, real ffmpeg, real SDK, the emulator on loopback): the recording posted
 *    at real time (one chunk a second, un-awaited, like the frontend) in order; with chunk 5 1.2 s late (it
 *    arrives after chunk 6); with every third chunk 1.2 s late; with a seeded random delay of 0-1.2 s per request;
 *    with chunk 11 missing. Per chunk: the relay latency (chunk received → first PCM frame handed to the upstream
 *    socket, the server's own metric), chunk 0 (the ffmpeg start) left out.
 */
import { WebmSequencer } from '../src/services/audio/webm/webm-sequencer';
import { loadRecording } from '../test/helpers/fixtures';
import { startTestServer } from '../test/helpers/test-server';
import { prng } from '../test/ops/helpers';

const rec = loadRecording('chromium-long-22s');
const seedArg = process.argv.indexOf('--seed');
const seed = seedArg > 0 ? Number(process.argv[seedArg + 1]) : 4242;

function quantiles(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `p50 ${q(0.5).toFixed(3)} p90 ${q(0.9).toFixed(3)} p99 ${q(0.99).toFixed(3)} max ${s[s.length - 1]!.toFixed(3)}`;
}

async function isolated(): Promise<void> {
  const times: number[] = [];
  for (let pass = 0; pass < 200; pass++) {
    const seq = new WebmSequencer({ waitMs: 1500, maxBytes: 1 << 20, write: () => Promise.resolve() });
    for (const c of rec.chunks) {
      const t0 = performance.now();
      void seq.submit(c);
      times.push(performance.now() - t0);
    }
    seq.close();
  }
  console.log(`submit() of an in-order chunk (~16 KB), ms: ${quantiles(times)} (${times.length} chunks; the write is issued inside the call)`);
}

async function endToEnd(name: string, delays: (i: number) => number | null): Promise<void> {
  const latencies: number[] = [];
  let first = true;
  const t = await startTestServer({
    env: { LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '0', LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '0', LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0' },
  });
  const observe = t.server.metrics.observeRelayLatency.bind(t.server.metrics);
  t.server.metrics.observeRelayLatency = (ms: number) => {
    if (!first) latencies.push(ms); // chunk 0 waits for ffmpeg to start
    first = false;
    observe(ms);
  };
  const headers = { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' };
  const api = `${t.url}/api/v1/live-audio`;
  await fetch(`${api}/session/start`, { method: 'POST', headers, body: JSON.stringify({ session_id: 'bench' }) });
  const t0 = Date.now();
  const posts: Array<Promise<unknown>> = [];
  const sends = rec.chunks
    .map((c, i) => ({ c, i, delay: delays(i) }))
    .filter((x) => x.delay !== null)
    .map((x) => ({ ...x, at: x.i * 1000 + x.delay! }))
    .sort((a, b) => a.at - b.at);
  for (const s of sends) {
    const wait = t0 + s.at - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    posts.push(fetch(`${api}/transcribe`, { method: 'POST', headers, body: JSON.stringify({ session_id: 'bench', audio_data: s.c.toString('base64') }) }));
  }
  await Promise.all(posts);
  await new Promise((r) => setTimeout(r, 2000));
  const st = (await (await fetch(`${api}/session/bench/status`, { headers })).json()) as { data: { audio: Record<string, number> } };
  const a = st.data.audio;
  console.log(
    `${name}: relay latency per chunk, ms: ${quantiles(latencies)} (${latencies.length} chunks); ` +
      `reordered ${a.reorderedChunks}, duplicates ${a.duplicateChunks}, skipped ${a.skippedChunks} (${a.lostMs} ms lost), late ${a.lateChunks}`,
  );
  await t.close();
}

async function main(): Promise<void> {
  await isolated();
  await endToEnd('in order at real time', () => 0);
  await endToEnd('chunk 5 1.2 s late (after chunk 6)', (i) => (i === 5 ? 1200 : 0));
  await endToEnd('every third chunk 1.2 s late', (i) => (i % 3 === 2 ? 1200 : 0));
  const rand = prng(seed);
  const jitter = rec.chunks.map(() => Math.floor(rand() * 1200));
  await endToEnd(`random network delay 0-1.2 s per request (seed ${seed})`, (i) => jitter[i]!);
  await endToEnd('chunk 11 never arrives', (i) => (i === 11 ? null : 0));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

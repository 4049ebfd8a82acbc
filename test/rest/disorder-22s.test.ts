/**
 * Issue 10, item 5: the 22 s real Chromium MediaRecorder recording posted the way the frontend posts it (one
 * un-awaited POST /transcribe per chunk) but delivered the way a real network delivers it: a chunk after its
 * successor, one 1.2 s late, one posted twice, one that never arrives, all four at once, a seeded random arrival
 * order within the reorder window, and overlapping requests whose bodies arrive after random delays. The server's
 * WebM decoder (in-process, the default),
 * the real @google/genai SDK, the Gemini Live emulator; every scenario asserts the exact PCM the emulator received
 * (sample for sample against a one-shot decode of the same bytes by the same decoder; for the missing chunk, its span
 * excepted) and that every POST answers 200.
 *
 * Cadence: chunks are posted every CADENCE_MS = 200 ms (5x the 1 s timeslice, to keep the suite short) and the
 * suite runs with LIVE_AUDIO_MAX_REALTIME_FACTOR=8 so pacing does not shape the timing here (pacing has its own
 * tests). Delays and the reorder wait are wall-clock, as on a real network.
 */
import http from 'node:http';
import { inProcessDecode } from '../helpers/in-process-decode';
import { loadRecording } from '../helpers/fixtures';
import { frontendSessionId, sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { prng } from '../ops/helpers';
import { chunkSpansMs } from '../audio/webm-layouts';
import { NO_RATE_LIMITS } from '../resilience/helpers';

const API = '/api/v1/live-audio';
const CADENCE_MS = 200;
/**
 * The server's reorder window. The late and shuffled chunks below are at most 1.2 s late, so 3 s leaves 1.8 s for
 * the machine's own delays (the client's timers and the server's handling are wall-clock too; with the default
 * 1.5 s only 0.3 s were left, too little on a loaded CI machine). The window's edge itself is tested in the reorder
 * buffer's own tests.
 */
const REORDER_WAIT_MS = 3000;
/** At the end of the stream, less than one 20 ms upstream frame (framer) plus 1 ms (resampler) is still held. */
const CARRY_BYTES = 21 * 32;

const rec = loadRecording('chromium-long-22s');
const reference = inProcessDecode(Buffer.concat(rec.chunks));
const spans = chunkSpansMs(rec.chunks);

interface Post {
  chunk: number;
  /** When the request is sent (ms from the start). */
  at: number;
  /** Its body arrives this much later (a slow or retransmitting connection). */
  bodyDelayMs?: number;
}

interface Answer {
  chunk: number;
  status: number;
  body: Record<string, unknown>;
}

/** One POST /transcribe on its own connection; the body is written `bodyDelayMs` after the headers. */
function postChunk(t: TestServer, sessionId: string, chunk: number, bodyDelayMs = 0): Promise<Answer> {
  const body = JSON.stringify({
    session_id: sessionId,
    audio_data: rec.chunks[chunk]!.toString('base64'),
    format: 'webm',
    sample_rate: 16000,
    channels: 1,
  });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${t.url}${API}/transcribe`,
      {
        method: 'POST',
        agent: false,
        headers: { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ chunk, status: res.statusCode ?? 0, body: JSON.parse(text || '{}') as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    if (bodyDelayMs > 0) {
      req.flushHeaders();
      setTimeout(() => req.end(body), bodyDelayMs);
    } else {
      req.end(body);
    }
  });
}

/** Sends every post at its time (un-awaited, like the frontend) and resolves with every answer. */
async function run(t: TestServer, sessionId: string, posts: Post[]): Promise<Answer[]> {
  const t0 = Date.now();
  const pending: Array<Promise<Answer>> = [];
  for (const p of [...posts].sort((a, b) => a.at - b.at)) {
    const wait = t0 + p.at - Date.now();
    if (wait > 0) await sleep(wait);
    pending.push(postChunk(t, sessionId, p.chunk, p.bodyDelayMs));
  }
  return Promise.all(pending);
}

const inOrder = (): Post[] => rec.chunks.map((_c, i) => ({ chunk: i, at: i * CADENCE_MS }));

describe('the 22 s recording as a real network delivers it', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_MAX_REALTIME_FACTOR: '8', LIVE_AUDIO_REORDER_WAIT_MS: String(REORDER_WAIT_MS) },
    });
  });
  afterAll(async () => t.close());

  async function scenario(posts: Post[], expected: Buffer, context: string) {
    const sessionId = frontendSessionId();
    const start = await fetch(`${t.url}${API}/session/start`, {
      method: 'POST',
      headers: { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' },
      body: JSON.stringify({ session_id: sessionId }),
    });
    expect(start.status).toBe(200);
    const before = t.emu.totalAudioBytes();
    const answers = await run(t, sessionId, posts);
    const failed = answers.filter((a) => a.status !== 200);
    if (failed.length) throw new Error(`${context}: POSTs failed: ${JSON.stringify(failed.map((a) => [a.chunk, a.status, a.body.code]))}`);
    // Everything decodable reached the emulator (but the framer's carry: less than one 20 ms frame waits for more
    // audio, and the resampler keeps its last 1 ms until the stream ends); give a doubled stretch time to show up.
    await t.emu.waitFor(() => t.emu.totalAudioBytes() - before >= expected.length - CARRY_BYTES, 15_000).catch(() => undefined);
    await sleep(200);
    const got = t.emu.receivedPcm().subarray(before);
    const status = (await (
      await fetch(`${t.url}${API}/session/${sessionId}/status`, { headers: { 'X-API-Key': t.keys.alice } })
    ).json()) as { data: { audio: Record<string, number> } };
    await fetch(`${t.url}${API}/session/end`, {
      method: 'POST',
      headers: { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' },
      body: JSON.stringify({ session_id: sessionId }),
    });
    return { got, audio: status.data.audio, answers };
  }

  /**
   * `got` equals `want` sample for sample, but for the carry at the very end (see CARRY_BYTES). On failure the session's
   * audio status (restarts, stalls, pauses of the output, reorders) is in the message.
   */
  function expectSamePcm(got: Buffer, want: Buffer, context: string, audio: Record<string, unknown>) {
    const n = want.length - CARRY_BYTES;
    let first = -1;
    for (let i = 0; i < Math.min(n, got.length); i++) {
      if (got[i] !== want[i]) {
        first = i;
        break;
      }
    }
    if (got.length < n || first >= 0 || got.length > want.length) {
      throw new Error(
        `${context}: got ${got.length / 32} ms, want ${want.length / 32} ms; first difference at ${first < 0 ? 'none' : first / 32} ms; audio ${JSON.stringify(audio)}`,
      );
    }
  }

  it('in order (the baseline): byte for byte the reference, nothing reordered', async () => {
    const { got, audio } = await scenario(inOrder(), reference, 'in order');
    expectSamePcm(got, reference, 'in order', audio);
    expect(audio).toMatchObject({ reorderedChunks: 0, duplicateChunks: 0, skippedChunks: 0, lostMs: 0, lateChunks: 0 });
  }, 30_000);

  it('a chunk that arrives after its successor', async () => {
    const posts = inOrder();
    posts[5]!.at = posts[6]!.at + 120; // chunk 5 leaves after chunk 6
    const { got, audio } = await scenario(posts, reference, 'successor first');
    expectSamePcm(got, reference, 'successor first', audio);
    expect(audio).toMatchObject({ reorderedChunks: 1, skippedChunks: 0, lostMs: 0 });
  }, 30_000);

  it('a chunk 1.2 s late', async () => {
    const posts = inOrder();
    posts[7]!.at += 1200;
    const { got, audio } = await scenario(posts, reference, '1.2 s late');
    expectSamePcm(got, reference, '1.2 s late', audio);
    expect(audio.reorderedChunks).toBeGreaterThanOrEqual(5); // the chunks posted meanwhile waited for it
    expect(audio).toMatchObject({ skippedChunks: 0, lostMs: 0 });
  }, 30_000);

  it('a chunk posted twice', async () => {
    const posts = [...inOrder(), { chunk: 9, at: 9 * CADENCE_MS + 450 }];
    const { got, audio } = await scenario(posts, reference, 'twice');
    expectSamePcm(got, reference, 'twice', audio);
    expect(audio).toMatchObject({ duplicateChunks: 1, skippedChunks: 0 });
  }, 30_000);

  /** The reference without the missing chunk's span: the same decoder fed the recording without that chunk. */
  function withoutChunk(k: number): Buffer {
    return inProcessDecode(Buffer.concat(rec.chunks.filter((_c, i) => i !== k)));
  }

  /**
   * Outside the missing span the full reference, sample for sample, once the Opus decoder has converged again after
   * the jump: its state (CELT energy prediction, post-filter) misses the lost packets, and it converges on the
   * reference within 21-501 ms (measured for chunks 3, 5, 11, 15 and 20 of this recording), so 600 ms are excepted.
   */
  function expectReferenceAroundGap(got: Buffer, k: number) {
    const [from, to] = spans[k]!;
    const head = from * 32;
    expect(got.subarray(0, head).equals(reference.subarray(0, head))).toBe(true);
    const resync = 600 * 32;
    const tailGot = got.subarray(head + resync);
    const tailRef = reference.subarray(to * 32 + resync, to * 32 + resync + tailGot.length);
    expect(tailGot.length).toBeGreaterThan(0);
    const n = tailRef.length - CARRY_BYTES;
    expect(tailGot.subarray(0, n).equals(tailRef.subarray(0, n))).toBe(true);
  }

  it('a chunk that never arrives: skipped after the wait, its span lost and counted, the rest exact', async () => {
    const posts = inOrder().filter((p) => p.chunk !== 11);
    const want = withoutChunk(11);
    const { got, audio } = await scenario(posts, want, 'missing');
    expectSamePcm(got, want, 'missing', audio);
    expectReferenceAroundGap(got, 11);
    const [from, to] = spans[11]!;
    expect(audio).toMatchObject({ skippedChunks: 1, lostMs: to - from });
  }, 30_000);

  it('all four in one recording', async () => {
    const posts = inOrder().filter((p) => p.chunk !== 15);
    posts[3]!.at = posts[4]!.at + 100; // 3 after 4
    posts[8]!.at += 1200; // 8 is 1.2 s late
    posts.push({ chunk: 12, at: 12 * CADENCE_MS + 300 }); // 12 twice
    const want = withoutChunk(15);
    const { got, audio } = await scenario(posts, want, 'all four');
    expectSamePcm(got, want, 'all four', audio);
    expectReferenceAroundGap(got, 15);
    expect(audio).toMatchObject({ duplicateChunks: 1, skippedChunks: 1, lostMs: spans[15]![1] - spans[15]![0] });
    expect(audio.reorderedChunks).toBeGreaterThanOrEqual(2);
  }, 30_000);

  const seed = Number(process.env.DISORDER_SEED ?? Date.now() % 100_000);
  it(`a random arrival order within the reorder window (seed ${seed}): byte for byte the reference`, async () => {
    const rand = prng(seed);
    // Each request leaves at its time plus a random delay up to 1.2 s: any order a six-connection browser produces.
    const posts = inOrder().map((p) => ({ ...p, at: p.at + Math.floor(rand() * 1200) }));
    const order = [...posts].sort((a, b) => a.at - b.at).map((p) => p.chunk);
    const context = `seed ${seed}, arrival order ${order.join(',')}`;
    const { got, audio } = await scenario(posts, reference, context);
    expectSamePcm(got, reference, context, audio);
    expect(audio).toMatchObject({ skippedChunks: 0, lostMs: 0, lateChunks: 0 });
  }, 30_000);

  it(`overlapping un-awaited POSTs whose bodies arrive after random delays (seed ${seed + 1})`, async () => {
    const rand = prng(seed + 1);
    // Sent in order every CADENCE_MS like the frontend; each body takes 0-1.2 s to arrive (slow connections).
    const posts = inOrder().map((p) => ({ ...p, bodyDelayMs: Math.floor(rand() * 1200) }));
    const order = [...posts].sort((a, b) => a.at + a.bodyDelayMs - (b.at + b.bodyDelayMs)).map((p) => p.chunk);
    const context = `seed ${seed + 1}, body arrival order ${order.join(',')}`;
    const { got, audio } = await scenario(posts, reference, context);
    expectSamePcm(got, reference, context, audio);
    expect(audio).toMatchObject({ skippedChunks: 0, lostMs: 0 });
  }, 30_000);
});

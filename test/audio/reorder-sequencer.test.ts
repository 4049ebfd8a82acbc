/**
 * The WebM reorder buffer on its own (no ffmpeg): which bytes reach the decoder, in which order, and when, for the
 * real 22 s Chromium recording in its own layout (a Cluster per chunk, each chunk ending with the next block's id)
 * and in two re-cut layouts of the same packets (one Cluster for the whole recording, chunks starting on a block,
 * with and without the id at the end). Time is a fake clock; every wait is driven explicitly.
 */
import { WebmSequencer, type ChunkOutcome, type SequencedWrite } from '../../src/services/audio/webm/webm-sequencer';
import { AudioDecodeError } from '../../src/services/audio/session-audio-decoder';
import { prng } from '../ops/helpers';
import { rejection } from './helpers';
import { loadChunks } from '../helpers/fixtures';
import { oneCluster } from './webm-layouts';

const original = loadChunks('chromium-long-22s');
const stream = Buffer.concat(original);
const LAYOUTS: Array<[string, Buffer[]]> = [
  ['chromium (Cluster per chunk, id at the end)', original],
  ['one Cluster, chunks start on a block', oneCluster(stream)],
  ['one Cluster, id at the end', oneCluster(stream, 1000, true)],
];

const WAIT = 1500;

function harness(opts: { waitMs?: number; maxBytes?: number } = {}) {
  let clock = 0;
  const writes: SequencedWrite[] = [];
  const seq = new WebmSequencer({
    waitMs: opts.waitMs ?? WAIT,
    maxBytes: opts.maxBytes ?? 1024 * 1024,
    now: () => clock,
    write: async (w) => {
      writes.push(w);
    },
  });
  return {
    seq,
    writes,
    bytes: () => Buffer.concat(writes.map((w) => w.bytes)),
    /** Lets `ms` pass on the fake clock and runs the timers due. */
    async advance(ms: number) {
      clock += ms;
      jest.advanceTimersByTime(ms);
      await flush();
    },
  };
}

const flush = () => new Promise<void>((r) => jest.requireActual<typeof import('timers')>('timers').setImmediate(r));

beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'performance'] }));
afterEach(() => jest.useRealTimers());

describe.each(LAYOUTS)('WebmSequencer, %s', (_name, chunks) => {
  it('writes in-order chunks at once (inside submit, no timer), byte for byte the recording', async () => {
    const h = harness();
    for (let i = 0; i < chunks.length; i++) {
      const before = h.writes.length;
      const p = h.seq.submit(chunks[i]!);
      expect(h.writes.length).toBe(before + 1); // written synchronously: zero added latency
      expect(await p).toBe(i === 0 ? 'new_recording' : 'in_order');
    }
    expect(h.bytes().equals(Buffer.concat(chunks).subarray(0, h.bytes().length))).toBe(true);
    // Only the id of a block that never came is held back.
    expect(Buffer.concat(chunks).length - h.bytes().length).toBeLessThanOrEqual(1);
    expect(h.seq.stats()).toMatchObject({ reordered: 0, duplicates: 0, skipped: 0, lostMs: 0, late: 0, unplaced: 0, waiting: 0 });
  });

  it('a chunk that arrives after its successor: the successor waits, then both are written in order', async () => {
    const h = harness();
    const outcomes: Array<Promise<ChunkOutcome>> = [];
    for (const i of [0, 1, 3, 2, 4, 5]) outcomes.push(h.seq.submit(chunks[i]!));
    expect(await Promise.all(outcomes)).toEqual(['new_recording', 'in_order', 'reordered', 'in_order', 'in_order', 'in_order']);
    expect(h.bytes().equals(Buffer.concat(chunks.slice(0, 6)).subarray(0, h.bytes().length))).toBe(true);
    expect(h.seq.stats()).toMatchObject({ reordered: 1, skipped: 0 });
  });

  it('a chunk 1.2 s late (within the wait) fills its gap; nothing is lost', async () => {
    const h = harness();
    await h.seq.submit(chunks[0]!);
    await h.seq.submit(chunks[1]!);
    const early = h.seq.submit(chunks[3]!);
    await h.advance(600);
    const early2 = h.seq.submit(chunks[4]!);
    await h.advance(600);
    expect(h.writes).toHaveLength(2);
    await h.seq.submit(chunks[2]!);
    expect(await early).toBe('reordered');
    expect(await early2).toBe('reordered');
    expect(h.bytes().equals(Buffer.concat(chunks.slice(0, 5)).subarray(0, h.bytes().length))).toBe(true);
    expect(h.seq.stats()).toMatchObject({ reordered: 2, skipped: 0, lostMs: 0 });
  });

  it('a chunk posted twice is written once', async () => {
    const h = harness();
    const outs = await Promise.all([0, 1, 1, 2, 0, 3].map((i) => h.seq.submit(chunks[i]!)));
    expect(outs).toEqual(['new_recording', 'in_order', 'duplicate', 'in_order', 'duplicate', 'in_order']);
    expect(h.bytes().equals(Buffer.concat(chunks.slice(0, 4)).subarray(0, h.bytes().length))).toBe(true);
    expect(h.seq.stats().duplicates).toBe(2);
  });

  it('a chunk that never arrives: the gap is skipped when the wait is over, its span counted as lost', async () => {
    const h = harness();
    await h.seq.submit(chunks[0]!);
    await h.seq.submit(chunks[1]!);
    const after = h.seq.submit(chunks[3]!);
    await h.advance(WAIT - 10);
    expect(h.writes).toHaveLength(2); // still waiting
    await h.advance(20);
    expect(await after).toBe('after_gap');
    // Later chunks flow at once again.
    const w = h.writes.length;
    void h.seq.submit(chunks[4]!);
    expect(h.writes.length).toBe(w + 1);
    const st = h.seq.stats();
    expect(st.skipped).toBe(1);
    // The lost span is chunk 2's: about one timeslice (the recording's blocks are 60 ms).
    expect(st.lostMs).toBeGreaterThanOrEqual(900);
    expect(st.lostMs).toBeLessThanOrEqual(1100);
    // The chunk that comes after all is dropped as late.
    expect(await h.seq.submit(chunks[2]!)).toBe('late');
    expect(h.seq.stats().late).toBe(1);
  });

  it('a continuation before the head waits for it; the head arrives and both are written in order', async () => {
    const h = harness();
    const first = h.seq.submit(chunks[1]!);
    await h.advance(500);
    expect(h.writes).toHaveLength(0);
    await h.seq.submit(chunks[0]!);
    expect(await first).toBe('reordered');
    expect(h.bytes().equals(Buffer.concat(chunks.slice(0, 2)).subarray(0, h.bytes().length))).toBe(true);
  });

  it('a continuation whose head never comes is refused with AUDIO_STREAM_NO_HEADER after the wait', async () => {
    const h = harness();
    const refused = rejection(h.seq.submit(chunks[2]!));
    await h.advance(WAIT + 5);
    const err = await refused;
    expect(err).toBeInstanceOf(AudioDecodeError);
    expect(err.code).toBe('AUDIO_STREAM_NO_HEADER');
    expect(h.writes).toHaveLength(0);
  });

  it('the bytes bound skips a gap at once instead of holding more', async () => {
    const h = harness({ maxBytes: 40_000 });
    await h.seq.submit(chunks[0]!);
    const a = h.seq.submit(chunks[2]!);
    const b = h.seq.submit(chunks[3]!);
    expect(h.writes).toHaveLength(1);
    void h.seq.submit(chunks[4]!); // over 40 KB waiting: the gap (chunk 1) is given up now
    expect(await a).toBe('after_gap');
    expect(await b).toBe('reordered');
    expect(h.writes).toHaveLength(4);
    expect(h.seq.stats()).toMatchObject({ skipped: 1, waiting: 0 });
  });
});

describe('WebmSequencer, recordings', () => {
  it('a second recording starts a new stream; a straggler of the first that arrives after it is dropped', async () => {
    const h = harness();
    const short = loadChunks('chromium-short-250ms');
    for (const c of original.slice(0, 4)) await h.seq.submit(c);
    expect(await h.seq.submit(short[0]!)).toBe('new_recording');
    expect(h.writes[h.writes.length - 1]!.startsRecording).toBe(true);
    expect(await h.seq.submit(original[4]!)).toBe('late');
    expect(await h.seq.submit(short[1]!)).toBe('in_order');
  });

  it("a new recording's chunks that overtake its head wait for it, and are not given to the recording before", async () => {
    const h = harness();
    const short = loadChunks('chromium-short-250ms'); // 250 ms chunks: its chunk 1 starts at 240 ms
    const hello = loadChunks('chromium-hello-1000ms');
    await h.seq.submit(short[0]!);
    await h.seq.submit(short[1]!); // the first recording ends at 540 ms: hello's chunk 1 (960 ms) lies "ahead" of it
    const early1 = h.seq.submit(hello[1]!);
    const early2 = h.seq.submit(hello[2]!);
    await h.advance(300);
    expect(h.writes).toHaveLength(2);
    expect(await h.seq.submit(hello[0]!)).toBe('new_recording');
    expect(await early1).toBe('reordered');
    expect(await early2).toBe('reordered');
    const second = Buffer.concat(h.writes.slice(2).map((w) => w.bytes));
    expect(h.writes[2]!.startsRecording).toBe(true);
    expect(second.equals(Buffer.concat(hello.slice(0, 3)).subarray(0, second.length))).toBe(true);
    expect(h.seq.stats()).toMatchObject({ skipped: 0, lostMs: 0 });
  });

  it('a head with another codec is refused at once with AUDIO_UNSUPPORTED_CODEC', () => {
    const h = harness();
    const head = Buffer.from(original[0]!);
    const i = head.indexOf('A_OPUS', 0, 'latin1');
    head.write('A_FLAC', i, 'latin1');
    let err: unknown;
    try {
      void h.seq.submit(head);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AudioDecodeError);
    expect((err as AudioDecodeError).code).toBe('AUDIO_UNSUPPORTED_CODEC');
    expect((err as AudioDecodeError).message).toContain('A_FLAC');
    expect(h.writes).toHaveLength(0);
  });
});

describe('WebmSequencer, property: any arrival order within the wait gives the recording byte for byte', () => {
  const seed = Number(process.env.REORDER_SEED ?? Date.now() % 1_000_000);
  it.each(LAYOUTS)(`%s (seed ${seed})`, async (_name, chunks) => {
    const rand = prng(seed);
    for (let run = 0; run < 25; run++) {
      const h = harness();
      // Each chunk is sent at k*1000 ms plus a random network delay of up to 1.4 s (< the 1.5 s wait).
      const arrivals = chunks.map((c, k) => ({ c, k, at: k * 1000 + Math.floor(rand() * 1400) })).sort((a, b) => a.at - b.at);
      let now = 0;
      const outs: Array<Promise<ChunkOutcome>> = [];
      for (const a of arrivals) {
        await h.advance(a.at - now);
        now = a.at;
        outs.push(h.seq.submit(a.c));
        if (rand() < 0.1) outs.push(h.seq.submit(a.c)); // a retried request
      }
      await h.advance(WAIT + 10);
      await Promise.all(outs);
      const want = Buffer.concat(chunks);
      const got = h.bytes();
      const order = arrivals.map((a) => a.k).join(',');
      if (!(got.length >= want.length - 1 && want.subarray(0, got.length).equals(got))) {
        throw new Error(`seed ${seed}, run ${run}: arrival order ${order} did not give the recording byte for byte`);
      }
      expect(h.seq.stats()).toMatchObject({ skipped: 0, lostMs: 0, late: 0, waiting: 0 });
    }
  });
});

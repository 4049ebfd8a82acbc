/**
 * Taking a MediaRecorder stream up in another decoder (issue 15: a session taken over by another instance): the
 * stored init segment plus the resume point make the next continuation chunk of the real 22 s Chromium recording
 * decode in a fresh Debian ffmpeg, losing nothing after the split point; without them it does not decode.
 * Split points are drawn with a seeded random source (the seed is in the test name).
 */
import { spawnSync } from 'node:child_process';
import { webmInitSegment, webmPrimingBytes, WebmResumeTracker } from '../../src/services/audio/webm-resume';
import { WebmSequencer, type SequencedWrite } from '../../src/services/audio/webm/webm-sequencer';
import { prng } from '../ops/helpers';
import { loadRecording } from '../helpers/fixtures';

const SEED = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
const rec = loadRecording('chromium-long-22s');
const BYTES_PER_MS = 32; // 16 kHz s16le mono

/** Debian's ffmpeg (PATH), 16 kHz mono s16le; a truncated stream decodes up to its last whole block. */
function decode(bytes: Buffer): Buffer {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'webm', '-i', 'pipe:0', '-f', 's16le', '-ar', '16000', '-ac', '1', 'pipe:1'], {
    input: bytes,
    maxBuffer: 64 * 1024 * 1024,
  });
  return r.stdout ?? Buffer.alloc(0);
}

function correlation(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length) / 2;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const x = a.readInt16LE(i * 2);
    const y = b.readInt16LE(i * 2);
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb || 1);
}

const full = decode(Buffer.concat(rec.chunks));

it('the init segment is the bytes before the first Cluster (EBML header, Segment, Info, Tracks)', () => {
  const init = webmInitSegment(rec.chunks[0])!;
  expect(init.length).toBeGreaterThan(50);
  expect(init.length).toBeLessThan(1024);
  expect(rec.chunks[0].subarray(init.length, init.length + 4).toString('hex')).toBe('1f43b675');
  expect(webmInitSegment(rec.chunks[1])).toBeUndefined(); // a continuation chunk has none
  expect(webmInitSegment(Buffer.from('not webm'))).toBeUndefined();
});

const picks = (() => {
  const r = prng(SEED);
  const set = new Set<number>([1, rec.chunks.length - 1]);
  while (set.size < 6) set.add(1 + Math.floor(r() * (rec.chunks.length - 2)));
  return [...set].sort((a, b) => a - b);
})();

it.each(picks)(`taken up before chunk %i: everything after the split decodes in a fresh ffmpeg (seed ${SEED})`, (k) => {
  const tracker = new WebmResumeTracker();
  for (const c of rec.chunks.slice(0, k)) expect(tracker.push(c)).toBe(true);
  const point = tracker.resumePoint();
  expect(point.inCluster).toBe(true);
  expect(point.midBody).toBe(false);
  expect(point.pending.length).toBeGreaterThanOrEqual(1); // Chromium ends each chunk with the next block's id byte

  const before = decode(Buffer.concat(rec.chunks.slice(0, k))); // what the dead instance had decoded
  const rest = Buffer.concat(rec.chunks.slice(k));
  const resumed = decode(Buffer.concat([webmPrimingBytes(tracker.initSegment!, point), rest]));
  const missingMs = (full.length - before.length - resumed.length) / BYTES_PER_MS;
  // Nothing after the split point is lost (within one 20 ms Opus frame of rounding at the ends).
  expect(Math.abs(missingMs)).toBeLessThanOrEqual(20);
  // And it is the same audio: the last second matches the reference decode (the fresh Opus decoder has converged).
  // (ends aligned; the first 100 ms of the resumed decode are left out while the fresh Opus decoder converges)
  const tail = Math.min(32_000, resumed.length - 3_200);
  expect(tail).toBeGreaterThan(3_200);
  expect(correlation(resumed.subarray(resumed.length - tail), full.subarray(full.length - tail))).toBeGreaterThan(0.99);

  // Controls: the continuation alone does not decode; without the begun element the first block is lost.
  expect(decode(rest).length).toBe(0);
  const noPending = decode(Buffer.concat([webmPrimingBytes(tracker.initSegment!, { ...point, pending: Buffer.alloc(0) }), rest]));
  expect(noPending.length).toBeLessThan(resumed.length);
});

describe('the timeline a taker-over resumes (issue 15: no "gap" and no wait after a takeover)', () => {
  /** A sequencer as a decoder holds one: it collects its writes and its gap events; its clock is the test's. */
  function sequencer(waitMs: number) {
    const writes: SequencedWrite[] = [];
    const skipped: number[] = [];
    const seq = new WebmSequencer({
      waitMs,
      maxBytes: 1024 * 1024,
      write: async (w) => {
        writes.push(w);
      },
      onEvent: (e) => {
        if (e.kind === 'skipped') skipped.push(e.lostMs);
      },
    });
    return { seq, writes, skipped };
  }

  it.each(picks.filter((k) => k > 1))(`before chunk %i: the resume point carries the open Cluster's timestamp, and the primed stream takes the next chunk at once (seed ${SEED})`, async (k) => {
    const tracker = new WebmResumeTracker();
    for (const c of rec.chunks.slice(0, k)) tracker.push(c);
    const point = tracker.resumePoint();
    // The Cluster the stream is in: the last one the chunks so far opened; its Timecode element follows its header
    // (Cluster id, 8-byte unknown size, 0xE7 and the size of the timestamp).
    const bytes = Buffer.concat(rec.chunks.slice(0, k));
    const at = bytes.lastIndexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]));
    expect(at).toBeGreaterThan(0);
    const tcAt = at + 4 + 8;
    expect(bytes[tcAt]).toBe(0xe7);
    const tcLen = bytes[tcAt + 1]! & 0x7f;
    expect(point.clusterTc).toBe(bytes.readUIntBE(tcAt + 2, tcLen));

    // The new owner's sequencer: primed, then the client's next chunk. It is written at once (in order), nothing is
    // counted lost, and no chunk waits (a wait of a minute would hold the test: the chunk's promise resolves now).
    const s = sequencer(60_000);
    await s.seq.submit(webmPrimingBytes(tracker.initSegment!, point), { resumesStream: true });
    const outcomes = [];
    for (const c of rec.chunks.slice(k, k + 3)) outcomes.push(await s.seq.submit(c));
    expect(outcomes).toEqual(rec.chunks.slice(k, k + 3).map(() => 'in_order'));
    expect(s.skipped).toEqual([]);
    expect(s.seq.stats()).toMatchObject({ waiting: 0, skipped: 0, lostMs: 0, late: 0 });
    // The bytes written decode to the recording's audio after the split (as the plain priming above).
    const written = decode(Buffer.concat(s.writes.map((w) => w.bytes)));
    const direct = decode(Buffer.concat([webmPrimingBytes(tracker.initSegment!, point), ...rec.chunks.slice(k, k + 3)]));
    expect(Math.abs(written.length - direct.length)).toBeLessThanOrEqual(20 * BYTES_PER_MS);
    s.seq.close();
  });

  it(`control: primed without resumesStream, a chunk inside the Cluster waits for the "gap" before it (seed ${SEED})`, async () => {
    // A split inside a Cluster, past its first chunk: the stream stands after the Cluster's start.
    const tracker = new WebmResumeTracker();
    let k = 2;
    for (const c of rec.chunks.slice(0, k)) tracker.push(c);
    for (; k < rec.chunks.length - 1 && rec.chunks[k - 1].indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75])) >= 0; k++) tracker.push(rec.chunks[k]);
    const s = sequencer(60_000);
    await s.seq.submit(webmPrimingBytes(tracker.initSegment!, tracker.resumePoint()));
    let settled = false;
    void s.seq.submit(rec.chunks[k]).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect({ k, settled, waiting: s.seq.stats().waiting }).toEqual({ k, settled: false, waiting: 1 });
    s.seq.close();
  });
});

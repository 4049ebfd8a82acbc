/**
 * Decoding threads: a session's WebM/Opus stream decoded on a worker thread gives the same PCM as the same decoder
 * on the main thread, whatever the writes' sizes; held output keeps the backlog as input; and a thread that dies or
 * hangs is dropped, its streams told at once (so their owner can replay), the next stream served by a new thread.
 */
import path from 'node:path';
import { silentLogger } from '../../../src/util/logger';
import type { AudioDecodeError } from '../../../src/services/audio/session-audio-decoder';
import { DecodeThreads } from '../../../src/services/audio/threads/decode-threads';
import { ThreadedPcmStream } from '../../../src/services/audio/threads/threaded-pcm-stream';
import { WebmOpusDecoder } from '../../../src/services/audio/opus/webm-opus-decoder';
import { LONG, loadChunks } from '../../helpers/fixtures';
import { suiteSeed, withSeed } from '../../helpers/seed';
import { prng } from '../../ops/helpers';
import { waitFor } from '../helpers';
import { inProcessDecode } from '../../helpers/in-process-decode';

const FAULT_ENTRY = path.join(__dirname, 'fault-thread-entry.ts');

interface Run {
  stream: ThreadedPcmStream;
  pieces: Buffer[];
  failures: AudioDecodeError[];
  stalls: AudioDecodeError[];
  pcm(): Buffer;
}

function open(threads: DecodeThreads, withStall = false): Run {
  const pieces: Buffer[] = [];
  const failures: AudioDecodeError[] = [];
  const stalls: AudioDecodeError[] = [];
  const stream = ThreadedPcmStream.open(threads, 'webm-opus', { primed: false }, {
    logger: silentLogger,
    onPcm: (b) => pieces.push(Buffer.from(b)),
    onFailure: (e) => failures.push(e),
    ...(withStall ? { onStall: (e: AudioDecodeError) => stalls.push(e) } : {}),
  });
  if (!stream) throw new Error('no decoding thread');
  return { stream, pieces, failures, stalls, pcm: () => Buffer.concat(pieces) };
}

/** The main-thread reference: the same synchronous decoder fed the whole recording at once. */
function reference(whole: Buffer): Buffer {
  const d = new WebmOpusDecoder();
  const a = d.push(whole);
  const b = d.finish();
  d.close();
  return Buffer.concat([a.pcm, b.pcm]);
}

const long = Buffer.concat(loadChunks(LONG));
const expected = reference(long);

describe('DecodeThreads + ThreadedPcmStream', () => {
  let threads: DecodeThreads;
  afterEach(async () => {
    await threads?.close();
  });

  it('decodes the 22 s recording on a thread exactly as on the main thread, in random pieces (seeded)', async () => {
    const seed = suiteSeed();
    threads = new DecodeThreads({ threads: 2, logger: silentLogger });
    await withSeed(seed, async () => {
      const rand = prng(seed);
      expect(expected.length).toBeGreaterThan(21.9 * 32_000);
      // Two streams at once (they land on two threads), each cut differently.
      const runs = [open(threads), open(threads)];
      for (const r of runs) {
        let p = 0;
        while (p < long.length) {
          const n = 1 + Math.floor(rand() ** 3 * 40_000);
          await r.stream.write(long.subarray(p, p + n));
          p += n;
        }
      }
      await Promise.all(runs.map((r) => r.stream.end(5000)));
      for (const r of runs) {
        expect(r.failures).toEqual([]);
        expect(r.pcm().equals(expected)).toBe(true);
      }
      expect(threads.stats()).toMatchObject({ running: 2, started: 2, lost: 0, streams: 0 });
    });
  });

  it('many streams on one thread, written in interleaved random pieces (seeded): each gives the one-shot decode', async () => {
    const seed = suiteSeed();
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    await withSeed(seed, async () => {
      const rand = prng(seed);
      const oneShot = inProcessDecode(long);
      expect(oneShot.equals(expected)).toBe(true);
      // Each stream a different recording length (a prefix cut at a chunk boundary), cut at different places.
      const chunks = loadChunks(LONG);
      const runs = Array.from({ length: 12 }, (_, i) => ({ run: open(threads), bytes: Buffer.concat(chunks.slice(0, 2 + ((i * 7) % 21))), at: 0 }));
      while (runs.some((r) => r.at < r.bytes.length)) {
        const r = runs[Math.floor(rand() * runs.length)]!;
        if (r.at >= r.bytes.length) continue;
        const n = 1 + Math.floor(rand() ** 3 * 30_000);
        await r.run.stream.write(r.bytes.subarray(r.at, r.at + n));
        r.at += n;
        if (rand() < 0.2) await new Promise((res) => setImmediate(res));
      }
      await Promise.all(runs.map((r) => r.run.stream.end(5000)));
      for (const r of runs) {
        expect(r.run.failures).toEqual([]);
        expect(r.run.pcm().equals(inProcessDecode(r.bytes))).toBe(true);
      }
    });
  });

  it("the thread collects its garbage as it goes (its young generation is small): 300 chunks make >= 4 scavenges on the thread", async () => {
    // Per chunk the thread allocates ~100 KB of array buffers outside its heap and little JS; they are freed only by
    // a collection. With V8's usual young generation it scavenged once per ~200 chunks (BENCHMARKS §4.5).
    const work = async (t: DecodeThreads) => {
      const [before] = await t.memory();
      const chunks = loadChunks(LONG);
      for (let i = 0; i < 14; i++) {
        const r = open(t);
        for (const c of chunks) await r.stream.write(c);
        await r.stream.end(5000);
        expect(r.pcm().equals(expected)).toBe(true);
      }
      const [after] = await t.memory();
      return { before: before!, after: after! };
    };
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    threads.prestart();
    expect(await threads.memory(10_000)).toHaveLength(1); // (answered once the thread runs)
    const small = await work(threads);
    expect(small.after.scavenges - small.before.scavenges).toBeGreaterThanOrEqual(4);
    expect(small.after.heapTotal).toBeLessThan(16 * 1024 * 1024);
    await threads.close();
    // The same work with a 32 MB young generation: fewer scavenges (so the bound above is the setting's doing).
    threads = new DecodeThreads({ threads: 1, logger: silentLogger, maxYoungGenerationSizeMb: 32 });
    threads.prestart();
    expect(await threads.memory(10_000)).toHaveLength(1); // (answered once the thread runs)
    const big = await work(threads);
    expect(big.after.scavenges - big.before.scavenges).toBeLessThan(small.after.scavenges - small.before.scavenges);
  });

  it('never gives output inside write(), and gives it in order', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    const r = open(threads);
    for (const c of loadChunks(LONG)) {
      const before = r.pieces.length;
      await r.stream.write(c);
      expect(r.pieces.length).toBe(before);
    }
    await r.stream.end(5000);
    expect(r.pcm().equals(expected)).toBe(true);
  });

  it('holds decoding while the output is held: the backlog stays input, at most 128 KB with the thread', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    const r = open(threads);
    r.stream.setOutputPaused(true);
    // Four times over: 1.4 MB of input.
    for (let i = 0; i < 4; i++) for (const c of loadChunks(LONG)) await r.stream.write(c);
    const written = 4 * long.length;
    await new Promise((res) => setTimeout(res, 300));
    expect(r.pieces).toEqual([]);
    expect(r.stream.queuedBytes).toBeGreaterThanOrEqual(written - 128 * 1024);
    expect(r.stream.owesOutput).toBe(true);
    r.stream.setOutputPaused(false);
    await waitFor(() => r.pcm().length >= expected.length, 10_000);
    r.stream.kill();
    await r.stream.done;
    expect(r.pcm().subarray(0, expected.length).equals(expected)).toBe(true);
  });

  it('released output comes in a later turn, so a release followed at once by kill() gives nothing (a budget cut does that)', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    const r = open(threads);
    // Sent to the thread (within the in-flight bound), then held before the answers come back.
    for (const c of loadChunks(LONG).slice(0, 5)) void r.stream.write(c);
    r.stream.setOutputPaused(true);
    await waitFor(() => r.stream.queuedBytes === 0, 5000); // all answered, and held
    expect(r.pieces).toEqual([]);
    r.stream.setOutputPaused(false);
    expect(r.pieces).toEqual([]);
    r.stream.kill();
    await r.stream.done;
    await new Promise((res) => setTimeout(res, 100));
    expect(r.pieces).toEqual([]);
    // Without the kill, the release gives it all.
    const r2 = open(threads);
    for (const c of loadChunks(LONG).slice(0, 5)) void r2.stream.write(c);
    r2.stream.setOutputPaused(true);
    await waitFor(() => r2.stream.queuedBytes === 0, 5000);
    r2.stream.setOutputPaused(false);
    await waitFor(() => r2.pieces.length > 0, 5000);
    expect(expected.subarray(0, r2.pcm().length).equals(r2.pcm())).toBe(true);
    r2.stream.kill();
  });

  it('kill(): nothing more is delivered, and the thread serves the next stream', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    const r = open(threads);
    for (const c of loadChunks(LONG)) await r.stream.write(c);
    r.stream.kill();
    const n = r.pieces.length;
    await r.stream.done;
    await new Promise((res) => setTimeout(res, 200));
    expect(r.pieces.length).toBe(n);
    expect(r.failures).toEqual([]);
    const next = open(threads);
    await next.stream.write(long);
    await next.stream.end(5000);
    expect(next.pcm().equals(expected)).toBe(true);
  });

  it('a stream that breaks fails alone (AUDIO_DECODE_FAILED after its good PCM); the thread and its other streams go on', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger });
    const chunks = loadChunks(LONG);
    const bad = open(threads);
    const good = open(threads);
    // Three good chunks, then bytes that are no EBML element at all (0x00 starts no element id).
    for (const c of chunks.slice(0, 3)) await bad.stream.write(c);
    await bad.stream.write(Buffer.alloc(64));
    await waitFor(() => bad.failures.length > 0, 5000);
    for (const c of chunks) await good.stream.write(c);
    await good.stream.end(5000);
    await bad.stream.end(5000);
    expect(good.pcm().equals(expected)).toBe(true);
    const partial = bad.pcm();
    expect(partial.length).toBeGreaterThan(2 * 32_000);
    expect(expected.subarray(0, partial.length).equals(partial)).toBe(true);
    expect(bad.failures.map((f) => f.code)).toEqual(['AUDIO_DECODE_FAILED']);
  });

  it('a thread that dies: its streams are told at once (onStall), fail as stalled, and the next stream gets a new thread', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger, entry: FAULT_ENTRY, workerData: { exitAfterPushes: 3 } });
    const a = open(threads, true);
    const b = open(threads, true);
    for (const c of loadChunks(LONG).slice(0, 3)) await a.stream.write(c);
    await waitFor(() => a.pieces.length > 0, 5000);
    await a.stream.write(loadChunks(LONG)[3]!);
    await waitFor(() => a.stalls.length === 1 && b.stalls.length === 1, 5000);
    await a.stream.done;
    await b.stream.done;
    expect(a.failures.map((f) => f.code)).toEqual(['AUDIO_DECODER_STALLED']);
    expect(a.stream.usable).toBe(false);
    expect(threads.stats()).toMatchObject({ lost: 1, running: 0 });
    const c = open(threads, true);
    await c.stream.write(loadChunks(LONG)[0]!);
    await waitFor(() => c.pieces.length > 0, 5000);
    expect(threads.stats()).toMatchObject({ lost: 1, started: 2, running: 1 });
    c.stream.kill();
  });

  it('a thread that hangs is terminated after hungMs and its streams are told', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger, entry: FAULT_ENTRY, workerData: { hangAfterPushes: 2 }, hungMs: 400 });
    const a = open(threads, true);
    for (const c of loadChunks(LONG).slice(0, 4)) await a.stream.write(c);
    await waitFor(() => a.stalls.length === 1, 5000);
    await a.stream.done;
    expect(a.stalls[0]!.message).toMatch(/stopped answering/);
    expect(threads.stats()).toMatchObject({ lost: 1, running: 0 });
  });

  it('a thread slow to start is not taken for hung: messages sent meanwhile wait for it and are answered', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger, entry: FAULT_ENTRY, workerData: { startDelayMs: 1500 }, hungMs: 300 });
    const r = open(threads, true);
    for (const c of loadChunks(LONG)) await r.stream.write(c);
    await r.stream.end(5000);
    expect(r.stalls).toEqual([]);
    expect(r.pcm().equals(expected)).toBe(true);
    expect(threads.stats()).toMatchObject({ lost: 0, started: 1 });
  });

  it('threads that keep dying are given up for a while: open() answers undefined (the caller decodes in-process)', async () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger, entry: FAULT_ENTRY, workerData: { exitAfterPushes: 0 } });
    let refused = 0;
    for (let i = 0; i < 8; i++) {
      const s = ThreadedPcmStream.open(threads, 'webm-opus', { primed: false }, { logger: silentLogger, onPcm: () => {}, onFailure: () => {} });
      if (!s) {
        refused++;
        continue;
      }
      await s.write(loadChunks(LONG)[0]!);
      await s.done;
    }
    expect(threads.stats().lost).toBe(5);
    expect(refused).toBe(3);
  });

  it('an entry that is not installed: no thread, open() answers undefined', () => {
    threads = new DecodeThreads({ threads: 1, logger: silentLogger, entry: path.join(__dirname, 'no-such-entry.js') });
    expect(ThreadedPcmStream.open(threads, 'webm-opus', { primed: false }, { logger: silentLogger, onPcm: () => {}, onFailure: () => {} })).toBeUndefined();
    expect(threads.stats().started).toBe(0);
  });
});

/**
 * WebmOpusStream: Chromium recordings (and ffmpeg's own WebM, stereo, with Cues and a pre-skip) decoded in-process
 * against ffmpeg's decode of the same bytes; splits, primed restarts, held output, end/kill; and what a hostile
 * stream can cost (bad packets, other tracks, a TOC bomb, huge claims, one 5 MB chunk).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { silentLogger } from '../../../src/util/logger';
import type { AudioDecodeError } from '../../../src/services/audio/session-audio-decoder';
import { WebmOpusStream, type WebmOpusStreamOptions } from '../../../src/services/audio/opus/webm-opus-stream';
import { parseWebmHeader, syntheticCluster } from '../../../src/services/audio/webm/webm-header';
import { readVint } from '../../../src/services/audio/ebml';
import { LONG, SHORT, loadChunks } from '../../helpers/fixtures';
import { referenceDecode } from '../../helpers/ffmpeg';
import { suiteSeed } from '../../helpers/seed';
import { prng } from '../../ops/helpers';
import { blocksOf } from '../webm-layouts';
import { samples, waitFor } from '../helpers';
import { encode } from '../encoded-fixtures';
import { clusterStart, head, header, ID, simpleBlock } from './ebml-build';

interface Run {
  stream: WebmOpusStream;
  chunks: Buffer[];
  failures: AudioDecodeError[];
  pcm(): Buffer;
}

function open(opts: Partial<WebmOpusStreamOptions> = {}): Run {
  const chunks: Buffer[] = [];
  const failures: AudioDecodeError[] = [];
  const stream = new WebmOpusStream({
    logger: silentLogger,
    onPcm: (b) => chunks.push(Buffer.from(b)),
    onFailure: (e) => failures.push(e),
    ...opts,
  });
  return { stream, chunks, failures, pcm: () => Buffer.concat(chunks) };
}

async function decodeAll(pieces: Buffer[], opts: Partial<WebmOpusStreamOptions> = {}): Promise<Run> {
  const r = open(opts);
  for (const p of pieces) await r.stream.write(p);
  await r.stream.end(2000);
  return r;
}

/** Highest Pearson correlation of b against a over lags of ±maxLag samples, and that lag. */
function bestLag(a: Buffer, b: Buffer, maxLag = 100): { corr: number; lag: number } {
  const x = samples(a);
  const y = samples(b);
  let best = { corr: -1, lag: 0 };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const from = Math.max(0, -lag);
    const n = Math.min(x.length, y.length - lag) - from;
    let sx = 0, sy = 0, sxy = 0, sxx = 0, syy = 0; // prettier-ignore
    for (let i = from; i < from + n; i++) {
      const u = x[i]!;
      const v = y[i + lag]!;
      sx += u;
      sy += v;
      sxy += u * v;
      sxx += u * u;
      syy += v * v;
    }
    const corr = (sxy - (sx * sy) / n) / Math.sqrt((sxx - (sx * sx) / n) * (syy - (sy * sy) / n));
    if (corr > best.corr) best = { corr, lag };
  }
  return best;
}

const PACKET_SAMPLES = 960; // one 60 ms packet at 16 kHz (Chromium's frame)
/** A code-3 Opus packet of 6 empty 20 ms CELT frames: 2 bytes that libopus decodes into 120 ms (concealment). */
const TOC_BOMB = Buffer.from([0xff, 0x06]);

describe('WebmOpusStream: same audio as ffmpeg', () => {
  const chunks = loadChunks(LONG);
  const whole = Buffer.concat(chunks);
  let ref: Buffer;
  beforeAll(() => {
    ref = referenceDecode(whole);
  });

  test('the 22 s Chromium recording in its 1 s chunks: same length within a packet, correlation > 0.999', async () => {
    const r = await decodeAll(chunks);
    expect(r.failures).toEqual([]);
    const got = r.pcm();
    expect(Math.abs(got.length / 2 - ref.length / 2)).toBeLessThanOrEqual(PACKET_SAMPLES);
    expect(got.length / 2).toBe(r.stream.stats().packets * PACKET_SAMPLES);
    const { corr, lag } = bestLag(ref, got);
    expect(corr).toBeGreaterThan(0.999);
    expect(Math.abs(lag)).toBeLessThanOrEqual(100);
  });

  test("ffmpeg's own stereo WebM (known-size Clusters, Cues, pre-skip 312): down-mixed, pre-skip dropped, same audio", async () => {
    const stereo = encode(['-ac', '2', '-c:a', 'libopus', '-b:a', '64k', '-cluster_time_limit', '1000', '-f', 'webm'], 4);
    const ffRef = referenceDecode(stereo);
    const r = await decodeAll([stereo]);
    expect(r.failures).toEqual([]);
    expect(Math.abs(r.pcm().length / 2 - ffRef.length / 2)).toBeLessThanOrEqual(320); // ffmpeg's 20 ms packets
    expect(bestLag(ffRef, r.pcm()).corr).toBeGreaterThan(0.999);
    // The pre-skip (312 at 48 kHz = 104 at 16 kHz) is dropped at the start of the recording.
    expect(r.pcm().length / 2).toBe(r.stream.stats().packets * 320 - 104);
  });

  test('seeded random splits, down to single bytes, give byte-identical PCM to one whole write', async () => {
    const seed = suiteSeed();
    const rnd = prng(seed);
    const once = (await decodeAll([whole])).pcm();
    for (const maxPiece of [1, 13, 4000]) {
      const pieces: Buffer[] = [];
      const part = maxPiece === 1 ? whole.subarray(0, 40_000) : whole;
      for (let p = 0; p < part.length; ) {
        const n = 1 + Math.floor(rnd() * maxPiece);
        pieces.push(part.subarray(p, p + n));
        p += n;
      }
      const got = (await decodeAll(pieces)).pcm();
      const expected = maxPiece === 1 ? (await decodeAll([part])).pcm() : once;
      if (!got.equals(expected)) throw new Error(`[seed ${seed}] PCM differs with pieces of up to ${maxPiece} bytes`);
    }
  });
});

describe('WebmOpusStream: primed restarts', () => {
  const chunks = loadChunks(SHORT);
  const parsed = parseWebmHeader(chunks[0]!);
  if (parsed.kind !== 'ok') throw new Error(parsed.kind);
  const primer = parsed.header.primer;
  // Chromium ends every chunk with the next SimpleBlock's id byte: chunk 4 begins with that block's size.
  const cont = Buffer.concat([chunks[3]!.subarray(chunks[3]!.length - 1), ...chunks.slice(4)]);

  test('head + bytes from the middle of a Cluster, and head + a synthetic Cluster: the tail of the recording', async () => {
    const full = (await decodeAll(chunks)).pcm();
    for (const pieces of [[primer, cont], [primer, syntheticCluster(0), cont]]) {
      const r = await decodeAll(pieces, { primed: true });
      expect(r.failures).toEqual([]);
      const got = r.pcm();
      expect(got.length / 2).toBe(r.stream.stats().packets * PACKET_SAMPLES);
      expect(got.length).toBeGreaterThan(PACKET_SAMPLES * 2 * 10);
      // A fresh decoder state starts mid-stream (as a restarted ffmpeg does): the same audio once it has settled.
      const tail = full.subarray(full.length - got.length);
      const settled = 1600 * 2; // 100 ms
      expect(bestLag(tail.subarray(settled), got.subarray(settled), 0).corr).toBeGreaterThan(0.99);
    }
  });

  test('the OpusHead pre-skip is dropped at the start of a recording, not on a primed restart', async () => {
    const { blocks } = blocksOf(Buffer.concat(chunks));
    const payloads = blocks.slice(0, 20).map((b) => {
      const size = readVint(b.bytes, 1, false)!;
      return b.bytes.subarray(1 + size.length + 4); // (track 1: one-byte track number)
    });
    const stream = Buffer.concat([head([{ number: 1, codec: 'A_OPUS', preSkip: 312 }]), clusterStart(0), ...payloads.map((p, i) => simpleBlock(1, i * 60, p))]);
    const fresh = await decodeAll([stream]);
    const primed = await decodeAll([stream], { primed: true });
    expect(primed.pcm().length / 2).toBe(20 * PACKET_SAMPLES);
    expect(fresh.pcm().length / 2).toBe(20 * PACKET_SAMPLES - 104);
    expect(fresh.pcm().equals(primed.pcm().subarray(208))).toBe(true);
  });
});

describe('WebmOpusStream: the PcmStream contract', () => {
  const chunks = loadChunks(LONG);

  test('write() never delivers synchronously; output follows in later turns; queuedBytes drains', async () => {
    const r = open();
    await r.stream.write(chunks[0]!);
    expect(r.chunks).toHaveLength(0);
    expect(r.stream.queuedBytes).toBe(chunks[0]!.length);
    expect(r.stream.owesOutput).toBe(true);
    await waitFor(() => r.chunks.length > 0);
    expect(r.stream.queuedBytes).toBeLessThan(16); // at most the next block's id byte
    expect(r.stream.owesOutput).toBe(false);
    expect(r.stream.alive).toBe(false);
    expect(r.stream.pid).toBeUndefined();
    r.stream.kill();
  });

  test('held output stops decoding and keeps the input queued; release decodes it; end() delivers everything', async () => {
    const all = (await decodeAll(chunks)).pcm();
    const r = open();
    r.stream.setOutputPaused(true);
    for (const c of chunks) await r.stream.write(c);
    await new Promise((res) => setTimeout(res, 50));
    expect(r.chunks).toHaveLength(0);
    expect(r.stream.queuedBytes).toBe(chunks.reduce((n, c) => n + c.length, 0));
    const ended = r.stream.end(100);
    let finished = false;
    void ended.then(() => (finished = true));
    await new Promise((res) => setTimeout(res, 200));
    expect(finished).toBe(false); // held output is not a stall: end() waits for it
    r.stream.setOutputPaused(false);
    await ended;
    expect(r.pcm().equals(all)).toBe(true);
    expect(r.stream.usable).toBe(false);
    await r.stream.write(chunks[0]!); // dropped
    expect(r.pcm().equals(all)).toBe(true);
  });

  test('kill() delivers nothing more, reports nothing and resolves done', async () => {
    const r = open();
    for (const c of chunks) await r.stream.write(c);
    r.stream.kill();
    await r.stream.done;
    await new Promise((res) => setTimeout(res, 30));
    expect(r.chunks).toHaveLength(0);
    expect(r.failures).toEqual([]);
    expect(r.stream.queuedBytes).toBe(0);
  });

  test('failAndEnd(): the audio written before the failure point is delivered, then the failure', async () => {
    const order: string[] = [];
    const r = open({ onPcm: () => order.push('pcm'), onFailure: (e) => order.push(e.code) });
    await r.stream.write(Buffer.concat(chunks.slice(0, 3)));
    const { AudioDecodeError } = await import('../../../src/services/audio/session-audio-decoder');
    await r.stream.failAndEnd(new AudioDecodeError('AUDIO_DECODE_FAILED', 'corrupt'), 1000);
    expect(order[0]).toBe('pcm');
    expect(order[order.length - 1]).toBe('AUDIO_DECODE_FAILED');
  });
});

describe('WebmOpusStream: hostile streams', () => {
  const chunks = loadChunks(SHORT);
  const good = Buffer.concat(chunks.slice(0, 3));

  test('garbage packets inside a valid structure: 4 are skipped; the 5th fails the stream after the good PCM', async () => {
    const seed = suiteSeed();
    const rnd = prng(seed);
    // Code-2 packets whose first frame claims 250 bytes of 3 random ones: libopus rejects them (corrupted stream).
    const bad = () => Buffer.from([0xfa, 250, ...[0, 1, 2].map(() => Math.floor(rnd() * 256))]);
    const badBlocks = (n: number) => Array.from({ length: n }, (_, i) => simpleBlock(1, 32000 + i, bad()));
    // Chromium ends each chunk with the next block's id byte: the bad blocks go before that byte.
    const cut = (c: Buffer) => [c.subarray(0, c.length - 1), c.subarray(c.length - 1)];
    const [head0, id0] = cut(chunks[0]!);
    const four = await decodeAll([head0!, ...badBlocks(4), id0!, ...chunks.slice(1, 3)]);
    expect(four.failures).toEqual([]);
    expect(four.stream.stats().badPackets).toBe(4);
    expect(four.pcm().length).toBeGreaterThan(0);

    const r = open();
    const [good2, id2] = cut(good);
    await r.stream.write(good2!);
    await waitFor(() => !r.stream.owesOutput);
    const before = r.pcm().length;
    expect(before).toBeGreaterThan(0);
    await r.stream.write(Buffer.concat([...badBlocks(5), id2!]));
    await r.stream.write(chunks[3]!); // more audio after the failure point: not decoded
    await r.stream.done;
    expect(r.failures.map((e) => e.code)).toEqual(['AUDIO_DECODE_FAILED']);
    expect(r.failures[0]!.message).toMatch(/5 Opus packets were rejected/);
    expect(r.pcm().length).toBe(before);
    expect(r.stream.usable).toBe(false);
  });

  test('blocks of another track are ignored (no audio, no error)', async () => {
    const withVideo = head([
      { number: 1, codec: 'A_OPUS' },
      { number: 2, codec: 'V_VP8', type: 1 },
    ]);
    const r = await decodeAll([withVideo, clusterStart(0), ...Array.from({ length: 200 }, (_, i) => simpleBlock(2, i, Buffer.alloc(500, 0x41)))]);
    expect(r.failures).toEqual([]);
    expect(r.pcm().length).toBe(0);
    expect(r.stream.stats()).toMatchObject({ packets: 0, badPackets: 0 });
  });

  test('a 250 KB TOC bomb (2-byte packets claiming 120 ms) decodes at most one packet beyond its block times', async () => {
    // ~25,000 packets: 50 minutes of audio if each were believed. Block times advance 1 ms per packet (25 s).
    const blocks: Buffer[] = [];
    let bytes = 0;
    for (let i = 0, cluster = 0; bytes < 250 * 1024; i++) {
      if (i % 30_000 === 0) blocks.push(clusterStart((cluster = i)));
      const b = simpleBlock(1, i - cluster, TOC_BOMB);
      blocks.push(b);
      bytes += b.length;
    }
    const n = blocks.length - 1;
    const t0 = process.cpuUsage();
    const r = await decodeAll([head(), ...blocks]);
    const cpu = process.cpuUsage(t0);
    const decodedMs = r.pcm().length / 2 / 16;
    const timelineMs = n - 1 + 120; // block times span n-1 ms, and the last packet's own length
    expect(r.failures).toEqual([]);
    expect(decodedMs).toBeLessThanOrEqual(timelineMs * 1.01 + 120);
    expect(r.stream.stats().aheadOfTimeline).toBeGreaterThan(n * 0.9);
    // (printed, not asserted: CPU is a bench matter)
    console.log(`TOC bomb: ${n} packets, ${(bytes / 1024).toFixed(0)} KB -> ${(decodedMs / 1000).toFixed(1)} s PCM, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`);
  });

  test('a Cluster or a block claiming a huge size holds no memory and fails nothing it should not', async () => {
    const r = open();
    await r.stream.write(Buffer.concat([head(), header(ID.Cluster, 1024 * 1024 * 1024), header(ID.SimpleBlock, 64 * 1024 * 1024), Buffer.from([0x81, 0, 0, 0x80])]));
    for (let i = 0; i < 32; i++) await r.stream.write(Buffer.alloc(64 * 1024, 0x11));
    await waitFor(() => !r.stream.owesOutput);
    expect(r.stream.queuedBytes).toBe(0);
    expect(r.stream.stats().badPackets).toBe(1);
    expect(r.pcm().length).toBe(0);
    r.stream.kill();
  });

  test('one 5 MB chunk is decoded in slices (many turns), never in one go', async () => {
    // 5 MB of a real recording's blocks, repeated on a rising timeline.
    const { head: h, blocks } = blocksOf(Buffer.concat(loadChunks(LONG)));
    const parts: Buffer[] = [h];
    let size = h.length;
    for (let rep = 0; size < 5 * 1024 * 1024; rep++) {
      parts.push(clusterStart(rep * 30_000));
      for (const b of blocks.slice(0, 400)) {
        const copy = Buffer.from(b.bytes);
        const sz = readVint(copy, 1, false)!;
        copy.writeInt16BE(Math.min(32767, (b.absMs - blocks[0]!.absMs) % 30_000), 1 + sz.length + 1);
        parts.push(copy);
        size += copy.length;
      }
    }
    const big = Buffer.concat(parts);
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const r = open();
    await r.stream.write(big);
    await r.stream.end(5000);
    delay.disable();
    const st = r.stream.stats();
    expect(r.failures).toEqual([]);
    expect(st.packets).toBeGreaterThan(2000);
    expect(st.turns).toBeGreaterThanOrEqual(Math.floor(st.packets / 50));
    expect(r.chunks.length).toBeGreaterThanOrEqual(Math.floor(st.packets / 50));
    // Loose sanity bound only (the machine is shared): no single turn near the whole decode.
    console.log(`5 MB chunk: ${st.packets} packets in ${st.turns} turns; event loop delay max ${(delay.max / 1e6).toFixed(1)} ms`);
    expect(delay.max / 1e6).toBeLessThan(1000);
  });
});

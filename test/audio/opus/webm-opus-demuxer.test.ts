/**
 * The incremental WebM/Opus demuxer on real Chromium recordings (packets equal to an independent walk of the whole
 * file, under any split) and on hand-made streams for what Chromium does not write (known sizes, BlockGroups,
 * other tracks, lacing, elements claiming huge sizes).
 */
import { readVint } from '../../../src/services/audio/ebml';
import { WebmDemuxError, WebmOpusDemuxer, type DemuxEvent } from '../../../src/services/audio/opus/webm-opus-demuxer';
import { parseWebmHeader, syntheticCluster } from '../../../src/services/audio/webm/webm-header';
import { LONG, SHORT, loadChunks } from '../../helpers/fixtures';
import { suiteSeed } from '../../helpers/seed';
import { prng } from '../../ops/helpers';
import { blocksOf } from '../webm-layouts';
import { ID, blockGroup, clusterStart, el, head, header, simpleBlock, uintEl } from './ebml-build';

function drain(d: WebmOpusDemuxer): DemuxEvent[] {
  const out: DemuxEvent[] = [];
  for (let e = d.next(); e; e = d.next()) out.push(e);
  return out;
}

function demux(pieces: Buffer[]): DemuxEvent[] {
  const d = new WebmOpusDemuxer();
  const out: DemuxEvent[] = [];
  for (const p of pieces) {
    d.push(p);
    out.push(...drain(d));
  }
  return out;
}

const packets = (evs: DemuxEvent[]) => evs.filter((e): e is Extract<DemuxEvent, { kind: 'packet' }> => e.kind === 'packet');

/** The Opus payloads and times of a whole recording's SimpleBlocks, by an independent top-level walk. */
function reference(whole: Buffer): Array<{ packet: Buffer; timeMs: number }> {
  return blocksOf(whole).blocks.map((b) => {
    const size = readVint(b.bytes, 1, false)!;
    const body = 1 + size.length;
    const track = readVint(b.bytes, body, false)!;
    return { packet: b.bytes.subarray(body + track.length + 3), timeMs: b.absMs };
  });
}

function splitAt(buf: Buffer, rnd: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length; ) {
    const n = 1 + Math.floor(rnd() * maxPiece);
    out.push(buf.subarray(p, p + n));
    p += n;
  }
  return out;
}

const opusLike = (n: number, fill = 0x55) => Buffer.concat([Buffer.from([0xf8]), Buffer.alloc(n - 1, fill)]); // CELT 20 ms

describe('WebmOpusDemuxer on Chromium recordings', () => {
  const whole = Buffer.concat(loadChunks(LONG));
  const ref = reference(whole);

  test('the 22 s recording as recorded (1 s chunks): the head, then every packet with its block time', () => {
    const evs = demux(loadChunks(LONG));
    expect(evs[0]).toEqual({ kind: 'head', track: { number: 1, channels: 1, preSkip: 0 } });
    const got = packets(evs);
    expect(ref.length).toBeGreaterThan(300);
    expect(got.map((p) => p.timeMs)).toEqual(ref.map((r) => r.timeMs));
    expect(got.every((p, i) => p.packet.equals(ref[i]!.packet))).toBe(true);
    expect(evs.filter((e) => e.kind === 'bad')).toEqual([]);
  });

  test('seeded random splits (1 to 1..64 bytes) and 1-byte pieces give the same packets', () => {
    const seed = suiteSeed();
    const rnd = prng(seed);
    const expected = packets(demux([whole])).map((p) => p.packet.toString('hex'));
    for (const maxPiece of [1, 7, 64, 5000]) {
      const got = packets(demux(splitAt(whole, rnd, maxPiece))).map((p) => p.packet.toString('hex'));
      if (got.length !== expected.length || got.some((g, i) => g !== expected[i])) {
        throw new Error(`[seed ${seed}] packets differ with pieces of up to ${maxPiece} bytes`);
      }
    }
  });

  test('keeps no pushed buffer once it waits for more (seeded splits, each piece overwritten after it was read): same packets', () => {
    // A stream between chunks holds no chunk (only a copy of the unread tail: Chromium ends each chunk with the next
    // block's first byte), so a decoding thread's chunks die young (BENCHMARKS §4.5).
    const seed = suiteSeed();
    const rnd = prng(seed);
    const expected = packets(demux([whole])).map((p) => p.packet.toString('hex'));
    for (const pieces of [loadChunks(LONG).map((c) => Buffer.from(c)), splitAt(whole, rnd, 5000).map((c) => Buffer.from(c))]) {
      const d = new WebmOpusDemuxer();
      const got: string[] = [];
      for (const piece of pieces) {
        d.push(piece);
        for (const e of drain(d)) if (e.kind === 'packet') got.push(e.packet.toString('hex'));
        piece.fill(0x1f);
      }
      if (got.length !== expected.length || got.some((g, i) => g !== expected[i])) throw new Error(`[seed ${seed}] packets differ`);
    }
  });

  test('a primed restart: head, then bytes from the middle of a Cluster (bare SimpleBlocks) or from a synthetic Cluster', () => {
    const chunks = loadChunks(SHORT);
    const parsed = parseWebmHeader(chunks[0]!);
    if (parsed.kind !== 'ok') throw new Error(parsed.kind);
    const all = reference(Buffer.concat(chunks));
    // Chromium ends every chunk with the next SimpleBlock's id byte: chunk 3's bytes start with that block's size.
    const cont = Buffer.concat([chunks[2]!.subarray(chunks[2]!.length - 1), ...chunks.slice(3)]);
    expect(cont[0]).toBe(0xa3);
    const mid = packets(demux([parsed.header.primer, cont]));
    expect(mid.length).toBeGreaterThan(10);
    const tail = all.slice(all.length - mid.length);
    expect(mid.every((p, i) => p.packet.equals(tail[i]!.packet))).toBe(true);
    // The same blocks behind a synthetic Cluster at their cluster's timecode: same packets, absolute times.
    const synthetic = packets(demux([parsed.header.primer, syntheticCluster(0), cont]));
    expect(synthetic.map((p) => p.packet.toString('hex'))).toEqual(mid.map((p) => p.packet.toString('hex')));
  });
});

describe('WebmOpusDemuxer on hand-made streams', () => {
  test('known-size Segment and Clusters, BlockGroup/Block, Cues/Void/Tags skipped, timecode scale applied', () => {
    const body = Buffer.concat([
      el(ID.Void, Buffer.alloc(100)),
      el(ID.Cluster, uintEl(ID.Timecode, 100), simpleBlock(1, 0, opusLike(10, 1)), blockGroup(1, 20, opusLike(12, 2))),
      el(ID.Cues, Buffer.alloc(50, 0xa3)),
      el(ID.Cluster, uintEl(ID.Timecode, 200), el(ID.Void, Buffer.alloc(3)), simpleBlock(1, -5, opusLike(11, 3))),
      el(ID.Tags, Buffer.alloc(20)),
    ]);
    const h = head();
    const segStart = h.indexOf(header(ID.Segment, 'unknown'));
    // Same head, but a Segment of known size; TimecodeScale 2 ms.
    const info = el(ID.Info, uintEl(ID.TimecodeScale, 2_000_000));
    const tracksAt = h.indexOf(Buffer.from([0x16, 0x54, 0xae, 0x6b]));
    const tracks = h.subarray(tracksAt);
    const stream = Buffer.concat([h.subarray(0, segStart), el(ID.Segment, info, tracks, body)]);
    const got = packets(demux([stream]));
    expect(got.map((p) => [p.packet[1], p.timeMs])).toEqual([
      [1, 200],
      [2, 240],
      [3, 390],
    ]);
  });

  test('blocks of another track are skipped without being buffered; its bytes are never taken for Opus', () => {
    const h = head([
      { number: 1, codec: 'V_VP8', type: 1 },
      { number: 2, codec: 'A_OPUS', channels: 2, preSkip: 312 },
    ]);
    const d = new WebmOpusDemuxer();
    d.push(h);
    expect(drain(d)).toEqual([{ kind: 'head', track: { number: 2, channels: 2, preSkip: 312 } }]);
    d.push(clusterStart(0));
    // A 1 MB video block, fed in 64 KB pieces: nothing of it stays buffered.
    const video = simpleBlock(1, 0, Buffer.alloc(1024 * 1024, 0xa3));
    let maxBuffered = 0;
    for (let p = 0; p < video.length; p += 65536) {
      d.push(video.subarray(p, p + 65536));
      expect(drain(d)).toEqual([]);
      maxBuffered = Math.max(maxBuffered, d.bufferedBytes);
    }
    expect(maxBuffered).toBe(0);
    d.push(simpleBlock(2, 60, opusLike(9)));
    expect(packets(drain(d)).map((p) => p.timeMs)).toEqual([60]);
  });

  test('an element claiming megabytes (Void, Cues, unknown ids) is skipped as it arrives, never held', () => {
    const d = new WebmOpusDemuxer();
    d.push(head());
    drain(d);
    d.push(header(ID.Void, 50 * 1024 * 1024));
    for (let i = 0; i < 100; i++) {
      d.push(Buffer.alloc(65536, 0x1f));
      expect(drain(d)).toEqual([]);
      expect(d.bufferedBytes).toBe(0);
    }
  });

  test('an Opus block claiming a huge size is a bad packet, skipped unbuffered; laced and empty blocks too', () => {
    const d = new WebmOpusDemuxer();
    d.push(Buffer.concat([head(), clusterStart(0)]));
    drain(d);
    const huge = Buffer.concat([header(ID.SimpleBlock, 4 * 1024 * 1024), Buffer.from([0x81, 0, 0, 0x80])]);
    d.push(huge);
    expect(drain(d)).toEqual([{ kind: 'bad', reason: `block of ${4 * 1024 * 1024} bytes` }]);
    for (let i = 0; i < 64; i++) {
      d.push(Buffer.alloc(i < 63 ? 65536 : 65536 - 4, 0xa3)); // the block's body: 4 MiB with its 4-byte header
      drain(d);
      expect(d.bufferedBytes).toBe(0);
    }
    d.push(simpleBlock(1, 0, opusLike(10), 0x82)); // Xiph lacing
    d.push(simpleBlock(1, 0, Buffer.alloc(0)));
    d.push(simpleBlock(1, 20, opusLike(10)));
    const evs = drain(d);
    expect(evs.map((e) => e.kind)).toEqual(['bad', 'bad', 'packet']);
    expect(evs.slice(0, 2)).toEqual([
      { kind: 'bad', reason: 'laced block' },
      { kind: 'bad', reason: 'empty block' },
    ]);
  });

  test('a stream without an Opus track, or with broken structure, fails (and keeps failing)', () => {
    const d = new WebmOpusDemuxer();
    d.push(head([{ number: 1, codec: 'A_VORBIS' }]));
    expect(() => drain(d)).toThrow(/no Opus audio track \(A_VORBIS\)/);
    expect(() => d.next()).toThrow(WebmDemuxError);

    const e = new WebmOpusDemuxer();
    e.push(Buffer.concat([head(), clusterStart(0), Buffer.from([0x00, 0x00, 0x00])]));
    expect(() => drain(e)).toThrow(/invalid element id/);

    const overrun = new WebmOpusDemuxer();
    overrun.push(Buffer.concat([head(), header(ID.Cluster, 5), simpleBlock(1, 0, opusLike(10))]));
    expect(() => drain(overrun)).toThrow(/overruns/);
  });

  test('a new EBML header inside the stream starts a new recording (new head, its own track)', () => {
    const first = Buffer.concat([head(), clusterStart(0), simpleBlock(1, 0, opusLike(10))]);
    const second = Buffer.concat([head([{ number: 3, codec: 'A_OPUS', preSkip: 312 }]), clusterStart(0), simpleBlock(3, 0, opusLike(10))]);
    const evs = demux([first, second]);
    expect(evs.map((e) => e.kind)).toEqual(['head', 'packet', 'head', 'packet']);
    expect(evs[2]).toEqual({ kind: 'head', track: { number: 3, channels: 1, preSkip: 312 } });
  });
});

import { readVint } from '../ebml';
import { opusPacketDurationMs } from '../opus-packet';
import { ID_CLUSTER, ID_TIMECODE, ID_SIMPLE_BLOCK, ID_BLOCK_GROUP, ID_BLOCK } from './ebml-ids';

/**
 * The layout of one MediaRecorder chunk inside its recording: which blocks it carries and where they sit in time.
 *
 * A MediaRecorder chunk starts at a frame boundary, but not always at an element boundary: Chromium emits the id
 * of the next SimpleBlock (or Cluster) at the end of a chunk and its size and body in the next one. So a chunk
 * starts either with an element (Cluster, SimpleBlock, BlockGroup, ...), or with the size of a SimpleBlock whose id
 * ended the previous chunk, or with the unknown size of a Cluster whose id ended it, or with the Timecode of a
 * Cluster whose header ended it. Each SimpleBlock carries a 16-bit timecode relative to its Cluster, and its Opus
 * packet's TOC byte gives its duration; a Cluster carries an absolute timecode.
 */

/** Which element the chunk continues when it does not start on an element boundary. */
export type WebmChunkStart = 'element' | 'after_block_id' | 'after_cluster_id' | 'after_cluster_header';

export interface WebmBlockTiming {
  /** Timecode relative to the block's Cluster (recording timecode units). */
  relTc: number;
  /** Duration of its Opus packet, ms. */
  durationMs: number;
}

/** Consecutive blocks, by their first and last (a chunk may hold thousands: nothing is kept per block). */
export interface BlockRun {
  first: WebmBlockTiming;
  last: WebmBlockTiming;
  count: number;
}

export interface WebmClusterTiming {
  /** Absolute timecode of the Cluster (recording timecode units). */
  timecode: number;
  blocks: BlockRun | undefined;
}

export interface WebmChunkLayout {
  start: WebmChunkStart;
  /** The bytes the chunk lacks at its start (the element id, or Cluster id and size, that ended the previous chunk). */
  impliedPrefix: Buffer;
  /** Blocks before the chunk's first Cluster: they belong to the Cluster open at the end of the previous chunk. */
  leading: BlockRun | undefined;
  /** Clusters that start in this chunk, with their blocks. */
  clusters: WebmClusterTiming[];
  /** Bytes of complete elements from the start of the chunk; what follows is an element the next chunk completes. */
  completeBytes: number;
  /** Number of blocks. */
  blockCount: number;
}

export interface ParseWebmChunkOptions {
  /** The recording's audio track (blocks of other tracks make the chunk unparseable). Unknown: any of 1..8. */
  audioTrack?: number;
}


/** Cluster children (besides blocks and the timecode) skipped whole. */
const CLUSTER_LEAVES = new Set([0xab, 0xa7, 0xec, 0xbf, 0x5854, 0xaf]);
/** Level-1 elements that may sit between Clusters (skipped whole). */
const LEVEL1_LEAVES = new Set([0x1c53bb6b, 0x1254c367, 0x114d9b74, 0x1549a966, 0x1654ae6b, 0x1043a770, 0x1941a469]);
/** BlockGroup children besides the Block. */
const BLOCK_GROUP_LEAVES = new Set([0x9b, 0xfb, 0x75a2, 0x75a1, 0xa4, 0xec, 0xbf]);

const MAX_ELEMENT = 1024 * 1024;
const CLUSTER_ID_BYTES = Buffer.from([0x1f, 0x43, 0xb6, 0x75]);
const UNKNOWN_SIZE_8 = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

interface Walk {
  leading: BlockRun | undefined;
  clusters: WebmClusterTiming[];
  completeBytes: number;
  blockCount: number;
}

/**
 * Parses a (Simple)Block body; undefined when it is not a plausible unlaced block of the audio track. A packet whose
 * TOC is not valid Opus (ffmpeg skips such a packet) takes `fallbackMs` as its duration, unless `strict`.
 */
function blockTiming(
  buf: Buffer,
  body: number,
  size: number,
  audioTrack: number | undefined,
  fallbackMs: number | undefined,
): WebmBlockTiming | undefined {
  const track = readVint(buf, body, false);
  if (!track || track.unknown) return undefined;
  if (audioTrack !== undefined ? track.value !== audioTrack : track.value < 1 || track.value > 8) return undefined;
  const hdr = track.length + 3;
  if (size < hdr + 1) return undefined;
  const flags = buf[body + track.length + 2]!;
  if ((flags & 0x70) !== 0 || (flags & 0x06) !== 0) return undefined; // reserved bits, or laced (not used for Opus)
  const relTc = buf.readInt16BE(body + track.length);
  const durationMs = opusPacketDurationMs(buf.subarray(body + hdr, body + size)) ?? fallbackMs;
  if (durationMs === undefined) return undefined;
  return { relTc, durationMs };
}

/**
 * Walks well-formed elements from `pos` to the end of `buf`. `firstBlockSizeAt` marks a chunk that starts with the
 * size of a SimpleBlock (its id ended the previous chunk); `inCluster` a chunk that starts inside a Cluster header.
 * Returns undefined when the bytes are not such a sequence (then the chunk cannot be placed by its timing).
 */
function walk(buf: Buffer, start: WebmChunkStart, audioTrack: number | undefined): Walk | undefined {
  const res: Walk = { leading: undefined, clusters: [], completeBytes: 0, blockCount: 0 };
  let current: WebmClusterTiming | undefined;
  let p = 0;
  let lastMs: number | undefined;
  const extend = (run: BlockRun | undefined, b: WebmBlockTiming): BlockRun => {
    if (!run) return { first: b, last: b, count: 1 };
    run.last = b;
    run.count++;
    return run;
  };
  const addBlock = (b: WebmBlockTiming) => {
    lastMs = b.durationMs;
    if (current) current.blocks = extend(current.blocks, b);
    else res.leading = extend(res.leading, b);
    res.blockCount++;
  };

  if (start === 'after_block_id') {
    const size = readVint(buf, 0, false);
    if (!size || size.unknown || size.value > MAX_ELEMENT) return undefined;
    const end = size.length + size.value;
    if (end > buf.length) return undefined; // a block cut by the chunk end on both sides: no timing to go by
    const b = blockTiming(buf, size.length, size.value, audioTrack, undefined); // strict: it decides the layout
    if (!b) return undefined;
    addBlock(b);
    p = end;
  } else if (start === 'after_cluster_id') {
    const size = readVint(buf, 0, false);
    if (!size || !size.unknown) return undefined; // MediaRecorder Clusters have unknown size
    current = { timecode: NaN, blocks: undefined };
    res.clusters.push(current);
    p = size.length;
    if (buf[p] !== ID_TIMECODE) return undefined;
  } else if (start === 'after_cluster_header') {
    current = { timecode: NaN, blocks: undefined };
    res.clusters.push(current);
  }
  res.completeBytes = p;

  while (p < buf.length) {
    const id = readVint(buf, p, true);
    if (id === undefined) return undefined;
    const size = id ? readVint(buf, p + id.length, false) : null;
    if (size === undefined) return undefined;
    if (!id || !size) break; // header cut by the chunk end
    const body = p + id.length + size.length;
    if (id.value === ID_CLUSTER) {
      current = { timecode: NaN, blocks: undefined };
      res.clusters.push(current);
      p = body; // descend (known or unknown size: its children follow)
      res.completeBytes = p;
      continue;
    }
    if (size.unknown || size.value > MAX_ELEMENT) return undefined;
    const end = body + size.value;
    if (id.value === ID_SIMPLE_BLOCK) {
      if (end > buf.length) {
        // The last block is cut by the chunk end: its start must still look right.
        if (body + id.length + 4 <= buf.length && readVint(buf, body, false) === undefined) return undefined;
        break;
      }
      const b = blockTiming(buf, body, size.value, audioTrack, lastMs ?? 20);
      if (!b) return undefined;
      addBlock(b);
    } else if (id.value === ID_TIMECODE) {
      if (size.value < 1 || size.value > 8 || !current || !Number.isNaN(current.timecode) || current.blocks) return undefined;
      if (end > buf.length) break;
      let v = 0;
      for (let i = body; i < end; i++) v = v * 256 + buf[i]!;
      current.timecode = v;
    } else if (id.value === ID_BLOCK_GROUP) {
      if (end > buf.length) break;
      let q = body;
      let block: WebmBlockTiming | undefined;
      while (q < end) {
        const cid = readVint(buf, q, true);
        const csize = cid ? readVint(buf, q + cid.length, false) : cid;
        if (!cid || !csize || csize.unknown) return undefined;
        const cbody = q + cid.length + csize.length;
        if (cbody + csize.value > end) return undefined;
        if (cid.value === ID_BLOCK) {
          block = blockTiming(buf, cbody, csize.value, audioTrack, lastMs ?? 20);
          if (!block) return undefined;
        } else if (!BLOCK_GROUP_LEAVES.has(cid.value)) return undefined;
        q = cbody + csize.value;
      }
      if (!block) return undefined;
      addBlock(block);
    } else if (CLUSTER_LEAVES.has(id.value) || LEVEL1_LEAVES.has(id.value)) {
      if (end > buf.length) break;
    } else {
      return undefined;
    }
    p = end;
    res.completeBytes = p;
  }
  // Every Cluster must say where it is.
  if (res.clusters.some((c) => Number.isNaN(c.timecode) && c.blocks)) return undefined;
  return res;
}

/** The element ids a chunk may start with on an element boundary. */
const FIRST_IDS = new Set([ID_CLUSTER, ID_SIMPLE_BLOCK, ID_BLOCK_GROUP, ...CLUSTER_LEAVES, ...LEVEL1_LEAVES]);

/**
 * Where a continuation chunk of a WebM recording belongs, from its own bytes: its blocks and their timing.
 * `undefined` when the chunk does not start at a frame boundary (e.g. a stream cut at arbitrary byte offsets): such
 * a chunk can only be decoded in arrival order.
 */
export function parseWebmContinuation(chunk: Buffer, opts: ParseWebmChunkOptions = {}): WebmChunkLayout | undefined {
  if (chunk.length === 0) return undefined;
  const tries: Array<[WebmChunkStart, Buffer]> = [];
  const first = readVint(chunk, 0, true);
  if (first && FIRST_IDS.has(first.value)) tries.push(['element', Buffer.alloc(0)]);
  if (chunk[0] === ID_TIMECODE) tries.push(['after_cluster_header', Buffer.concat([CLUSTER_ID_BYTES, UNKNOWN_SIZE_8])]);
  tries.push(['after_block_id', Buffer.from([ID_SIMPLE_BLOCK])]);
  tries.push(['after_cluster_id', CLUSTER_ID_BYTES]);
  for (const [start, impliedPrefix] of tries) {
    const w = walk(chunk, start, opts.audioTrack);
    if (w && w.blockCount > 0) return { start, impliedPrefix, ...w };
  }
  return undefined;
}

/** The layout of a header chunk's body (from the recording's first Cluster on). */
export function parseWebmBody(body: Buffer, opts: ParseWebmChunkOptions = {}): WebmChunkLayout | undefined {
  if (body.length === 0) return { start: 'element', impliedPrefix: Buffer.alloc(0), leading: undefined, clusters: [], completeBytes: 0, blockCount: 0 };
  const w = walk(body, 'element', opts.audioTrack);
  return w ? { start: 'element', impliedPrefix: Buffer.alloc(0), ...w } : undefined;
}

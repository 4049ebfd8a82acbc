import { ID_EBML, ID_SEGMENT, ID_CLUSTER, ID_TRACKS, ID_TRACK_ENTRY, ID_TRACK_NUMBER, ID_SIMPLE_BLOCK, ID_BLOCK_GROUP, ID_TIMECODE, ID_VOID, ID_CRC32 } from './webm/ebml-ids';
/**
 * Tiny EBML/Matroska sniffing helpers for MediaRecorder WebM chunks.
 *
 * - `startsWithEbmlHeader`: the chunk starts a new WebM stream (`1A 45 DF A3`).
 * - `looksLikeWebmContinuation`: the chunk is plausibly a later fragment of a WebM stream (used only to pick the
 *   error code for a chunk that arrives without a running stream: "header missing" vs "not WebM at all").
 *
 * Chromium cuts MediaRecorder chunks between libwebm writes, so a continuation chunk may start with an element id
 * (SimpleBlock 0xA3, Cluster 0x1F43B675, ...) or in the middle of an element header: measured on the committed
 * Chromium fixtures, every continuation chunk starts with the *size* of a SimpleBlock whose id byte ended the
 * previous chunk. The heuristic therefore walks chains of well-formed Matroska elements (known ids, valid sizes,
 * block bodies with a small track number and zero reserved flag bits) and accepts a chunk only when a chain is
 * confirmed several times, which random bytes practically never satisfy.
 */

const EBML_MAGIC = [0x1a, 0x45, 0xdf, 0xa3] as const;

/** True when `buf` starts with the EBML header magic `1A 45 DF A3` (the first chunk of a WebM stream). */
export function startsWithEbmlHeader(buf: Uint8Array): boolean {
  return (
    buf.length >= 4 &&
    buf[0] === EBML_MAGIC[0] &&
    buf[1] === EBML_MAGIC[1] &&
    buf[2] === EBML_MAGIC[2] &&
    buf[3] === EBML_MAGIC[3]
  );
}

type Kind = 'master' | 'block' | 'uint' | 'binary' | 'crc';

/** Elements that can follow each other inside a Segment/Cluster of a live WebM stream. */
const ELEMENTS = new Map<number, Kind>([
  [0x18538067, 'master'], // Segment
  [0x1f43b675, 'master'], // Cluster
  [0xa0, 'master'], // BlockGroup
  [0xa3, 'block'], // SimpleBlock
  [0xa1, 'block'], // Block
  [0xe7, 'uint'], // Timestamp (cluster timecode)
  [0xab, 'uint'], // PrevSize
  [0xa7, 'uint'], // Position
  [0x9b, 'uint'], // BlockDuration
  [0xfb, 'uint'], // ReferenceBlock
  [0x75a2, 'uint'], // DiscardPadding
  [0xec, 'binary'], // Void
  [0x75a1, 'binary'], // BlockAdditions
  [0xbf, 'crc'], // CRC-32
  [0x1c53bb6b, 'binary'], // Cues
  [0x1254c367, 'binary'], // Tags
  [0x114d9b74, 'binary'], // SeekHead
  [0x1549a966, 'binary'], // Info
  [0x1654ae6b, 'binary'], // Tracks
  [0x1043a770, 'binary'], // Chapters
  [0x1941a469, 'binary'], // Attachments
]);

/** Masters that may have the "unknown size" marker in live streams. */
const UNKNOWN_SIZE_OK = new Set([0x18538067, 0x1f43b675]);

/** Offsets scanned for a chain start when the chunk does not begin on an element boundary. */
const SCAN_LIMIT = 64 * 1024;
/** Largest plausible track number in a block (Chrome's audio track is 1, or 2 next to video). */
const MAX_TRACK = 8;
/** Stop walking once a chain is this well confirmed. */
const ENOUGH = 4;

export interface Vint {
  value: number;
  length: number;
  unknown: boolean;
}

/** Reads an EBML variable-length integer. `null`: truncated by the end of `buf`; `undefined`: invalid. */
export function readVint(buf: Uint8Array, pos: number, isId: boolean): Vint | null | undefined {
  if (pos >= buf.length) return null;
  const first = buf[pos]!;
  let length = 1;
  let mask = 0x80;
  while (length <= 8 && (first & mask) === 0) {
    length++;
    mask >>= 1;
  }
  if (length > 8 || (isId && length > 4)) return undefined;
  if (pos + length > buf.length) return null;
  let value = isId ? first : first & (mask - 1);
  let allOnes = (first & (mask - 1)) === mask - 1;
  for (let i = 1; i < length; i++) {
    const b = buf[pos + i]!;
    value = value * 256 + b;
    if (b !== 0xff) allOnes = false;
  }
  return { value, length, unknown: !isId && allOnes };
}

interface Walk {
  /** Elements whose end was followed by another well-formed element, or that ended exactly at the buffer end. */
  confirmed: number;
  /** At least one SimpleBlock/Block with a plausible body was seen. */
  sawBlock: boolean;
  /** The chain was followed to the end of the buffer (the last element may be cut by the chunk boundary). */
  reachedEnd: boolean;
}

/** Checks the start of a (Simple)Block body: small track number, zero reserved flag bits. `null`: truncated. */
function blockBodyOk(buf: Uint8Array, bodyPos: number, size: number): boolean | null {
  const track = readVint(buf, bodyPos, false);
  if (track === undefined) return false;
  if (track === null) return null;
  if (track.unknown || track.value < 1 || track.value > MAX_TRACK) return false;
  if (size < track.length + 3) return false;
  const flagsPos = bodyPos + track.length + 2;
  if (flagsPos >= buf.length) return null;
  return (buf[flagsPos]! & 0x70) === 0;
}

/**
 * Walks consecutive elements from `start`. With `sizeFirst`, the chain starts with the size field of a SimpleBlock
 * whose id byte was the last byte of the previous chunk.
 */
function walk(buf: Uint8Array, start: number, sizeFirst: boolean): Walk {
  const res: Walk = { confirmed: 0, sawBlock: false, reachedEnd: false };
  let pos = start;
  let pendingConfirm = false;
  let first = true;
  for (let steps = 0; steps < 64 && res.confirmed < ENOUGH; steps++) {
    if (pos === buf.length) {
      res.reachedEnd = true;
      if (pendingConfirm) res.confirmed++;
      return res;
    }
    let kind: Kind;
    let id = 0xa3;
    let idLen = 0;
    if (first && sizeFirst) {
      kind = 'block';
    } else {
      const idV = readVint(buf, pos, true);
      if (idV === null) {
        res.reachedEnd = true;
        return res;
      }
      if (idV === undefined) return res;
      const k = ELEMENTS.get(idV.value);
      if (!k) return res;
      kind = k;
      id = idV.value;
      idLen = idV.length;
    }
    first = false;
    const size = readVint(buf, pos + idLen, false);
    if (size === undefined) return res;
    if (size === null) {
      // Chunk boundary right after an element id (what Chromium does): the chain ends here.
      if (pendingConfirm) res.confirmed++;
      res.reachedEnd = true;
      return res;
    }
    const bodyPos = pos + idLen + size.length;
    if (size.unknown && !UNKNOWN_SIZE_OK.has(id)) return res;
    if (kind === 'uint' && size.value > 8) return res;
    if (kind === 'crc' && size.value !== 4) return res;
    if (kind === 'block') {
      const ok = blockBodyOk(buf, bodyPos, size.value);
      if (ok === false) return res;
      if (ok === true) res.sawBlock = true;
    }
    // The header of this element is well-formed: it confirms the previous element's size.
    if (pendingConfirm) res.confirmed++;
    if (kind === 'master') {
      pos = bodyPos; // descend: the first child follows the header
      pendingConfirm = true;
      continue;
    }
    const end = bodyPos + size.value;
    if (end > buf.length) {
      res.reachedEnd = true; // cut by the chunk boundary
      return res;
    }
    pos = end;
    pendingConfirm = true;
  }
  return res;
}

/**
 * True when `buf` plausibly is a continuation fragment of a WebM/Matroska stream (not its first chunk): it starts
 * with a Matroska element (SimpleBlock, Cluster, BlockGroup, Timecode, Void, ...) or with the size of a SimpleBlock
 * whose id ended the previous chunk, or (for arbitrary byte cuts) a confirmed chain of blocks starts within the
 * first 64 KiB. Returns false for chunks that start with the EBML header.
 */
export function looksLikeWebmContinuation(buf: Uint8Array): boolean {
  if (buf.length === 0 || startsWithEbmlHeader(buf)) return false;
  const accept0 = (w: Walk): boolean =>
    w.sawBlock ? w.confirmed >= 2 || (w.confirmed >= 1 && w.reachedEnd) : w.confirmed >= 3;
  if (accept0(walk(buf, 0, false)) || accept0(walk(buf, 0, true))) return true;
  const limit = Math.min(buf.length, SCAN_LIMIT);
  for (let s = 1; s < limit; s++) {
    const b = buf[s]!;
    // Cheap pre-filter: first byte of a known id.
    if (b !== 0xa3 && b !== 0xa0 && b !== 0x1f && b !== 0xa1 && b !== 0xe7 && b !== 0xec) continue;
    const w = walk(buf, s, false);
    if (w.sawBlock && (w.confirmed >= 3 || (w.confirmed >= 2 && w.reachedEnd))) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Incremental structure check of a running WebM stream
// ---------------------------------------------------------------------------------------------------------------

export type WebmCheckResult = { ok: true } | { ok: false; validBytes: number; reason: string };


/** Level-1 children of a Segment besides Cluster/Tracks: skipped. */
const SEGMENT_LEAVES = new Set([0x114d9b74, 0x1549a966, 0x1254c367, 0x1c53bb6b, 0x1043a770, 0x1941a469, ID_VOID, ID_CRC32]);
/** Cluster children besides SimpleBlock/Timecode: skipped. */
const CLUSTER_LEAVES = new Set([ID_BLOCK_GROUP, 0xab, 0xa7, ID_VOID, ID_CRC32, 0x5854, 0xaf]);
const LEVEL1 = new Set([ID_CLUSTER, ID_TRACKS, ...SEGMENT_LEAVES].filter((id) => id !== ID_VOID && id !== ID_CRC32));

const MAX_BLOCK_BYTES = 1024 * 1024;
const MAX_LEVEL1_BYTES = 16 * 1024 * 1024;
const MAX_TRACKS_BYTES = 64 * 1024;
const MAX_EBML_HEADER_BYTES = 4096;

const hex = (id: number): string => `0x${id.toString(16).toUpperCase()}`;

/**
 * Follows the element structure of one WebM stream chunk by chunk (the split points may be anywhere) and reports the
 * first structural corruption: an invalid or unexpected element id, an implausible size, a block for a track that is
 * not declared in Tracks. ffmpeg's Matroska demuxer silently resynchronises over garbage (or waits for the end of
 * a bogus giant element) and only complains at the end of input, so this is what detects a corrupted stream while
 * the session is running. It allocates nothing per block and keeps at most one element header (or the Tracks
 * element, <= 64 KiB) buffered.
 */
export class WebmStreamChecker {
  private pending: Buffer = Buffer.alloc(0);
  private skip = 0;
  /** Absolute stream offset of the next byte passed to push(). */
  private received = 0;
  private stack: Array<{ id: number; end: number | null }> = [];
  private tracks: Set<number> | null = null;
  private failure: string | null = null;
  /** Timestamp of the Cluster open now (its Timecode element, in timecode units), once read. */
  private clusterTc: number | undefined;

  /**
   * Where the stream stands after the bytes pushed so far, so that another decoder can take it up (a session taken
   * over by another instance, see src/services/audio/webm-resume.ts): the bytes of an element begun but not yet
   * complete (`pending`: Chromium ends every chunk with the id byte of the next SimpleBlock), whether the next
   * chunk starts inside an element body (`midBody`: its first bytes cannot be placed), and whether the stream is
   * inside a Cluster.
   */
  resumePoint(): { pending: Buffer; midBody: boolean; inCluster: boolean; clusterTc?: number } {
    const inCluster = this.stack.some((e) => e.id === ID_CLUSTER);
    return {
      pending: Buffer.from(this.pending),
      midBody: this.skip > 0,
      inCluster,
      ...(inCluster && this.clusterTc !== undefined ? { clusterTc: this.clusterTc } : {}),
    };
  }

  /** Checks the next bytes of the stream. After a failure, every call fails. */
  push(chunk: Uint8Array): WebmCheckResult {
    if (this.failure) return { ok: false, validBytes: 0, reason: this.failure };
    const chunkStart = this.received;
    this.received += chunk.length;
    let i = 0;
    if (this.skip > 0) {
      i = Math.min(this.skip, chunk.length);
      this.skip -= i;
      if (i === chunk.length) return { ok: true };
    }
    const rest = Buffer.from(chunk.buffer, chunk.byteOffset + i, chunk.length - i);
    const buf = this.pending.length ? Buffer.concat([this.pending, rest]) : rest;
    const bufStart = chunkStart + i - this.pending.length;
    this.pending = Buffer.alloc(0);
    const fail = (p: number, reason: string): WebmCheckResult => {
      const at = bufStart + p;
      this.failure = `${reason} at byte ${at}`;
      return { ok: false, validBytes: Math.max(0, Math.min(chunk.length, at - chunkStart)), reason: this.failure };
    };

    let p = 0;
    for (;;) {
      const abs = bufStart + p;
      while (this.stack.length) {
        const top = this.stack[this.stack.length - 1]!;
        if (top.end === null || abs < top.end) break;
        if (abs > top.end) return fail(p, `element overruns its parent ${hex(top.id)}`);
        this.stack.pop();
      }
      if (p >= buf.length) break;
      const id = readVint(buf, p, true);
      if (id === undefined) return fail(p, 'invalid element id');
      const size = id ? readVint(buf, p + id.length, false) : null;
      if (size === undefined) return fail(p, 'invalid element size');
      if (!id || !size) {
        this.pending = Buffer.from(buf.subarray(p));
        break;
      }
      const bodyStart = p + id.length + size.length;
      const parent = this.stack.length ? this.stack[this.stack.length - 1]!.id : 0;

      // A new EBML header inside the stream: a chained stream; start over at the top level.
      if (id.value === ID_EBML && parent !== 0) this.stack = [];
      const ctx = this.stack.length ? this.stack[this.stack.length - 1]!.id : 0;

      let action: 'master' | 'leaf' | 'tracks' | 'block';
      let cap = MAX_LEVEL1_BYTES;
      if (ctx === 0) {
        if (id.value === ID_EBML) {
          action = 'leaf';
          cap = MAX_EBML_HEADER_BYTES;
          this.tracks = null;
        } else if (id.value === ID_SEGMENT) action = 'master';
        else if (id.value === ID_VOID) action = 'leaf';
        else return fail(p, `unexpected element ${hex(id.value)} at the top level`);
      } else if (ctx === ID_SEGMENT) {
        if (id.value === ID_CLUSTER) action = 'master';
        else if (id.value === ID_TRACKS) action = 'tracks';
        else if (SEGMENT_LEAVES.has(id.value)) action = 'leaf';
        else return fail(p, `unexpected element ${hex(id.value)} in the Segment`);
      } else {
        // Inside a Cluster.
        if (id.value === ID_SIMPLE_BLOCK) {
          action = 'block';
          cap = MAX_BLOCK_BYTES;
        } else if (id.value === ID_TIMECODE) {
          if (size.value > 8) return fail(p, 'invalid Cluster timestamp');
          action = 'leaf';
        } else if (CLUSTER_LEAVES.has(id.value)) {
          action = 'leaf';
          cap = MAX_BLOCK_BYTES;
        } else if (LEVEL1.has(id.value) && this.stack[this.stack.length - 1]!.end === null) {
          this.stack.pop(); // an unknown-size Cluster ends where the next level-1 element starts
          continue;
        } else return fail(p, `unexpected element ${hex(id.value)} in a Cluster`);
      }

      if (action === 'master') {
        if (size.unknown && id.value !== ID_SEGMENT && id.value !== ID_CLUSTER) return fail(p, 'unknown size');
        if (id.value === ID_CLUSTER) this.clusterTc = undefined;
        this.stack.push({ id: id.value, end: size.unknown ? null : bufStart + bodyStart + size.value });
        p = bodyStart;
        continue;
      }
      if (size.unknown) return fail(p, `element ${hex(id.value)} with unknown size`);
      if (action === 'tracks') cap = MAX_TRACKS_BYTES;
      if (size.value > cap) return fail(p, `element ${hex(id.value)} of ${size.value} bytes is implausibly large`);
      const end = bodyStart + size.value;

      if (action === 'tracks') {
        if (end > buf.length) {
          this.pending = Buffer.from(buf.subarray(p)); // wait for the whole (small) Tracks element
          break;
        }
        const numbers = parseTrackNumbers(buf.subarray(bodyStart, end));
        if (!numbers) return fail(p, 'corrupt Tracks element');
        this.tracks = numbers;
      } else if (id.value === ID_TIMECODE) {
        // The Cluster's timestamp (at most 8 bytes, kept whole when split): where a taker-over resumes the timeline.
        if (end > buf.length) {
          this.pending = Buffer.from(buf.subarray(p));
          break;
        }
        let tc = 0;
        for (let q = bodyStart; q < end; q++) tc = tc * 256 + buf[q]!;
        this.clusterTc = tc;
      } else if (action === 'block') {
        const track = readVint(buf, bodyStart, false);
        if (track === undefined) return fail(p, 'invalid SimpleBlock track number');
        const flagsPos = track ? bodyStart + track.length + 2 : buf.length;
        if (!track || flagsPos >= buf.length) {
          if (flagsPos >= end && track) return fail(p, 'SimpleBlock too short');
          this.pending = Buffer.from(buf.subarray(p)); // need the block's first bytes
          break;
        }
        if (size.value < track.length + 3) return fail(p, 'SimpleBlock too short');
        const known = this.tracks ? this.tracks.has(track.value) : track.value >= 1 && track.value <= 16;
        if (!known) return fail(p, `SimpleBlock for undeclared track ${track.value}`);
        if ((buf[flagsPos]! & 0x70) !== 0) return fail(p, 'SimpleBlock with reserved flag bits set');
      }
      if (end > buf.length) {
        this.skip = end - buf.length;
        break;
      }
      p = end;
    }
    return { ok: true };
  }
}

/** Track numbers declared in a Tracks body, or null when it is not well-formed. */
function parseTrackNumbers(body: Buffer): Set<number> | null {
  const numbers = new Set<number>();
  let p = 0;
  while (p < body.length) {
    const id = readVint(body, p, true);
    const size = id ? readVint(body, p + id.length, false) : id;
    if (!id || !size || size.unknown) return null;
    const start = p + id.length + size.length;
    const end = start + size.value;
    if (end > body.length) return null;
    if (id.value === ID_TRACK_ENTRY) {
      let q = start;
      while (q < end) {
        const cid = readVint(body, q, true);
        const csize = cid ? readVint(body, q + cid.length, false) : cid;
        if (!cid || !csize || csize.unknown) return null;
        const cstart = q + cid.length + csize.length;
        if (cstart + csize.value > end) return null;
        if (cid.value === ID_TRACK_NUMBER && csize.value >= 1 && csize.value <= 8) {
          let v = 0;
          for (let k = 0; k < csize.value; k++) v = v * 256 + body[cstart + k]!;
          numbers.add(v);
        }
        q = cstart + csize.value;
      }
    }
    p = end;
  }
  return numbers.size ? numbers : null;
}

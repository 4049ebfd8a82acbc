import { readVint } from '../ebml';
import { ID_EBML, ID_SEGMENT, ID_INFO, ID_TIMECODE_SCALE, ID_TRACKS, ID_TRACK_ENTRY, ID_TRACK_NUMBER, ID_TRACK_TYPE, ID_CODEC_ID, ID_CODEC_PRIVATE, ID_AUDIO, ID_CHANNELS, ID_CLUSTER, ID_TIMECODE, ID_SIMPLE_BLOCK, ID_BLOCK_GROUP, ID_BLOCK } from '../webm/ebml-ids';

/**
 * Incremental WebM/Matroska demuxer for one Opus audio track: bytes in (split anywhere, down to single bytes),
 * Opus packets out, pulled one at a time (`next()`), so that its owner decides how much work a turn does and input
 * simply stays queued while it does none.
 *
 * What it reads: the EBML header (a new one, even inside a stream, starts a new recording), the Segment (known or
 * unknown size), Info/TimecodeScale, Tracks (the A_OPUS audio track: number, channels, OpusHead pre-skip), Clusters
 * (known or unknown size: an unknown-size one ends at the next level-1 element), their Timecode, SimpleBlocks and
 * BlockGroup/Blocks. A SimpleBlock directly under the Segment (a primed restart whose bytes start in the middle of a
 * Cluster) is read as part of a Cluster whose timecode is not known yet.
 *
 * What it skips without buffering: SeekHead, Cues, Tags, Void, CRC-32, Chapters, Attachments, unknown elements of
 * known size, and the blocks of any other track. Only a bounded element is ever held whole (the EBML header, the
 * Info and Tracks children it reads, one block of the Opus track, each capped), so an element claiming megabytes
 * costs nothing but the skip.
 *
 * Laced blocks are not decoded: neither Chromium nor Firefox nor ffmpeg laces Opus (one packet per block), so a
 * laced block can only be hostile or broken; it is reported as a bad packet (`kind: 'bad'`), like an oversized
 * block, and the owner's bad-packet policy applies to it.
 */

export interface OpusTrack {
  /** The track number its blocks carry. */
  number: number;
  /** Channels of the encoded stream (Audio/Channels, else the OpusHead's), 1 when neither says. */
  channels: number;
  /** OpusHead pre-skip: 48 kHz samples to drop at the start of the recording (0 when there is no OpusHead). */
  preSkip: number;
}

export type DemuxEvent =
  /** A recording's head was read (EBML..Tracks): decoding state belongs to a new stream from here. */
  | { kind: 'head'; track: OpusTrack }
  /** One Opus packet of the audio track; `timeMs`: its block's time on the recording's timeline. */
  | { kind: 'packet'; packet: Buffer; timeMs: number }
  /** A block of the audio track that cannot be decoded (laced, too large, empty): skipped. */
  | { kind: 'bad'; reason: string }
  /** `next`'s element budget was used up before an event: call again (in a later turn). */
  | { kind: 'budget' };

/** The byte stream is not WebM/Opus any more (structure broken, no Opus track): nothing after it is decoded. */
export class WebmDemuxError extends Error {}


/** Level-1 elements: each ends an unknown-size Cluster. */
const LEVEL1 = new Set([ID_CLUSTER, ID_TRACKS, ID_INFO, 0x114d9b74, 0x1254c367, 0x1c53bb6b, 0x1043a770, 0x1941a469]);
/** Masters descended into (by the parent they may appear in). */
const MASTERS_IN: Record<number, ReadonlySet<number>> = {
  [ID_SEGMENT]: new Set([ID_INFO, ID_TRACKS, ID_CLUSTER]),
  [ID_TRACKS]: new Set([ID_TRACK_ENTRY]),
  [ID_TRACK_ENTRY]: new Set([ID_AUDIO]),
  [ID_CLUSTER]: new Set([ID_BLOCK_GROUP]),
};
/** Leaves read whole (small), by the parent they are read in. */
const LEAVES_IN: Record<number, ReadonlySet<number>> = {
  [ID_INFO]: new Set([ID_TIMECODE_SCALE]),
  [ID_TRACK_ENTRY]: new Set([ID_TRACK_NUMBER, ID_TRACK_TYPE, ID_CODEC_ID, ID_CODEC_PRIVATE]),
  [ID_AUDIO]: new Set([ID_CHANNELS]),
  [ID_CLUSTER]: new Set([ID_TIMECODE]),
};

const MAX_EBML_HEADER_BYTES = 4096;
/** Largest head leaf read (CodecPrivate: an OpusHead is 19 bytes, with a channel mapping table at most 276). */
const MAX_HEAD_LEAF_BYTES = 4096;
/** Largest block of the Opus track held to be decoded: a 120 ms Opus packet is at most ~7.7 KB (6 × 1275 + 7). */
export const MAX_OPUS_BLOCK_BYTES = 16 * 1024;

interface Open {
  id: number;
  /** Absolute end offset, or null for an unknown size. */
  end: number | null;
}

interface TrackDraft {
  number?: number;
  type?: number;
  codecId?: string;
  channels?: number;
  opusHead?: { channels: number; preSkip: number };
}

export class WebmOpusDemuxer {
  /** Input not consumed yet: `buf` from `pos`, then `queue`. */
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  /** Absolute offset of `buf[0]` in the stream. */
  private bufStart = 0;
  /** Bytes still to drop (the rest of a skipped element). */
  private skip = 0;
  private stack: Open[] = [];
  private drafts: TrackDraft[] = [];
  private draft: TrackDraft | null = null;
  private track: OpusTrack | null = null;
  private timecodeScaleNs = 1_000_000;
  private clusterTc = 0;
  private failure: WebmDemuxError | null = null;

  /** Bytes handed to `push` and not yet consumed (skips of elements not yet received do not count). */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.queued;
  }

  /** The audio track of the current recording, once its head was read. */
  get audioTrack(): OpusTrack | null {
    return this.track;
  }

  /** Queues bytes (no parsing happens here). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  /**
   * The next event, or null when more input is needed. Reads at most `elementBudget` elements (a stream of tiny
   * elements without audio then returns `budget` instead of being parsed in one go). Throws `WebmDemuxError` when
   * the stream is not (any more) WebM/Opus; every later call throws it again.
   */
  next(elementBudget = Number.POSITIVE_INFINITY): DemuxEvent | null {
    if (this.failure) throw this.failure;
    try {
      const ev = this.step(elementBudget);
      if (ev === null) this.release();
      return ev;
    } catch (err) {
      if (err instanceof WebmDemuxError) this.failure = err;
      throw err;
    }
  }

  // ------------------------------------------------------------------ input

  /** Makes at least `n` bytes available from `pos` (true), or false when the input has fewer. */
  private ensure(n: number): boolean {
    while (this.buf.length - this.pos < n) {
      const more = this.queue.shift();
      if (!more) return false;
      this.queued -= more.length;
      const rest = this.buf.length - this.pos;
      this.bufStart += this.pos;
      this.buf = rest === 0 ? more : Buffer.concat([this.buf.subarray(this.pos), more]);
      this.pos = 0;
    }
    return true;
  }

  /**
   * All input is read (`step` waits for more): keeps a copy of the unread tail, if any, instead of the whole input
   * buffer it belongs to. A stream that waits between chunks then holds no chunk: on a decoding thread, a chunk held
   * across the thread's scavenges was promoted and waited, dead, for a full collection, and tens of MB of them went
   * through glibc's arena, which kept the high-water mark (BENCHMARKS §4.5).
   */
  private release(): void {
    if (this.pos === 0) return; // nothing read: all of it is still needed
    const rest = this.buf.length - this.pos;
    this.bufStart += this.pos;
    this.buf = rest === 0 ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(this.pos));
    this.pos = 0;
  }

  /** Drops bytes of a skipped element, as far as the input goes. */
  private drainSkip(): boolean {
    while (this.skip > 0) {
      const avail = this.buf.length - this.pos;
      if (avail === 0) {
        const more = this.queue.shift();
        if (!more) return false;
        this.queued -= more.length;
        this.bufStart += this.buf.length;
        this.buf = more;
        this.pos = 0;
        continue;
      }
      const n = Math.min(avail, this.skip);
      this.pos += n;
      this.skip -= n;
    }
    return true;
  }

  private get abs(): number {
    return this.bufStart + this.pos;
  }

  // ------------------------------------------------------------------ parsing

  private step(elementBudget: number): DemuxEvent | null {
    for (let n = 0; ; n++) {
      if (n >= elementBudget) return { kind: 'budget' };
      if (!this.drainSkip()) return null;
      const closed = this.closeEnded();
      if (closed) return closed;
      // An element header: id (≤ 4 bytes) + size (≤ 8 bytes); read what the first bytes say it needs.
      if (!this.ensure(1)) return null;
      const id = readVint(this.buf, this.pos, true);
      if (id === undefined) throw new WebmDemuxError(`invalid element id at byte ${this.abs}`);
      if (id === null) {
        if (!this.ensure(this.buf.length - this.pos + 1)) return null;
        continue;
      }
      if (!this.ensure(id.length + 1)) return null;
      const size = readVint(this.buf, this.pos + id.length, false);
      if (size === undefined) throw new WebmDemuxError(`invalid element size at byte ${this.abs}`);
      if (size === null) {
        if (!this.ensure(this.buf.length - this.pos + 1)) return null;
        continue;
      }
      const ev = this.element(id.value, id.length + size.length, size.unknown ? null : size.value);
      if (ev === 'wait') return null;
      if (ev) return ev;
    }
  }

  /** Pops the masters that end here; a Tracks that ends chooses the audio track. */
  private closeEnded(): DemuxEvent | null {
    while (this.stack.length) {
      const top = this.stack[this.stack.length - 1]!;
      if (top.end === null || this.abs < top.end) return null;
      if (this.abs > top.end) throw new WebmDemuxError(`element overruns its parent at byte ${this.abs}`);
      this.stack.pop();
      const ev = this.closed(top.id);
      if (ev) return ev;
    }
    return null;
  }

  private closed(id: number): DemuxEvent | null {
    if (id === ID_TRACK_ENTRY && this.draft) {
      this.drafts.push(this.draft);
      this.draft = null;
    } else if (id === ID_TRACKS) {
      return this.chooseTrack();
    }
    return null;
  }

  private chooseTrack(): DemuxEvent {
    const opus = this.drafts.find((t) => t.codecId === 'A_OPUS' && (t.type === undefined || t.type === 2) && (t.number ?? 0) > 0);
    const codecs = this.drafts.map((t) => t.codecId ?? '(none)').join(', ');
    this.drafts = [];
    if (!opus) throw new WebmDemuxError(`no Opus audio track (${codecs.slice(0, 60) || 'no track'})`);
    this.track = {
      number: opus.number!,
      channels: opus.channels ?? opus.opusHead?.channels ?? 1,
      preSkip: opus.opusHead?.preSkip ?? 0,
    };
    return { kind: 'head', track: this.track };
  }

  /** Handles the element whose header is at `pos`: an event, null (go on) or 'wait' (more input needed). */
  private element(id: number, headerLen: number, size: number | null): DemuxEvent | null | 'wait' {
    let parent = this.stack.length ? this.stack[this.stack.length - 1]!.id : 0;
    // An unknown-size Cluster ends where the next level-1 element (or a new stream) starts.
    if ((LEVEL1.has(id) || id === ID_EBML) && parent === ID_CLUSTER && this.stack[this.stack.length - 1]!.end === null) {
      this.stack.pop();
      return null;
    }
    if (id === ID_EBML) {
      // A new recording (also chained inside one stream): everything starts over at the top level.
      if (size === null || size > MAX_EBML_HEADER_BYTES) throw new WebmDemuxError(`implausible EBML header at byte ${this.abs}`);
      if (!this.ensure(headerLen + size)) return 'wait';
      this.pos += headerLen + size;
      this.stack = [];
      this.drafts = [];
      this.draft = null;
      this.track = null;
      this.timecodeScaleNs = 1_000_000;
      this.clusterTc = 0;
      return null;
    }
    if (parent === 0 && id !== ID_SEGMENT) {
      return this.skipElement(id, headerLen, size);
    }
    if (id === ID_SEGMENT && parent !== 0) throw new WebmDemuxError(`a Segment inside an element at byte ${this.abs}`);
    // A block straight under the Segment: a primed restart that begins in the middle of a Cluster.
    if (parent === ID_SEGMENT && id === ID_SIMPLE_BLOCK) parent = ID_CLUSTER;

    if (id === ID_SEGMENT || MASTERS_IN[parent]?.has(id)) {
      if (size === null && id !== ID_SEGMENT && id !== ID_CLUSTER) throw new WebmDemuxError(`unknown size on element 0x${id.toString(16)}`);
      this.pos += headerLen;
      this.stack.push({ id, end: size === null ? null : this.abs + size });
      if (id === ID_CLUSTER) this.clusterTc = 0;
      if (id === ID_TRACK_ENTRY) this.draft = {};
      if (id === ID_TRACKS) this.drafts = [];
      return null;
    }
    if (size === null) throw new WebmDemuxError(`unknown size on element 0x${id.toString(16)}`);
    if ((id === ID_SIMPLE_BLOCK && parent === ID_CLUSTER) || (id === ID_BLOCK && parent === ID_BLOCK_GROUP)) {
      return this.block(headerLen, size);
    }
    if (LEAVES_IN[parent]?.has(id)) {
      if (size > MAX_HEAD_LEAF_BYTES) return this.skipElement(id, headerLen, size);
      if (!this.ensure(headerLen + size)) return 'wait';
      const body = this.buf.subarray(this.pos + headerLen, this.pos + headerLen + size);
      this.pos += headerLen + size;
      this.leaf(id, body);
      return null;
    }
    return this.skipElement(id, headerLen, size);
  }

  private skipElement(id: number, headerLen: number, size: number | null): null {
    if (size === null) throw new WebmDemuxError(`unknown size on element 0x${id.toString(16)} at byte ${this.abs}`);
    this.pos += headerLen;
    this.skip = size;
    return null;
  }

  private leaf(id: number, body: Buffer): void {
    const t = this.draft;
    switch (id) {
      case ID_TIMECODE_SCALE:
        this.timecodeScaleNs = uint(body) || 1_000_000;
        break;
      case ID_TIMECODE:
        this.clusterTc = uint(body);
        break;
      case ID_TRACK_NUMBER:
        if (t) t.number = uint(body);
        break;
      case ID_TRACK_TYPE:
        if (t) t.type = uint(body);
        break;
      case ID_CODEC_ID:
        if (t) t.codecId = body.toString('latin1').replace(/\0+$/, '');
        break;
      case ID_CODEC_PRIVATE:
        // OpusHead (RFC 7845 §5.1): "OpusHead", version, channel count, pre-skip (LE16), ...
        if (t && body.length >= 19 && body.toString('latin1', 0, 8) === 'OpusHead') {
          t.opusHead = { channels: body[9]!, preSkip: body.readUInt16LE(10) };
        }
        break;
      case ID_CHANNELS:
        if (t) t.channels = uint(body);
        break;
    }
  }

  /** A SimpleBlock or Block of `size` body bytes whose header is at `pos`. */
  private block(headerLen: number, size: number): DemuxEvent | null | 'wait' {
    // The block's own header: track number (a vint), relative timecode (2), flags (1).
    if (size < 4) throw new WebmDemuxError(`corrupt block at byte ${this.abs}`);
    if (!this.ensure(headerLen + 1)) return 'wait';
    const trackLen = vintLength(this.buf[this.pos + headerLen]!);
    if (trackLen === 0 || size < trackLen + 3) throw new WebmDemuxError(`corrupt block at byte ${this.abs}`);
    if (!this.ensure(headerLen + trackLen + 3)) return 'wait';
    const bodyAt = this.pos + headerLen;
    const track = readVint(this.buf, bodyAt, false);
    if (!track || track.unknown) throw new WebmDemuxError(`corrupt block at byte ${this.abs}`);
    if (!this.track || track.value !== this.track.number) return this.skipElement(ID_SIMPLE_BLOCK, headerLen, size);
    const rel = this.buf.readInt16BE(bodyAt + track.length);
    const flags = this.buf[bodyAt + track.length + 2]!;
    const dataLen = size - track.length - 3;
    let bad: string | undefined;
    if (flags & 0x06) bad = 'laced block';
    else if (dataLen > MAX_OPUS_BLOCK_BYTES) bad = `block of ${size} bytes`;
    else if (dataLen === 0) bad = 'empty block';
    if (bad) {
      this.skipElement(ID_SIMPLE_BLOCK, headerLen, size);
      return { kind: 'bad', reason: bad };
    }
    if (!this.ensure(headerLen + size)) return 'wait';
    const at = this.pos + headerLen + track.length + 3; // (ensure may have moved the bytes)
    // A copy: the packet outlives this buffer's next concatenation only as long as the decoder needs it, but
    // subarrays of big input chunks would otherwise pin them.
    const packet = Buffer.from(this.buf.subarray(at, at + dataLen));
    this.pos += headerLen + size;
    const timeMs = ((this.clusterTc + rel) * this.timecodeScaleNs) / 1_000_000;
    return { kind: 'packet', packet, timeMs };
  }
}

/** Length of the vint that starts with `first` (0: invalid). */
function vintLength(first: number): number {
  for (let len = 1, mask = 0x80; len <= 8; len++, mask >>= 1) if (first & mask) return len;
  return 0;
}

function uint(body: Buffer): number {
  let v = 0;
  for (let i = 0; i < body.length && i < 8; i++) v = v * 256 + body[i]!;
  return v;
}

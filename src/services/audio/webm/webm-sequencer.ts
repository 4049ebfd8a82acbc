import { hash } from 'node:crypto';
import { AudioDecodeError } from '../session-audio-decoder';
import { looksLikeWebmContinuation, startsWithEbmlHeader } from '../ebml';
import { parseWebmBody, parseWebmContinuation, type WebmChunkLayout } from './webm-chunk';
import { parseWebmHeader, syntheticCluster, type WebmHeader } from './webm-header';
import { chunkSpan, sameSpotToleranceMs, type ChunkSpan } from './webm-timeline';

/**
 * The per-session reorder buffer of WebM/Opus recordings: puts MediaRecorder chunks back in the order of their own
 * timing (Cluster timecodes and block timecodes), whatever order they arrive in.
 *
 * - A chunk that continues the written stream exactly (its first block starts where the last written block ends,
 *   within less than one frame) is written at once: in-order streams are never delayed.
 * - A chunk that starts later waits (bounded by `waitMs` from its arrival and by `maxBytes` for all waiting chunks)
 *   for the chunks before it; when they come it is written right after them. A gap that never fills is skipped when
 *   the wait is over (or the bytes bound is hit): the lost milliseconds are counted and decoding goes on.
 * - A chunk seen before (same bytes: a retried request) is dropped. A chunk that falls into a gap already skipped,
 *   or continues the previous recording after a new one started, is dropped as late.
 * - A chunk that belongs to no written stream (before any header, or a recording whose header has not arrived)
 *   waits for its header; if none comes within the wait, it is refused (`AUDIO_STREAM_NO_HEADER`) when the session
 *   never had a header, else dropped as late.
 * - A chunk that does not start at a frame boundary (a stream cut at arbitrary offsets) cannot be placed: it is
 *   written in arrival order, and the next chunk that can be placed anchors the timing again.
 *
 * The bytes written for an in-order stream are exactly the bytes received (Chromium's chunk ends with the id of the
 * next block; that id is written together with the chunk that completes it). After a skipped gap the written bytes
 * are completed with what the missing chunk would have carried (the block id, or a Cluster header when the chunk
 * implies one), and every write also says what to write to a freshly primed decoder (`restartBytes`).
 */

export type ChunkOutcome =
  /** Written at once, continuing the stream. */
  | 'in_order'
  /** Waited for an earlier chunk, then written in order. */
  | 'reordered'
  /** Written after the gap before it was skipped. */
  | 'after_gap'
  /** Seen before; dropped. */
  | 'duplicate'
  /** Its place in the stream was already skipped or passed; dropped. */
  | 'late'
  /** Cannot be placed by its timing; written in arrival order. */
  | 'arrival_order'
  /** Starts a new recording. */
  | 'new_recording';

export interface RecordingHead {
  /** 1, 2, ... per session. */
  no: number;
  header: WebmHeader;
}

/** One write to the decoder, in stream order. */
export interface SequencedWrite {
  recording: RecordingHead;
  /** The write begins a recording: the decoder ends its stream and starts a new one with these bytes. */
  startsRecording: boolean;
  /**
   * The write is a head that primes a fresh decoder where another instance's stood (a takeover): the recording
   * began there, so the new stream continues it (its OpusHead pre-skip was dropped there, not again here).
   */
  resumesStream?: boolean;
  /** What to write when the decoder's stream holds everything written before. */
  bytes: Buffer;
  /** What to write after `recording.header.primer` to a decoder started afresh (undefined: not possible). */
  restartBytes: Buffer | undefined;
  /** Audio blocks in the write (0: the decoder owes no output for it). */
  blocks: number;
  /** Audio the write holds, ms (undefined when its timing could not be read). */
  durationMs: number | undefined;
}

export interface ReorderStats {
  /** Chunks that arrived before an earlier one and waited for it. */
  reordered: number;
  /** Chunks received twice (dropped). */
  duplicates: number;
  /** Gaps skipped after the wait (missing chunks). */
  skipped: number;
  /** Audio lost in skipped gaps, ms. */
  lostMs: number;
  /** Chunks that arrived after their place was skipped or passed (dropped). */
  late: number;
  /** Chunks written in arrival order because their timing could not be read. */
  unplaced: number;
  /** Chunks waiting now. */
  waiting: number;
  /** Bytes waiting now. */
  waitingBytes: number;
}

export type ReorderEvent =
  | { kind: 'reordered' }
  | { kind: 'duplicate' }
  | { kind: 'skipped'; lostMs: number }
  | { kind: 'late' }
  | { kind: 'unplaced' };

export interface WebmSequencerOptions {
  /** Longest wait of an early chunk for the chunks before it (ms). */
  waitMs: number;
  /** Most bytes held in waiting chunks; beyond it the oldest gap is skipped at once. */
  maxBytes: number;
  /** Writes to the decoder, in stream order; resolves when the decoder took the bytes. */
  write: (w: SequencedWrite) => Promise<void>;
  onEvent?: (e: ReorderEvent) => void;
  now?: () => number;
}

interface RecState {
  head: RecordingHead;
  msPerTc: number;
  /** Cluster open at the end of the written stream. */
  clusterTc: number | undefined;
  /** Where the next block is expected (ms); undefined after an unplaced write (the next placeable chunk anchors). */
  endMs: number | undefined;
  lastFrameMs: number;
  /** Skipped gaps [from, to) in ms (the latest few). */
  gaps: Array<[number, number]>;
  /** The incomplete element that ended the last written chunk (its next chunk completes it). */
  tail: Buffer;
  /** The last write was a chunk in arrival order: whatever it ended with, its successor goes on byte for byte. */
  afterUnplaced: boolean;
  /** When a newer recording replaced it. */
  endedAt?: number;
}

interface Waiting {
  chunk: Buffer;
  layout: WebmChunkLayout;
  fingerprint: string;
  arrivedAt: number;
  resolve: (o: ChunkOutcome) => void;
  reject: (e: unknown) => void;
}

const FINGERPRINTS = 64;
const MAX_GAPS = 16;

export class WebmSequencer {
  private rec: RecState | undefined;
  private prev: RecState | undefined;
  private recordings = 0;
  private readonly waiting: Waiting[] = [];
  private waitingBytes = 0;
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly counts = { reordered: 0, duplicates: 0, skipped: 0, lostMs: 0, late: 0, unplaced: 0 };

  constructor(private readonly o: WebmSequencerOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** A recording's head was seen in this session. */
  get hasRecording(): boolean {
    return this.recordings > 0;
  }

  /** The current recording (the decoder primes restarts with its header). */
  get current(): RecordingHead | undefined {
    return this.rec?.head;
  }

  stats(): ReorderStats {
    return { ...this.counts, lostMs: Math.round(this.counts.lostMs), waiting: this.waiting.length, waitingBytes: this.waitingBytes };
  }

  /**
   * Takes one WebM chunk. Throws `AudioDecodeError` at once for a chunk refused up front (a head with another codec:
   * `AUDIO_UNSUPPORTED_CODEC`; an incomplete or corrupt head; bytes that are no WebM at all). Resolves with where the
   * chunk went once it was written or dropped; rejects with `AUDIO_STREAM_NO_HEADER` when no head came for it.
   */
  submit(chunk: Buffer, opts: { resumesStream?: boolean } = {}): Promise<ChunkOutcome> {
    if (this.closed) return Promise.reject(new AudioDecodeError('AUDIO_INVALID', 'Session has ended'));
    if (startsWithEbmlHeader(chunk)) return this.submitHead(chunk, opts.resumesStream === true);
    const fingerprint = fingerprintOf(chunk);
    if (this.seen.has(fingerprint)) return this.drop('duplicate');
    const layout = parseWebmContinuation(chunk, { audioTrack: this.rec?.head.header.audioTrack });
    if (!layout) {
      if (!this.rec) {
        if (looksLikeWebmContinuation(chunk)) throw noHeader();
        throw new AudioDecodeError(
          'AUDIO_INVALID',
          'Audio data is not a WebM stream (no EBML header and no WebM continuation data); send audio/webm from MediaRecorder, or use format wav/pcm',
        );
      }
      this.remember(fingerprint);
      this.count('unplaced');
      return this.writeUnplaced(this.rec, chunk).then(() => 'arrival_order' as const);
    }
    this.remember(fingerprint);
    return new Promise<ChunkOutcome>((resolve, reject) => {
      const w: Waiting = { chunk, layout, fingerprint, arrivedAt: this.now(), resolve, reject };
      if (!this.place(w, false)) {
        this.hold(w);
      } else if (this.rec && this.waiting.length) {
        // It may have filled a gap: the chunks waiting behind it follow now.
        this.drain(this.rec);
        this.armTimer();
      }
    });
  }

  /** Writes every waiting chunk that belongs to the current recording, skipping its gaps (before a format change). */
  flush(): void {
    if (this.rec) this.skipAll(this.rec);
  }

  /** Forgets where the stream is: the next chunk that can be placed is written at once (after a cut stream). */
  resync(): void {
    if (this.rec) {
      this.flush();
      this.rec.endMs = undefined;
      this.rec.tail = Buffer.alloc(0);
      this.rec.afterUnplaced = false;
    }
  }

  /** Drops everything waiting (their requests answer `late`) and stops the timer. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.waiting.splice(0)) w.resolve('late');
    this.waitingBytes = 0;
  }

  // ------------------------------------------------------------------ heads

  /**
   * `resumes`: the head primes a fresh decoder where another instance's stood (`webmPrimingBytes`): it holds no
   * audio and its Cluster's start is not where the stream stands (somewhere after it). Only the Cluster is kept; the
   * next chunk that can be placed anchors the timing and is written at once (waiting for the chunks the dead
   * instance took with it would only hold the live audio back: they never come).
   */
  private submitHead(chunk: Buffer, resumes = false): Promise<ChunkOutcome> {
    const fingerprint = fingerprintOf(chunk);
    if (this.seen.has(fingerprint)) return this.drop('duplicate');
    const parsed = parseWebmHeader(chunk);
    if (parsed.kind === 'unsupported_codec') {
      throw new AudioDecodeError(
        'AUDIO_UNSUPPORTED_CODEC',
        `Unsupported codec in WebM/Matroska audio (${parsed.codecs.map((c) => c.slice(0, 24)).join(', ') || 'no track'}): only one Opus (A_OPUS) audio track is accepted`,
      );
    }
    if (parsed.kind === 'incomplete') {
      throw new AudioDecodeError(
        'AUDIO_INVALID',
        'The first chunk of a WebM recording must hold its whole head (EBML header, Segment, Info and Tracks)',
      );
    }
    if (parsed.kind === 'invalid') throw new AudioDecodeError('AUDIO_INVALID', `Invalid WebM header: ${parsed.reason}`);
    const header = parsed.header;
    // Retries repeat a chunk within seconds: a new recording starts a new memory of what was seen.
    this.seen.clear();
    this.seenOrder.length = 0;
    this.remember(fingerprint);

    const head: RecordingHead = { no: ++this.recordings, header };
    const rec: RecState = {
      head,
      msPerTc: header.timecodeScaleNs / 1e6,
      clusterTc: undefined,
      endMs: undefined,
      lastFrameMs: 0,
      gaps: [],
      tail: Buffer.alloc(0),
      afterUnplaced: false,
    };
    const body = chunk.subarray(header.bodyOffset);
    const layout = parseWebmBody(body, { audioTrack: header.audioTrack });
    let complete = chunk.length;
    let durationMs: number | undefined;
    if (layout) {
      complete = header.bodyOffset + layout.completeBytes;
      rec.tail = Buffer.from(chunk.subarray(complete));
      const span = chunkSpan(layout, { msPerTc: rec.msPerTc, clusterTc: undefined, toleranceMs: 2 });
      if (span && resumes && layout.blockCount === 0) {
        rec.clusterTc = span.endClusterTc;
        durationMs = 0;
      } else if (span) {
        rec.endMs = span.endMs;
        rec.lastFrameMs = span.lastFrameMs;
        rec.clusterTc = span.endClusterTc;
        durationMs = span.endMs - span.startMs;
      } else if (layout.blockCount === 0) {
        durationMs = 0;
      }
    }

    // Chunks waiting that continue this head (they overtook it) are this recording's; the rest waited for the
    // recording before it, which is over: they are written there now (its gaps skipped).
    const claimed = this.claimContinuations(rec);
    const old = this.rec;
    if (old) {
      this.skipAll(old);
      old.endedAt = this.now();
      this.prev = old;
    }
    this.rec = rec;
    for (const w of claimed) {
      this.waiting.push(w);
      this.waitingBytes += w.chunk.length;
    }
    const bytes = chunk.subarray(0, complete);
    const written = this.o.write({
      recording: head,
      startsRecording: true,
      ...(resumes ? { resumesStream: true } : {}),
      bytes,
      restartBytes: chunk.subarray(header.bodyOffset, complete),
      blocks: layout?.blockCount ?? 1,
      durationMs,
    });
    // Chunks that waited for this head (or arrived early for it) are placed now.
    this.drain(rec);
    this.armTimer();
    return written.then(() => 'new_recording' as const);
  }

  /**
   * Takes out of the waiting list the chunks that continue `rec`'s written stream one after the other (judged on a
   * copy of its state): chunks of a new recording that arrived before its head.
   */
  private claimContinuations(rec: RecState): Waiting[] {
    const claimed: Waiting[] = [];
    if (rec.endMs === undefined) return claimed;
    const probe = { ...rec };
    for (let found = true; found; ) {
      found = false;
      for (const w of this.waiting) {
        const span = this.spanIn(probe, w.layout);
        if (!span || Math.abs(span.startMs - probe.endMs!) > sameSpotToleranceMs(probe.lastFrameMs, span.firstFrameMs)) continue;
        this.unwait(w);
        claimed.push(w);
        probe.endMs = span.endMs;
        probe.lastFrameMs = span.lastFrameMs;
        probe.clusterTc = span.endClusterTc ?? probe.clusterTc;
        found = true;
        break;
      }
    }
    return claimed;
  }

  // ------------------------------------------------------------------ placement

  /**
   * Places a chunk if its spot is known now: written (in order), or dropped (late). Returns false when it must wait.
   * `waited`: it was waiting before (for the stats).
   */
  private place(w: Waiting, waited: boolean): boolean {
    const rec = this.rec;
    if (!rec) return false;
    const span = this.spanIn(rec, w.layout);
    if (!span) {
      // No Cluster anchors its leading blocks (the stream's is unknown after an unplaced write): arrival order.
      this.count('unplaced');
      this.settle(w, this.writeUnplaced(rec, w.chunk).then(() => 'arrival_order' as const));
      return true;
    }
    if (rec.endMs === undefined) {
      this.writeChunk(rec, w, span, false, waited ? 'reordered' : 'in_order');
      return true;
    }
    const tol = sameSpotToleranceMs(rec.lastFrameMs, span.firstFrameMs);
    const d = span.startMs - rec.endMs;
    if (Math.abs(d) <= tol) {
      if (waited) this.count('reordered');
      this.writeChunk(rec, w, span, false, waited ? 'reordered' : 'in_order');
      return true;
    }
    // A straggler of the recording before this one.
    if (this.isStraggler(w.layout)) return this.late(w);
    if (d > tol) return false; // early: wait for the chunks before it
    if (rec.gaps.some(([from, to]) => span.startMs >= from - tol && span.endMs <= to + tol)) return this.late(w);
    // Behind the stream, but its span was written already: not this recording's (a newer one whose head is late).
    return false;
  }

  private isStraggler(layout: WebmChunkLayout): boolean {
    const p = this.prev;
    // A replaced recording claims its stragglers for a short while only (they were posted before the new head).
    const window = Math.max(3000, 2 * this.o.waitMs);
    if (!p || p.endMs === undefined || p.endedAt === undefined || this.now() - p.endedAt > window) return false;
    const span = this.spanIn(p, layout);
    if (!span) return false;
    const tol = sameSpotToleranceMs(p.lastFrameMs, span.firstFrameMs);
    if (Math.abs(span.startMs - p.endMs) <= tol) return true;
    return p.gaps.some(([from, to]) => span.startMs >= from - tol && span.endMs <= to + tol);
  }

  private spanIn(rec: RecState, layout: WebmChunkLayout): ChunkSpan | undefined {
    return chunkSpan(layout, { msPerTc: rec.msPerTc, clusterTc: rec.clusterTc, toleranceMs: Math.max(2, rec.lastFrameMs - 1) });
  }

  private late(w: Waiting): true {
    this.count('late');
    w.resolve('late');
    return true;
  }

  private hold(w: Waiting): void {
    this.waiting.push(w);
    this.waitingBytes += w.chunk.length;
    // Too much held: give up on the gaps now, then on chunks without a place.
    while (this.waitingBytes > this.o.maxBytes && this.rec && this.skipGap(this.rec)) {
      /* skip the next gap */
    }
    if (this.waitingBytes > this.o.maxBytes) this.dropExpiredOrphans(true);
    this.armTimer();
  }

  /** Writes waiting chunks that now continue the stream, as long as there are such. */
  private drain(rec: RecState): void {
    for (let progress = true; progress; ) {
      progress = false;
      for (const w of [...this.waiting]) {
        if (this.rec !== rec) return;
        if (!this.waiting.includes(w)) continue;
        this.unwait(w);
        if (this.place(w, true)) {
          progress = true;
        } else {
          this.waiting.push(w);
          this.waitingBytes += w.chunk.length;
        }
      }
    }
  }

  /** Skips the gap before the earliest waiting chunk of the recording (the one that starts first). Returns false if none. */
  private skipGap(rec: RecState): boolean {
    if (rec.endMs === undefined) return false;
    let best: { w: Waiting; span: ChunkSpan } | undefined;
    for (const w of this.waiting) {
      const span = this.spanIn(rec, w.layout);
      if (!span || span.startMs <= rec.endMs) continue;
      if (!best || span.startMs < best.span.startMs) best = { w, span };
    }
    if (!best) return false;
    const lost = best.span.startMs - rec.endMs;
    rec.gaps.push([rec.endMs, best.span.startMs]);
    if (rec.gaps.length > MAX_GAPS) rec.gaps.shift();
    this.counts.skipped++;
    this.counts.lostMs += lost;
    this.o.onEvent?.({ kind: 'skipped', lostMs: lost });
    this.unwait(best.w);
    this.writeChunk(rec, best.w, best.span, true, 'after_gap');
    this.drain(rec);
    return true;
  }

  private skipAll(rec: RecState): void {
    while (this.skipGap(rec)) {
      /* until no waiting chunk lies ahead */
    }
  }

  private unwait(w: Waiting): void {
    const i = this.waiting.indexOf(w);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      this.waitingBytes -= w.chunk.length;
    }
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || this.waiting.length === 0) return;
    const oldest = Math.min(...this.waiting.map((w) => w.arrivedAt));
    const delay = Math.max(0, oldest + this.o.waitMs - this.now());
    this.timer = setTimeout(() => this.onTimer(), Math.ceil(delay));
    this.timer.unref?.();
  }

  private onTimer(): void {
    this.timer = undefined;
    const rec = this.rec;
    const now = this.now();
    // Gaps: skip while the earliest-arrived chunk waiting ahead of the stream has waited long enough.
    if (rec) {
      for (;;) {
        const ahead = this.waiting.filter((w) => {
          const span = this.spanIn(rec, w.layout);
          return span && rec.endMs !== undefined && span.startMs > rec.endMs;
        });
        if (!ahead.length || Math.min(...ahead.map((w) => w.arrivedAt)) + this.o.waitMs > now + 1) break;
        if (!this.skipGap(rec)) break;
      }
    }
    this.dropExpiredOrphans(false);
    this.armTimer();
  }

  /** Chunks that waited out their time without a place: refused (no head ever) or dropped as late. */
  private dropExpiredOrphans(all: boolean): void {
    const now = this.now();
    for (const w of [...this.waiting]) {
      if (!all && w.arrivedAt + this.o.waitMs > now + 1) continue;
      if (this.rec) {
        const span = this.spanIn(this.rec, w.layout);
        if (span && this.rec.endMs !== undefined && span.startMs > this.rec.endMs) continue; // a gap skip handles it
      }
      this.unwait(w);
      // A refused or dropped chunk may be sent again (e.g. after its head): it is no duplicate then.
      this.forget(w.fingerprint);
      if (!this.hasRecording) {
        w.reject(noHeader());
      } else {
        this.count('late');
        w.resolve('late');
      }
    }
  }

  // ------------------------------------------------------------------ writing

  /**
   * Writes a placed chunk. In order (`afterGap` false), the incomplete element that ended the previous chunk is
   * written with it, so the bytes are exactly the recording's; after a gap, the chunk is completed from its own
   * layout (and a Cluster header when its leading blocks belong to a Cluster the stream has not seen).
   */
  private writeChunk(rec: RecState, w: Waiting, span: ChunkSpan, afterGap: boolean, outcome: ChunkOutcome): void {
    const body = w.chunk.subarray(0, w.layout.completeBytes);
    const leadingNeedsCluster =
      w.layout.leading !== undefined && span.leadingClusterTc !== undefined && span.leadingClusterTc !== rec.clusterTc;
    const implied = w.layout.start === 'element' ? Buffer.alloc(0) : w.layout.impliedPrefix;
    let prefix: Buffer;
    if (leadingNeedsCluster) prefix = Buffer.concat([syntheticCluster(span.leadingClusterTc!), implied]);
    else if (rec.afterUnplaced) prefix = Buffer.alloc(0);
    else if (afterGap || rec.endMs === undefined || w.layout.start === 'element') prefix = implied;
    else prefix = rec.tail.length ? rec.tail : implied;
    rec.afterUnplaced = false;
    const restartPrefix =
      w.layout.leading !== undefined && span.leadingClusterTc !== undefined
        ? Buffer.concat([syntheticCluster(span.leadingClusterTc), implied])
        : implied;
    rec.tail = Buffer.from(w.chunk.subarray(w.layout.completeBytes));
    rec.endMs = span.endMs;
    rec.lastFrameMs = span.lastFrameMs;
    rec.clusterTc = span.endClusterTc ?? rec.clusterTc;
    const bytes = prefix.length ? Buffer.concat([prefix, body]) : body;
    const written = this.o.write({
      recording: rec.head,
      startsRecording: false,
      bytes,
      // One copy of the body, not two, when both forms have the same prefix (in order, the previous chunk's tail is
      // what the chunk implies: Chromium's chunks start after a SimpleBlock id, and both prefixes are that byte).
      restartBytes: restartPrefix.equals(prefix) ? bytes : restartPrefix.length ? Buffer.concat([restartPrefix, body]) : body,
      blocks: w.layout.blockCount,
      durationMs: span.endMs - span.startMs,
    });
    this.settle(w, written.then(() => outcome));
  }

  private writeUnplaced(rec: RecState, chunk: Buffer): Promise<void> {
    const bytes = rec.tail.length && !rec.afterUnplaced ? Buffer.concat([rec.tail, chunk]) : chunk;
    rec.tail = Buffer.alloc(0);
    rec.endMs = undefined;
    rec.afterUnplaced = true;
    return this.o.write({ recording: rec.head, startsRecording: false, bytes, restartBytes: undefined, blocks: 1, durationMs: undefined });
  }

  private settle(w: Waiting, p: Promise<ChunkOutcome>): void {
    p.then(w.resolve, w.reject);
  }

  private drop(outcome: 'duplicate'): Promise<ChunkOutcome> {
    this.count('duplicate');
    return Promise.resolve(outcome);
  }

  private count(kind: 'reordered' | 'duplicate' | 'late' | 'unplaced'): void {
    if (kind === 'duplicate') this.counts.duplicates++;
    else this.counts[kind]++;
    this.o.onEvent?.({ kind });
  }

  private forget(fp: string): void {
    this.seen.delete(fp);
    const i = this.seenOrder.indexOf(fp);
    if (i >= 0) this.seenOrder.splice(i, 1);
  }

  private remember(fp: string): void {
    this.seen.add(fp);
    this.seenOrder.push(fp);
    if (this.seenOrder.length > FINGERPRINTS) this.seen.delete(this.seenOrder.shift()!);
  }
}

/** (`crypto.hash`, one call: half the cost of a Hash object for a 16 KB chunk, and this runs for every chunk.) */
function fingerprintOf(chunk: Buffer): string {
  return hash('sha1', chunk, 'base64');
}

function noHeader(): AudioDecodeError {
  return new AudioDecodeError(
    'AUDIO_STREAM_NO_HEADER',
    'Audio chunk is a continuation of a WebM stream whose first chunk (with the header) was not received; start a new recording',
  );
}

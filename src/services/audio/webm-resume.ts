import { readVint, startsWithEbmlHeader, WebmStreamChecker } from './ebml';
import { syntheticCluster } from './webm/webm-header';
import { ID_EBML, ID_SEGMENT, ID_CLUSTER } from './webm/ebml-ids';

/** Largest init segment kept (EBML header, Segment header, Info, Tracks, SeekHead…); MediaRecorder's is ~150 bytes. */
export const MAX_INIT_SEGMENT_BYTES = 64 * 1024;

/** Where a running MediaRecorder WebM stream stands after its last accepted chunk (`WebmStreamChecker.resumePoint`). */
export interface WebmResumePoint {
  /** Bytes of an element begun in the last chunk and not complete (usually the 1-byte SimpleBlock id). */
  pending: Buffer;
  /** The next chunk starts inside an element body: its bytes up to the next element are lost. */
  midBody: boolean;
  /** The stream is inside a Cluster. */
  inCluster: boolean;
  /** That Cluster's timestamp (timecode units), when read: the primed decoder's timeline goes on from it. */
  clusterTc?: number;
}

/**
 * The init segment of a WebM stream: everything before its first Cluster (EBML header, Segment header with
 * unknown size, Info, Tracks). Undefined when `firstChunk` does not start a WebM stream or its first Cluster is not
 * within it (or beyond `MAX_INIT_SEGMENT_BYTES`).
 */
export function webmInitSegment(firstChunk: Buffer): Buffer | undefined {
  if (!startsWithEbmlHeader(firstChunk)) return undefined;
  const limit = Math.min(firstChunk.length, MAX_INIT_SEGMENT_BYTES);
  let p = 0;
  let inSegment = false;
  while (p < limit) {
    const id = readVint(firstChunk, p, true);
    const size = id ? readVint(firstChunk, p + id.length, false) : id;
    if (!id || !size) return undefined;
    const bodyStart = p + id.length + size.length;
    if (!inSegment) {
      if (id.value === ID_EBML && !size.unknown) p = bodyStart + size.value;
      else if (id.value === ID_SEGMENT) {
        inSegment = true;
        p = bodyStart;
      } else return undefined;
      continue;
    }
    if (id.value === ID_CLUSTER) return Buffer.from(firstChunk.subarray(0, p));
    if (size.unknown) return undefined;
    p = bodyStart + size.value;
  }
  return undefined;
}

/**
 * The bytes that put a fresh decoder where the old one stood, so that the next continuation chunk decodes: the
 * stored init segment, a Cluster header when the stream was inside one (with that Cluster's timestamp, so the next
 * chunk's blocks sit where they belong on the recording's timeline, not seconds "ahead" of a Cluster at 0), and
 * the element the last chunk began. Write them to a new decoder (they start with an EBML header, so it starts a
 * new stream; write them as `resumesStream`), then the chunk.
 */
export function webmPrimingBytes(initSegment: Buffer, point: WebmResumePoint): Buffer {
  return Buffer.concat([initSegment, point.inCluster ? syntheticCluster(point.clusterTc ?? 0) : Buffer.alloc(0), point.midBody ? Buffer.alloc(0) : point.pending]);
}

/**
 * Follows one client's MediaRecorder stream as an owner accepts its chunks and says what a session record must
 * hold for another instance to take the stream up: the init segment (once) and the resume point (after every chunk;
 * a few bytes).
 */
export class WebmResumeTracker {
  private checker = new WebmStreamChecker();
  private init: Buffer | undefined;

  /** Feeds an accepted chunk (a chunk that starts a new stream resets the tracker). False once the stream is corrupt. */
  push(chunk: Buffer): boolean {
    if (startsWithEbmlHeader(chunk)) {
      this.checker = new WebmStreamChecker();
      this.init = webmInitSegment(chunk);
    }
    return this.checker.push(chunk).ok;
  }

  get initSegment(): Buffer | undefined {
    return this.init;
  }

  resumePoint(): WebmResumePoint {
    return this.checker.resumePoint();
  }
}

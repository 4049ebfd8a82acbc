import type { WebmChunkLayout } from './webm-chunk';

/**
 * Where a chunk sits in its recording's time, given what the stream written so far says (the Cluster open at its
 * end). All positions in ms from the recording's start.
 */
export interface ChunkSpan {
  startMs: number;
  endMs: number;
  /** Duration of the chunk's first block (the smallest piece a missing chunk could hold). */
  firstFrameMs: number;
  /** Duration of its last block. */
  lastFrameMs: number;
  /** Timecode of the Cluster its leading blocks belong to (undefined when it starts with a Cluster). */
  leadingClusterTc: number | undefined;
  /** Timecode of the Cluster open at its end. */
  endClusterTc: number | undefined;
}

/** What the recording's written stream says about the Cluster open at its end. */
export interface TimelineContext {
  /** ms per timecode unit. */
  msPerTc: number;
  /** Timecode of the Cluster open at the end of the written stream (undefined: not known). */
  clusterTc: number | undefined;
  /** Largest disagreement (ms) between the stream's Cluster and one inferred from the chunk that is still "the same". */
  toleranceMs: number;
}

/**
 * The chunk's span. Leading blocks (before the chunk's first Cluster) belong to the Cluster open before it: the
 * stream's own, unless the chunk's first Cluster says otherwise (a Cluster it implies started in a chunk not yet
 * written; its start is where the leading blocks end). Undefined when nothing anchors the leading blocks.
 */
export function chunkSpan(layout: WebmChunkLayout, ctx: TimelineContext): ChunkSpan | undefined {
  const s = ctx.msPerTc;
  let leadingClusterTc: number | undefined;
  let startMs: number;
  let firstFrameMs: number;
  if (layout.leading) {
    const { first, last } = layout.leading;
    const next = layout.clusters.find((c) => !Number.isNaN(c.timecode));
    const inferred = next ? next.timecode - (last.relTc + last.durationMs / s) : undefined;
    if (ctx.clusterTc !== undefined && (inferred === undefined || Math.abs(inferred - ctx.clusterTc) * s <= ctx.toleranceMs)) {
      leadingClusterTc = ctx.clusterTc;
    } else if (inferred !== undefined) {
      leadingClusterTc = Math.round(inferred);
    } else {
      return undefined;
    }
    startMs = (leadingClusterTc + first.relTc) * s;
    firstFrameMs = first.durationMs;
  } else {
    const c = layout.clusters[0];
    if (!c || Number.isNaN(c.timecode)) return undefined;
    const b = c.blocks?.first;
    startMs = (c.timecode + (b?.relTc ?? 0)) * s;
    firstFrameMs = b?.durationMs ?? 0;
  }
  let endMs = startMs;
  let lastFrameMs = firstFrameMs;
  let endClusterTc = leadingClusterTc;
  if (layout.leading) {
    const last = layout.leading.last;
    endMs = (leadingClusterTc! + last.relTc) * s + last.durationMs;
    lastFrameMs = last.durationMs;
  }
  for (const c of layout.clusters) {
    if (Number.isNaN(c.timecode)) continue;
    endClusterTc = c.timecode;
    const last = c.blocks?.last;
    if (last) {
      endMs = (c.timecode + last.relTc) * s + last.durationMs;
      lastFrameMs = last.durationMs;
    } else {
      endMs = Math.max(endMs, c.timecode * s);
    }
  }
  return { startMs, endMs, firstFrameMs, lastFrameMs, leadingClusterTc, endClusterTc };
}

/**
 * How far apart two positions may be and still be "the same": less than one frame (a missing chunk holds at least
 * one block, so a real gap is at least a frame long), at least 2 ms (timecodes are rounded to whole units).
 */
export function sameSpotToleranceMs(frameMsA: number, frameMsB: number): number {
  const frame = Math.min(frameMsA || Infinity, frameMsB || Infinity);
  return Number.isFinite(frame) ? Math.max(2, frame - 1) : 2;
}

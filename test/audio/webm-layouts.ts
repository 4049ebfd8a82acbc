/**
 * Other MediaRecorder chunk layouts of the same recorded Opus packets, for the reorder tests:
 * - `oneCluster`: the layout of Chrome's audio-only recorder before Chromium started a Cluster per chunk: one
 *   unknown-size Cluster for the whole recording, chunks cut at block boundaries (each continuation chunk starts
 *   with a SimpleBlock and carries no Cluster, so only its blocks' relative timecodes place it);
 * - `idAtEnd`: the same, but every chunk ends with the id byte of the next block (Chromium's habit).
 * The committed recordings (chromium-*) are the third layout: a Cluster per chunk, the block id at the end.
 */
import { readVint } from '../../src/services/audio/ebml';

interface Element {
  id: number;
  start: number;
  end: number;
}

/** Top-level walk of a whole recording: the head (up to the first Cluster) and every SimpleBlock with its time. */
export function blocksOf(stream: Buffer): { head: Buffer; blocks: Array<{ absMs: number; bytes: Buffer }> } {
  let p = 0;
  let head: Buffer | undefined;
  let cluster = 0;
  const blocks: Array<{ absMs: number; bytes: Buffer }> = [];
  while (p < stream.length) {
    const id = readVint(stream, p, true)!;
    const size = readVint(stream, p + id.length, false)!;
    const body = p + id.length + size.length;
    const el: Element = { id: id.value, start: p, end: size.unknown ? body : body + size.value };
    if (el.id === 0x1f43b675) {
      head ??= stream.subarray(0, p);
      p = body;
      continue;
    }
    if (el.id === 0x18538067) {
      p = body;
      continue;
    }
    if (el.id === 0xe7) {
      let v = 0;
      for (let i = body; i < el.end; i++) v = v * 256 + stream[i]!;
      cluster = v;
    } else if (el.id === 0xa3) {
      const track = readVint(stream, body, false)!;
      blocks.push({ absMs: cluster + stream.readInt16BE(body + track.length), bytes: stream.subarray(el.start, el.end) });
    }
    p = el.end;
  }
  return { head: head!, blocks };
}

function setRelTc(block: Buffer, rel: number): Buffer {
  const b = Buffer.from(block);
  const size = readVint(b, 1, false)!;
  const track = readVint(b, 1 + size.length, false)!;
  b.writeInt16BE(rel, 1 + size.length + track.length);
  return b;
}

/** The recording re-muxed into one Cluster (timecode 0), cut into chunks of `sliceMs` at block boundaries. */
export function oneCluster(stream: Buffer, sliceMs = 1000, idAtEnd = false): Buffer[] {
  const { head, blocks } = blocksOf(stream);
  const cluster = Buffer.from('1f43b67501ffffffffffffffe78100', 'hex');
  const chunks: Buffer[][] = [[head, cluster]];
  for (const b of blocks) {
    const k = Math.floor(b.absMs / sliceMs);
    while (chunks.length <= k) chunks.push([]);
    chunks[k]!.push(setRelTc(b.bytes, b.absMs));
  }
  const out = chunks.filter((c) => c.length).map((c) => Buffer.concat(c));
  if (!idAtEnd) return out;
  // Move each continuation chunk's first byte (the SimpleBlock id) to the end of the chunk before it.
  for (let i = 1; i < out.length; i++) {
    out[i - 1] = Buffer.concat([out[i - 1]!, out[i]!.subarray(0, 1)]);
    out[i] = out[i]!.subarray(1);
  }
  return out;
}

/**
 * Where each chunk of a recording in Chromium's layout (each chunk ends with the id of the next block) sits in time:
 * [startMs, endMs) of its blocks.
 */
export function chunkSpansMs(chunks: Buffer[]): Array<[number, number]> {
  const stream = Buffer.concat(chunks);
  const { blocks } = blocksOf(stream);
  const offsets: number[] = [];
  let o = 0;
  for (const c of chunks) {
    offsets.push(o);
    o += c.length;
  }
  const startOf = (b: Buffer) => b.byteOffset - stream.byteOffset;
  return chunks.map((_c, i) => {
    const from = i === 0 ? 0 : offsets[i]! - 1;
    const to = i + 1 < chunks.length ? offsets[i + 1]! - 1 : stream.length;
    const mine = blocks.filter((b) => startOf(b.bytes) >= from && startOf(b.bytes) < to);
    return [mine[0]!.absMs, mine[mine.length - 1]!.absMs + 60];
  });
}

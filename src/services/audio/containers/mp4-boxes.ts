/**
 * ISO BMFF (MP4) boxes as far as the relay needs them: does a chunk begin a (fragmented) MP4 recording (`ftyp`), is
 * it a continuation fragment (`moof`, `styp`, `sidx`, ...), and is every track AAC (`mp4a` with an MPEG-4/2 AAC
 * object type in its `esds`)? Safari's MediaRecorder writes fragmented MP4/AAC: an `ftyp`+`moov` first, then
 * `moof`+`mdat` fragments.
 */

interface Box {
  type: string;
  /** Offset of the box in its parent buffer. */
  start: number;
  /** Offset of its body. */
  body: number;
  end: number;
}

const FRAGMENT_TYPES = new Set(['moof', 'styp', 'sidx', 'emsg', 'prft', 'mdat', 'free', 'skip']);
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl']);
/** MPEG-4 object types for AAC in an `esds` DecoderConfigDescriptor (MPEG-4 AAC, MPEG-2 AAC Main/LC/SSR). */
const AAC_OBJECT_TYPES = new Set([0x40, 0x66, 0x67, 0x68]);
const MAX_HEAD_BYTES = 1024 * 1024;

/** The box at `pos`: null when `buf` ends inside its header or body, undefined when it is malformed. */
function boxAt(buf: Buffer, pos: number, limit = buf.length): Box | null | undefined {
  if (pos + 8 > limit) return null;
  let size = buf.readUInt32BE(pos);
  const type = buf.subarray(pos + 4, pos + 8).toString('latin1');
  let body = pos + 8;
  if (!/^[\x20-\x7e]{4}$/.test(type)) return undefined;
  if (size === 1) {
    if (pos + 16 > limit) return null;
    const big = buf.readBigUInt64BE(pos + 8);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    size = Number(big);
    body = pos + 16;
  } else if (size === 0) {
    size = limit - pos; // to the end
  }
  if (size < body - pos) return undefined;
  const end = pos + size;
  if (end > limit) return null;
  return { type, start: pos, body, end };
}

function boxTypeAt(buf: Uint8Array, pos: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + pos, 4).toString('latin1');
}

/** The chunk begins an MP4 recording (`ftyp` first). */
export function startsWithFtyp(buf: Uint8Array): boolean {
  return buf.length >= 12 && boxTypeAt(buf, 4) === 'ftyp';
}

/** The chunk is a continuation fragment of a fragmented MP4 (starts with `moof`, `styp`, `sidx`, ...). */
export function startsWithMp4Fragment(buf: Uint8Array): boolean {
  if (buf.length < 8) return false;
  const size = Buffer.from(buf.buffer, buf.byteOffset, 4).readUInt32BE(0);
  return (size === 1 || size >= 8) && FRAGMENT_TYPES.has(boxTypeAt(buf, 4)) && boxTypeAt(buf, 4) !== 'mdat';
}

export type Mp4HeadCheck =
  | {
      kind: 'aac';
      /** `ftyp` + `moov`: what a restarted decoder is primed with. */
      head: Buffer;
      /** Where the first fragment starts in the chunk (after `moov`). */
      bodyOffset: number;
    }
  | { kind: 'unsupported_codec'; codecs: string[] }
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string };

/** Sample entry formats of every `stsd` under `moov` (with the AAC object type of `mp4a` entries). */
function sampleEntries(buf: Buffer, from: number, to: number, out: Array<{ format: string; aac: boolean }>): boolean {
  let p = from;
  while (p < to) {
    const b = boxAt(buf, p, to);
    if (!b) return false;
    if (CONTAINERS.has(b.type)) {
      if (!sampleEntries(buf, b.body, b.end, out)) return false;
    } else if (b.type === 'stsd') {
      // full box: version/flags (4), entry count (4), then sample entries
      let q = b.body + 8;
      while (q < b.end) {
        const e = boxAt(buf, q, b.end);
        if (!e) return false;
        out.push({ format: e.type, aac: e.type === 'mp4a' && esdsIsAac(buf, e) });
        q = e.end;
      }
    }
    p = b.end;
  }
  return true;
}

/** Finds the `esds` inside an `mp4a` sample entry and reads its objectTypeIndication. */
function esdsIsAac(buf: Buffer, entry: Box): boolean {
  // AudioSampleEntry: 8 reserved/index + 8 reserved + 2 channels + 2 size + 4 + 4 rate = 28 bytes, then boxes
  // (QuickTime v1/v2 entries carry 16/36 more bytes; search for the esds box).
  const i = buf.indexOf('esds', entry.body, 'latin1');
  if (i < 0 || i >= entry.end) return false;
  const esds = boxAt(buf, i - 4, entry.end);
  if (!esds) return false;
  // Walk the descriptors: ES_Descriptor (0x03) → DecoderConfigDescriptor (0x04) → objectTypeIndication.
  let p = esds.body + 4;
  const readLen = (): number => {
    let len = 0;
    for (let k = 0; k < 4 && p < esds.end; k++) {
      const b = buf[p++]!;
      len = (len << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return len;
  };
  if (buf[p++] !== 0x03) return false;
  readLen();
  p += 2; // ES_ID
  const flags = buf[p++]!;
  if (flags & 0x80) p += 2;
  if (flags & 0x40) p += 1 + buf[p]!;
  if (flags & 0x20) p += 2;
  if (buf[p++] !== 0x04) return false;
  readLen();
  return p < esds.end && AAC_OBJECT_TYPES.has(buf[p]!);
}

/**
 * Checks the chunk that begins an MP4 recording: `ftyp`, then a complete `moov` (other boxes such as `free` may sit
 * between), every sample entry `mp4a` with an AAC object type. Returns `ftyp`+`moov` as the head.
 */
export function checkMp4Head(buf: Buffer): Mp4HeadCheck {
  const ftyp = boxAt(buf, 0);
  if (ftyp === undefined || (ftyp && ftyp.type !== 'ftyp')) return { kind: 'invalid', reason: 'no ftyp box' };
  if (ftyp === null) return { kind: 'incomplete' };
  let p = ftyp.end;
  for (;;) {
    const b = boxAt(buf, p);
    if (b === undefined) return { kind: 'invalid', reason: 'corrupt box after ftyp' };
    if (b === null) return buf.length > MAX_HEAD_BYTES ? { kind: 'invalid', reason: 'no moov' } : { kind: 'incomplete' };
    if (b.type === 'moov') {
      const entries: Array<{ format: string; aac: boolean }> = [];
      if (!sampleEntries(buf, b.body, b.end, entries)) return { kind: 'invalid', reason: 'corrupt moov' };
      if (entries.length !== 1 || !entries[0]!.aac) return { kind: 'unsupported_codec', codecs: entries.map((e) => (e.aac ? 'aac' : e.format)) };
      return { kind: 'aac', head: Buffer.concat([buf.subarray(0, ftyp.end), buf.subarray(b.start, b.end)]), bodyOffset: b.end };
    }
    if (b.type === 'moof' || b.type === 'mdat') return { kind: 'invalid', reason: `${b.type} before moov` };
    p = b.end;
  }
}

/** True when an MP4 chunk carries media (an `mdat` with data). */
export function mp4CarriesAudio(buf: Buffer): boolean {
  return buf.indexOf('mdat', 0, 'latin1') >= 4;
}

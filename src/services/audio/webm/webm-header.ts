import { readVint } from '../ebml';
import { ID_EBML, ID_DOCTYPE, ID_SEGMENT, ID_INFO, ID_TIMECODE_SCALE, ID_TRACKS, ID_TRACK_ENTRY, ID_TRACK_NUMBER, ID_TRACK_TYPE, ID_CODEC_ID, ID_CLUSTER } from './ebml-ids';

/**
 * The head of a WebM/Matroska recording (EBML header, Segment, Info, Tracks), read from its first chunk.
 *
 * It answers two questions before any byte reaches ffmpeg: which codecs the recording carries (WebM must be
 * Opus: CodecID `A_OPUS`, one audio track), and with which bytes a restarted decoder can be primed so that
 * later chunks of the same recording decode (`primer`: EBML header + Segment of unknown size + Info + Tracks).
 */
export interface WebmHeader {
  /** `webm` or `matroska`. */
  docType: string;
  /** Nanoseconds per timecode unit (Info/TimecodeScale, default 1,000,000 = milliseconds). */
  timecodeScaleNs: number;
  /** The one audio track's number (blocks of other tracks are refused by the codec check). */
  audioTrack: number;
  /** EBML header + Segment (unknown size) + Info + Tracks: what a restarted decoder is fed first. */
  primer: Buffer;
  /** Offset in the parsed bytes where the recording's body starts (its first Cluster, or the first byte after the head). */
  bodyOffset: number;
}

export type WebmHeaderParse =
  | { kind: 'ok'; header: WebmHeader }
  /** The bytes end before Tracks is complete. */
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  /** Well-formed, but not one Opus audio track (`codecs`: what it carries instead). */
  | { kind: 'unsupported_codec'; codecs: string[] };

/** Level-1 elements a recording may carry before its first Cluster; not needed to decode, so not in the primer. */
const SKIPPED_LEVEL1 = new Set([0x114d9b74, 0x1254c367, 0x1c53bb6b, 0x1043a770, 0x1941a469, 0xec, 0xbf]);

const MAX_EBML_HEADER = 4096;
const MAX_HEAD_ELEMENT = 64 * 1024;
const UNKNOWN_SIZE_8 = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

interface El {
  id: number;
  /** Offset of the id. */
  start: number;
  /** Offset of the body. */
  body: number;
  size: number;
  unknown: boolean;
}

/** The element at `pos`: null when the bytes end inside its header, undefined when it is not valid EBML. */
function elementAt(buf: Buffer, pos: number): El | null | undefined {
  const id = readVint(buf, pos, true);
  if (id === undefined) return undefined;
  if (id === null) return null;
  const size = readVint(buf, pos + id.length, false);
  if (size === undefined) return undefined;
  if (size === null) return null;
  return { id: id.value, start: pos, body: pos + id.length + size.length, size: size.value, unknown: size.unknown };
}

/** The children of a master element body, or undefined when they do not tile it exactly. */
function children(body: Buffer): El[] | undefined {
  const out: El[] = [];
  let p = 0;
  while (p < body.length) {
    const el = elementAt(body, p);
    if (!el || el.unknown || el.body + el.size > body.length) return undefined;
    out.push(el);
    p = el.body + el.size;
  }
  return out;
}

function readUint(buf: Buffer, el: El): number {
  let v = 0;
  for (let i = 0; i < el.size; i++) v = v * 256 + buf[el.body + i]!;
  return v;
}

function readString(buf: Buffer, el: El): string {
  return buf
    .subarray(el.body, el.body + el.size)
    .toString('latin1')
    .replace(/\0+$/, '');
}

interface TrackInfo {
  number: number;
  type: number | undefined;
  codecId: string;
}

function parseTracks(body: Buffer): TrackInfo[] | undefined {
  const entries = children(body);
  if (!entries) return undefined;
  const tracks: TrackInfo[] = [];
  for (const e of entries) {
    if (e.id !== ID_TRACK_ENTRY) continue;
    const kids = children(body.subarray(e.body, e.body + e.size));
    if (!kids) return undefined;
    const entryBody = body.subarray(e.body, e.body + e.size);
    const t: TrackInfo = { number: 0, type: undefined, codecId: '' };
    for (const k of kids) {
      if (k.id === ID_TRACK_NUMBER && k.size >= 1 && k.size <= 8) t.number = readUint(entryBody, k);
      else if (k.id === ID_TRACK_TYPE && k.size >= 1 && k.size <= 8) t.type = readUint(entryBody, k);
      else if (k.id === ID_CODEC_ID && k.size <= 64) t.codecId = readString(entryBody, k);
    }
    tracks.push(t);
  }
  return tracks;
}

/**
 * Reads the head of a WebM/Matroska recording from the start of `buf` (which begins with the EBML magic).
 * Accepts exactly one track, an audio track with CodecID `A_OPUS`; anything else is `unsupported_codec`.
 */
export function parseWebmHeader(buf: Buffer): WebmHeaderParse {
  const ebml = elementAt(buf, 0);
  if (ebml === undefined || (ebml && ebml.id !== ID_EBML)) return { kind: 'invalid', reason: 'no EBML header' };
  if (ebml === null || ebml.body + ebml.size > buf.length) {
    return buf.length > MAX_EBML_HEADER ? { kind: 'invalid', reason: 'EBML header too large' } : { kind: 'incomplete' };
  }
  if (ebml.unknown || ebml.size > MAX_EBML_HEADER) return { kind: 'invalid', reason: 'EBML header too large' };
  const ebmlKids = children(buf.subarray(ebml.body, ebml.body + ebml.size));
  if (!ebmlKids) return { kind: 'invalid', reason: 'corrupt EBML header' };
  const ebmlBody = buf.subarray(ebml.body, ebml.body + ebml.size);
  const docTypeEl = ebmlKids.find((k) => k.id === ID_DOCTYPE);
  const docType = docTypeEl ? readString(ebmlBody, docTypeEl) : 'matroska';
  if (docType !== 'webm' && docType !== 'matroska') return { kind: 'invalid', reason: `unknown DocType '${docType.slice(0, 20)}'` };

  const segment = elementAt(buf, ebml.body + ebml.size);
  if (segment === null) return { kind: 'incomplete' };
  if (segment === undefined || segment.id !== ID_SEGMENT) return { kind: 'invalid', reason: 'no Segment after the EBML header' };

  let timecodeScaleNs = 1_000_000;
  let info: Buffer | undefined;
  let tracks: TrackInfo[] | undefined;
  let tracksBytes: Buffer | undefined;
  let p = segment.body;
  for (;;) {
    if (p >= buf.length) {
      if (tracks) return done(p);
      return { kind: 'incomplete' };
    }
    const el = elementAt(buf, p);
    if (el === undefined) return { kind: 'invalid', reason: 'corrupt element in the Segment head' };
    if (el === null) return tracks ? done(p) : { kind: 'incomplete' };
    if (el.id === ID_CLUSTER) {
      if (!tracks) return { kind: 'invalid', reason: 'Cluster before Tracks' };
      return done(p);
    }
    if (el.unknown) return { kind: 'invalid', reason: 'unknown-size element in the Segment head' };
    if (el.size > MAX_HEAD_ELEMENT && (el.id === ID_INFO || el.id === ID_TRACKS)) {
      return { kind: 'invalid', reason: 'implausibly large Segment head element' };
    }
    const end = el.body + el.size;
    if (end > buf.length) {
      if (tracks && el.id !== ID_INFO && el.id !== ID_TRACKS) return done(p); // e.g. Tags cut by the chunk
      return { kind: 'incomplete' };
    }
    if (el.id === ID_INFO) {
      info = buf.subarray(el.start, end);
      const body = buf.subarray(el.body, end);
      const kids = children(body);
      if (!kids) return { kind: 'invalid', reason: 'corrupt Info' };
      const scale = kids.find((k) => k.id === ID_TIMECODE_SCALE);
      if (scale && scale.size >= 1 && scale.size <= 8) timecodeScaleNs = readUint(body, scale) || 1_000_000;
    } else if (el.id === ID_TRACKS) {
      tracks = parseTracks(buf.subarray(el.body, end));
      if (!tracks) return { kind: 'invalid', reason: 'corrupt Tracks' };
      tracksBytes = buf.subarray(el.start, end);
    } else if (!SKIPPED_LEVEL1.has(el.id)) {
      return { kind: 'invalid', reason: `unexpected element 0x${el.id.toString(16)} in the Segment head` };
    }
    p = end;
  }

  function done(bodyOffset: number): WebmHeaderParse {
    const ts = tracks ?? [];
    const opus = ts.filter((t) => t.codecId === 'A_OPUS' && (t.type === undefined || t.type === 2) && t.number > 0);
    if (ts.length !== 1 || opus.length !== 1) {
      return { kind: 'unsupported_codec', codecs: ts.map((t) => t.codecId || '(none)') };
    }
    const segId = buf.subarray(segment!.start, segment!.start + 4);
    const primer = Buffer.concat([buf.subarray(0, ebml!.body + ebml!.size), segId, UNKNOWN_SIZE_8, info ?? Buffer.alloc(0), tracksBytes!]);
    return { kind: 'ok', header: { docType, timecodeScaleNs, audioTrack: opus[0]!.number, primer, bodyOffset } };
  }
}

/** An unknown-size Cluster starting at `timecode` (in the recording's timecode units). */
export function syntheticCluster(timecode: number): Buffer {
  const tc = Math.max(0, Math.round(timecode));
  const bytes: number[] = [];
  let v = tc;
  do {
    bytes.unshift(v % 256);
    v = Math.floor(v / 256);
  } while (v > 0);
  return Buffer.concat([Buffer.from([0x1f, 0x43, 0xb6, 0x75]), UNKNOWN_SIZE_8, Buffer.from([0xe7, 0x80 | bytes.length, ...bytes])]);
}

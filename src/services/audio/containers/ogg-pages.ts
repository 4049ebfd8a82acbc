/**
 * Ogg pages (RFC 3533) as far as the relay needs them: is a chunk the start of an Ogg stream (a page with the
 * beginning-of-stream flag), and does every logical stream it begins carry Opus (`OpusHead`, RFC 7845)?
 */

export const OGG_MAGIC = Buffer.from('OggS', 'latin1');

export interface OggPage {
  /** Offset of the page in the buffer. */
  offset: number;
  /** Total length (header + segment table + body). */
  length: number;
  bos: boolean;
  eos: boolean;
  granule: bigint;
  serial: number;
  /** The first packet's first bytes (enough to recognise a codec head). */
  firstBytes: Buffer;
}

export function startsWithOgg(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x4f && buf[1] === 0x67 && buf[2] === 0x67 && buf[3] === 0x53;
}

/** Pages from the start of `buf` while they are complete and well-formed (stops at the first that is not). */
export function readOggPages(buf: Buffer, max = 64): OggPage[] {
  const pages: OggPage[] = [];
  let p = 0;
  while (pages.length < max && p + 27 <= buf.length && buf.subarray(p, p + 4).equals(OGG_MAGIC)) {
    if (buf[p + 4] !== 0) break; // version
    const type = buf[p + 5]!;
    const nseg = buf[p + 26]!;
    if (p + 27 + nseg > buf.length) break;
    let body = 0;
    for (let i = 0; i < nseg; i++) body += buf[p + 27 + i]!;
    const length = 27 + nseg + body;
    if (p + length > buf.length) break;
    const bodyStart = p + 27 + nseg;
    pages.push({
      offset: p,
      length,
      bos: (type & 0x02) !== 0,
      eos: (type & 0x04) !== 0,
      granule: buf.readBigInt64LE(p + 6),
      serial: buf.readUInt32LE(p + 14),
      firstBytes: buf.subarray(bodyStart, Math.min(bodyStart + 16, p + length)),
    });
    p += length;
  }
  return pages;
}

export type OggHeadCheck =
  | {
      kind: 'opus';
      /** Bytes of the head pages (beginning-of-stream and comment pages), to prime a restarted decoder. */
      head: Buffer;
      /** Where the audio pages start in the chunk. */
      bodyOffset: number;
    }
  | { kind: 'unsupported_codec'; codec: string }
  | { kind: 'invalid'; reason: string };

/** Names the codec of a beginning-of-stream packet (for the refusal message). */
function codecName(first: Buffer): string {
  if (first.subarray(0, 8).toString('latin1') === 'OpusHead') return 'opus';
  if (first.subarray(1, 7).toString('latin1') === 'vorbis') return 'vorbis';
  if (first.subarray(1, 5).toString('latin1') === 'FLAC') return 'flac';
  if (first.subarray(0, 5).toString('latin1') === 'Speex') return 'speex';
  if (first.subarray(1, 7).toString('latin1') === 'theora') return 'theora';
  return 'unknown';
}

/**
 * Checks an Ogg chunk that begins a stream: every beginning-of-stream page must start an Opus stream, and there must
 * be exactly one logical stream. Returns the head pages (OpusHead page and the OpusTags page when present).
 */
export function checkOggHead(buf: Buffer): OggHeadCheck {
  const pages = readOggPages(buf);
  if (!pages.length || !pages[0]!.bos) return { kind: 'invalid', reason: 'the first Ogg page is not a beginning-of-stream page' };
  const bos = pages.filter((p) => p.bos);
  for (const p of bos) {
    const codec = codecName(p.firstBytes);
    if (codec !== 'opus') return { kind: 'unsupported_codec', codec };
  }
  if (new Set(bos.map((p) => p.serial)).size !== 1) return { kind: 'unsupported_codec', codec: 'multiple streams' };
  // Head pages: OpusHead (granule 0) and the OpusTags page(s) that follow with granule 0.
  let end = 0;
  for (const p of pages) {
    if (p.bos || (p.granule === 0n && end === p.offset)) end = p.offset + p.length;
    else break;
  }
  return { kind: 'opus', head: Buffer.from(buf.subarray(0, end)), bodyOffset: end };
}

/** True when the chunk holds Ogg pages that carry audio (not only the head pages). */
export function oggCarriesAudio(buf: Buffer): boolean {
  const pages = readOggPages(buf);
  if (!pages.length) return buf.length > 0; // not page-aligned: assume audio
  return pages.some((p) => !p.bos && p.granule > 0n);
}

/** The last granule position (48 kHz samples for Opus) of the chunk's pages, if any page has one. */
export function lastGranule(buf: Buffer): bigint | undefined {
  let last: bigint | undefined;
  for (const p of readOggPages(buf, 1000)) if (p.granule >= 0n) last = p.granule;
  return last;
}

/** A small EBML writer for hand-made WebM streams in the in-process decoder's tests. */

/** The bytes of an element id (its own length marker included). */
function idBytes(id: number): Buffer {
  const out: number[] = [];
  for (let v = id; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256);
  return Buffer.from(out);
}

/** An EBML size field: 8 bytes (so that any size fits), or the unknown-size marker. */
export function sizeField(size: number | 'unknown'): Buffer {
  if (size === 'unknown') return Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  const b = Buffer.alloc(8);
  b[0] = 0x01;
  let v = size;
  for (let i = 7; i >= 1; i--) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return b;
}

export function el(id: number, ...body: Buffer[]): Buffer {
  const data = Buffer.concat(body);
  return Buffer.concat([idBytes(id), sizeField(data.length), data]);
}

/** Only the header of an element that claims `size` bytes (or an unknown size). */
export function header(id: number, size: number | 'unknown'): Buffer {
  return Buffer.concat([idBytes(id), sizeField(size)]);
}

export function uintEl(id: number, v: number): Buffer {
  const out: number[] = [];
  let x = v;
  do {
    out.unshift(x % 256);
    x = Math.floor(x / 256);
  } while (x > 0);
  return el(id, Buffer.from(out));
}

export function opusHead(channels: number, preSkip: number): Buffer {
  const b = Buffer.alloc(19);
  b.write('OpusHead', 0, 'latin1');
  b[8] = 1;
  b[9] = channels;
  b.writeUInt16LE(preSkip, 10);
  b.writeUInt32LE(48000, 12);
  return b;
}

export const ID = {
  EBML: 0x1a45dfa3,
  DocType: 0x4282,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackType: 0x83,
  CodecID: 0x86,
  CodecPrivate: 0x63a2,
  Audio: 0xe1,
  Channels: 0x9f,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  Void: 0xec,
  Cues: 0x1c53bb6b,
  Tags: 0x1254c367,
} as const;

export interface TrackSpec {
  number: number;
  codec: string;
  type?: number;
  channels?: number;
  preSkip?: number;
}

/** EBML header + Segment (unknown size) + Info + Tracks. */
export function head(tracks: TrackSpec[] = [{ number: 1, codec: 'A_OPUS', channels: 1 }]): Buffer {
  const entries = tracks.map((t) =>
    el(
      ID.TrackEntry,
      uintEl(ID.TrackNumber, t.number),
      uintEl(ID.TrackType, t.type ?? 2),
      el(ID.CodecID, Buffer.from(t.codec, 'latin1')),
      ...(t.codec === 'A_OPUS' ? [el(ID.CodecPrivate, opusHead(t.channels ?? 1, t.preSkip ?? 0))] : []),
      el(ID.Audio, uintEl(ID.Channels, t.channels ?? 1)),
    ),
  );
  return Buffer.concat([
    el(ID.EBML, el(ID.DocType, Buffer.from('webm'))),
    header(ID.Segment, 'unknown'),
    el(ID.Info, uintEl(ID.TimecodeScale, 1_000_000)),
    el(ID.Tracks, ...entries),
  ]);
}

/** A SimpleBlock (keyframe flag, no lacing unless `flags` says so). */
export function simpleBlock(track: number, relMs: number, packet: Buffer, flags = 0x80): Buffer {
  const h = Buffer.alloc(4);
  h[0] = 0x80 | track;
  h.writeInt16BE(relMs, 1);
  h[3] = flags;
  return el(ID.SimpleBlock, h, packet);
}

export function blockGroup(track: number, relMs: number, packet: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = 0x80 | track;
  h.writeInt16BE(relMs, 1);
  h[3] = 0;
  return el(ID.BlockGroup, el(ID.Block, h, packet));
}

export function clusterStart(tc: number): Buffer {
  return Buffer.concat([header(ID.Cluster, 'unknown'), uintEl(ID.Timecode, tc)]);
}

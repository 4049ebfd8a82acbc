/**
 * Hostile audio for the attack tests, made with ffmpeg (no committed binaries):
 * - `flacInMatroska10h`: 10 hours of FLAC (8 kHz silence, 65,535-sample frames) in Matroska, ~250 KB;
 * - `opusWebmBomb`: a WebM/Opus recording of `minutes` minutes in ~0.6 KB per second: ffmpeg encodes 10 s of a
 *   quiet tone at 6 kbps with 60 ms frames, and the packets are laid out again with increasing timecodes (a
 *   Cluster every 30 s) up to the length asked for. Every packet is a valid Opus packet; it decodes to that long.
 */
import { execFileSync } from 'node:child_process';
import { resolveFfmpegPath } from '../../src/services/audio/ffmpeg-path';
import { blocksOf } from '../audio/webm-layouts';

const ffmpeg = () => resolveFfmpegPath({ explicitPath: process.env.FFMPEG_PATH }).path;

export function flacInMatroska10h(): Buffer {
  return execFileSync(
    ffmpeg(),
    ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono', '-t', '36000', '-c:a', 'flac', '-frame_size', '65535', '-f', 'matroska', 'pipe:1'],
    { maxBuffer: 16 * 1024 * 1024 },
  );
}

function vintSize(n: number): Buffer {
  // 4-byte EBML size
  return Buffer.from([0x10 | ((n >>> 24) & 0x0f), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

export function opusWebmBomb(minutes: number): Buffer {
  const seed = execFileSync(
    ffmpeg(),
    [
      '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=48000:duration=10',
      '-af', 'volume=0.3', '-ac', '1', '-c:a', 'libopus', '-b:a', '6k', '-frame_duration', '60', '-f', 'webm', 'pipe:1',
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const { head, blocks } = blocksOf(seed);
  // The head of ffmpeg's file has a known-size Segment: rewrite it as unknown-size (like a live recorder).
  const seg = head.indexOf(Buffer.from([0x18, 0x53, 0x80, 0x67]));
  const segSizeLen = 8 - Math.floor(Math.log2(head[seg + 4]!));
  const liveHead = Buffer.concat([head.subarray(0, seg + 4), Buffer.from('01ffffffffffffff', 'hex'), head.subarray(seg + 4 + segSizeLen)]);
  const packets = blocks.map((b) => {
    const size = b.bytes[1]! & 0x80 ? 1 : b.bytes[1]! & 0x40 ? 2 : b.bytes[1]! & 0x20 ? 3 : b.bytes[1]! & 0x10 ? 4 : 8;
    return b.bytes.subarray(1 + size + 4); // after id, size, track (1 byte), timecode (2), flags (1)
  });
  const parts: Buffer[] = [liveHead];
  const totalMs = minutes * 60_000;
  let cluster = -1;
  for (let t = 0, i = 0; t < totalMs; t += 60, i++) {
    if (cluster < 0 || t - cluster >= 30_000) {
      cluster = t;
      const tc = Buffer.alloc(4);
      tc.writeUInt32BE(t);
      parts.push(Buffer.from('1f43b67501ffffffffffffff', 'hex'), Buffer.from([0xe7, 0x84]), tc);
    }
    const packet = packets[i % packets.length]!;
    const body = Buffer.concat([Buffer.from([0x81, 0, 0, 0x80]), packet]);
    body.writeInt16BE(t - cluster, 1);
    parts.push(Buffer.from([0xa3]), vintSize(body.length), body);
  }
  return Buffer.concat(parts);
}

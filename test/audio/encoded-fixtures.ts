/**
 * Recordings in the containers Firefox (Ogg/Opus) and Safari (fragmented MP4/AAC) record, and in codecs the relay
 * must refuse, made here with ffmpeg from the committed speech source (they are ffmpeg's muxers, not the
 * browsers': page and fragment boundaries are ffmpeg's). Split into MediaRecorder-like chunks at page or fragment
 * boundaries: the first chunk carries the head.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { readOggPages } from '../../src/services/audio/containers/ogg-pages';
import { ffmpegBinary } from '../helpers/ffmpeg';

export const SPEECH_WAV = path.join(__dirname, '..', 'fixtures', 'audio', 'chromium-hello-1000ms', 'source-48k.wav');

/** Encodes the speech source with ffmpeg (`args` between the input and the output). */
export function encode(args: string[], seconds = 4): Buffer {
  return execFileSync(
    ffmpegBinary(),
    ['-hide_banner', '-loglevel', 'error', '-t', String(seconds), '-i', SPEECH_WAV, ...args, 'pipe:1'],
    { maxBuffer: 64 * 1024 * 1024 },
  );
}

/** Ogg/Opus with 1 s pages; chunk 0 = the head pages (OpusHead, OpusTags) and the first audio page, then a page each. */
export function oggOpusChunks(seconds = 4): { whole: Buffer; chunks: Buffer[] } {
  const whole = encode(['-ac', '1', '-c:a', 'libopus', '-b:a', '32k', '-page_duration', '1000000', '-f', 'ogg'], seconds);
  const pages = readOggPages(whole, 1000);
  const chunks: Buffer[] = [];
  const headEnd = pages.findIndex((p) => p.granule > 0n);
  chunks.push(whole.subarray(0, pages[headEnd]!.offset + pages[headEnd]!.length));
  for (const p of pages.slice(headEnd + 1)) chunks.push(whole.subarray(p.offset, p.offset + p.length));
  return { whole, chunks };
}

/** Top-level boxes of an MP4 file. */
export function boxes(buf: Buffer): Array<{ type: string; start: number; end: number }> {
  const out: Array<{ type: string; start: number; end: number }> = [];
  for (let p = 0; p + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(p);
    out.push({ type: buf.toString('latin1', p + 4, p + 8), start: p, end: p + size });
    p += size;
  }
  return out;
}

/** Fragmented MP4/AAC (Safari's MediaRecorder layout): chunk 0 = ftyp+moov+first fragment, then moof+mdat each. */
export function fmp4AacChunks(seconds = 4): { whole: Buffer; chunks: Buffer[] } {
  const whole = encode(
    ['-ac', '1', '-c:a', 'aac', '-b:a', '64k', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '1000000', '-f', 'mp4'],
    seconds,
  );
  const bx = boxes(whole).filter((b) => b.type !== 'mfra');
  const chunks: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < bx.length; i++) {
    if (bx[i]!.type === 'mdat') {
      chunks.push(whole.subarray(start, bx[i]!.end));
      start = bx[i]!.end;
    }
  }
  return { whole: whole.subarray(0, start), chunks };
}

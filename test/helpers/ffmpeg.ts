/**
 * ffmpeg for tests and benchmarks: the binary the server itself picks (FFMPEG_PATH, then PATH, then the bundled
 * build: same decoder, same PCM) and the reference decode every decoder test compares against.
 */
import { spawnSync } from 'node:child_process';
import { resolveFfmpegPath } from '../../src/services/audio/ffmpeg-path';

let ffmpegPath: string | undefined;
/** The ffmpeg the server picks (resolved once per process). */
export function ffmpegBinary(): string {
  ffmpegPath ??= resolveFfmpegPath({ explicitPath: process.env.FFMPEG_PATH }).path;
  return ffmpegPath;
}

/**
 * Reference decode: the whole byte stream through one ffmpeg run, 16 kHz mono s16le (the server's output).
 * `input` is the container (`'webm'`, `'ogg'`, …) or the input options themselves (e.g. `['-f', 's16le', '-ar', …]`).
 */
export function referenceDecode(bytes: Buffer, input: string | string[] = 'webm', ffmpeg = ffmpegBinary()): Buffer {
  const inputArgs = typeof input === 'string' ? ['-f', input] : input;
  const r = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', ...inputArgs, '-i', 'pipe:0', '-f', 's16le', '-ar', '16000', '-ac', '1', 'pipe:1'], {
    input: bytes,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`reference decode failed: ${r.stderr.toString()}`);
  return r.stdout;
}

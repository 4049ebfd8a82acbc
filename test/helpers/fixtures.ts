import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { resolveFfmpegPath } from '../../src/services/audio/ffmpeg-path';

export const FIXTURES_DIR = path.resolve(__dirname, '../fixtures/audio');

export interface Recording {
  name: string;
  chunks: Buffer[];
  timesliceMs: number;
  spokenText: string;
}

/** Loads a real Chromium MediaRecorder recording (chunk-000 carries the WebM header). */
export function loadRecording(name: 'chromium-hello-1000ms' | 'chromium-short-250ms' | 'chromium-long-22s'): Recording {
  const dir = path.join(FIXTURES_DIR, name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
  const chunks = fs
    .readdirSync(dir)
    .filter((f) => /^chunk-\d+\.webm$/.test(f))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f)));
  return { name, chunks, timesliceMs: meta.timesliceMs, spokenText: meta.spokenText };
}

let ffmpegPath: string | undefined;
/** The ffmpeg the server itself picks (FFMPEG_PATH, then PATH, then the bundled build): same decoder, same PCM. */
export function ffmpegBinary(): string {
  ffmpegPath ??= resolveFfmpegPath({ explicitPath: process.env.FFMPEG_PATH }).path;
  return ffmpegPath;
}

/** Reference decode: the whole byte stream through one ffmpeg run, 16 kHz mono s16le. */
export function referenceDecode(bytes: Buffer, inputFormat = 'webm'): Buffer {
  const r = spawnSync(
    ffmpegBinary(),
    ['-hide_banner', '-loglevel', 'error', '-f', inputFormat, '-i', 'pipe:0', '-f', 's16le', '-ar', '16000', '-ac', '1', 'pipe:1'],
    { input: bytes, maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`reference decode failed: ${r.stderr.toString()}`);
  return r.stdout;
}

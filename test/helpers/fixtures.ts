/** The recorded Chromium MediaRecorder fixtures (test/fixtures/audio), for tests and benchmarks alike. */
import fs from 'node:fs';
import path from 'node:path';

export const FIXTURES_DIR = path.resolve(__dirname, '../fixtures/audio');

export type RecordingName = 'chromium-hello-1000ms' | 'chromium-short-250ms' | 'chromium-long-22s';
export const HELLO: RecordingName = 'chromium-hello-1000ms';
export const SHORT: RecordingName = 'chromium-short-250ms';
export const LONG: RecordingName = 'chromium-long-22s';

export interface Recording {
  name: string;
  chunks: Buffer[];
  timesliceMs: number;
  spokenText: string;
}

/** The MediaRecorder chunks of a recording, in order (chunk-000 carries the WebM header). */
export function loadChunks(name: string): Buffer[] {
  const dir = path.join(FIXTURES_DIR, name);
  return fs
    .readdirSync(dir)
    .filter((f) => /^chunk-\d+\.webm$/.test(f))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f)));
}

/** Loads a real Chromium MediaRecorder recording with its meta data (timeslice, the words spoken). */
export function loadRecording(name: RecordingName): Recording {
  const meta = JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, name, 'meta.json'), 'utf8'));
  return { name, chunks: loadChunks(name), timesliceMs: meta.timesliceMs, spokenText: meta.spokenText };
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import type { Logger } from '../../src/util/logger';
import { REDACT_PATHS } from '../../src/util/logger';

/** A fresh temp directory, removed by `cleanupTempDirs()`. */
const dirs: string[] = [];
export function makeTempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-auth-'));
  dirs.push(d);
  return d;
}
export function cleanupTempDirs(): void {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
}

/** A pino logger (same redaction as production) writing every line into a buffer. */
export function captureLogger(): { log: Logger; text: () => string; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const log = pino(
    { level: 'trace', redact: { paths: REDACT_PATHS, censor: '[REDACTED]' } },
    { write: (s: string) => void chunks.push(s) },
  );
  return {
    log,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop'; // 39 chars

export function base64url(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

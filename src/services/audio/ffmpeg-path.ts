import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../util/logger';

export type FfmpegPathSource = 'env' | 'path' | 'bundled';

export interface ResolvedFfmpegPath {
  path: string;
  source: FfmpegPathSource;
}

export interface ResolveFfmpegPathOptions {
  /** Explicit binary, e.g. config `FFMPEG_PATH`. Used when it is an executable file. */
  explicitPath?: string | null;
  /** The PATH to search (default `process.env.PATH`). */
  searchPath?: string;
  logger?: Logger;
  /** Returns the bundled binary (default: `require('@ffmpeg-installer/ffmpeg').path`); for tests. */
  loadBundled?: () => string;
}

/** True when `p` is a regular file the current user may execute. */
export function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First executable `ffmpeg` in the directories of `searchPath`, or null. */
export function findFfmpegOnPath(searchPath: string | undefined = process.env.PATH): string | null {
  if (!searchPath) return null;
  const names = process.platform === 'win32' ? ['ffmpeg.exe', 'ffmpeg'] : ['ffmpeg'];
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    for (const name of names) {
      const candidate = path.join(dir, name);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return null;
}

function loadBundledFfmpeg(): string {
  // Required lazily: the package resolves a platform-specific sub-package when loaded.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('@ffmpeg-installer/ffmpeg') as { path?: unknown };
  if (typeof mod.path !== 'string' || mod.path === '') throw new Error('@ffmpeg-installer/ffmpeg returned no path');
  return mod.path;
}

/**
 * Picks the ffmpeg binary: the explicit path (config `FFMPEG_PATH`) if it is an executable file, else an `ffmpeg`
 * on PATH, else the static binary shipped in `@ffmpeg-installer/ffmpeg`. Throws when none is available.
 * No side effects besides file-system checks; call it once at start-up and pass the path to the decoder factory.
 */
export function resolveFfmpegPath(opts: ResolveFfmpegPathOptions = {}): ResolvedFfmpegPath {
  const explicit = opts.explicitPath?.trim();
  if (explicit) {
    if (isExecutableFile(explicit)) return { path: explicit, source: 'env' };
    opts.logger?.warn({ source: 'env' }, 'FFMPEG_PATH is not an executable file; falling back to PATH / bundled ffmpeg');
  }
  const onPath = findFfmpegOnPath(opts.searchPath ?? process.env.PATH);
  if (onPath) return { path: onPath, source: 'path' };
  let bundled: string;
  try {
    bundled = (opts.loadBundled ?? loadBundledFfmpeg)();
  } catch (err) {
    throw new Error(
      `No ffmpeg found: FFMPEG_PATH unset or not executable, no ffmpeg on PATH, and the bundled ` +
        `@ffmpeg-installer/ffmpeg binary is unavailable (${(err as Error).message})`,
    );
  }
  if (!isExecutableFile(bundled)) {
    opts.logger?.warn({ source: 'bundled' }, 'bundled ffmpeg binary is not executable; decoding will fail');
  }
  return { path: bundled, source: 'bundled' };
}

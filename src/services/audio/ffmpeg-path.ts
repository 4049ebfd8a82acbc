import { execFile } from 'node:child_process';
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
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved at run time (an optional or CommonJS-only module)
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

export interface FfmpegIdentity extends ResolvedFfmpegPath {
  /** From the first line of `ffmpeg -version` (e.g. `5.1.6-0+deb12u1`); null when it could not be read. */
  version: string | null;
}

/** The version `ffmpeg -version` prints on its first line (`ffmpeg version <v> Copyright …`), or null. */
export function parseFfmpegVersion(output: string): string | null {
  const firstLine = output.slice(0, 512).split('\n', 1)[0];
  const m = /^ffmpeg version (\S{1,100})/.exec(firstLine);
  return m ? m[1] : null;
}

/**
 * Runs `<path> -version` once, bounded by `timeoutMs` (the child is killed then) and by 64 KiB of output;
 * resolves with the version, or null when the binary did not answer in time or printed something else.
 */
export function probeFfmpegVersion(ffmpegPath: string, timeoutMs = 5_000): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(ffmpegPath, ['-hide_banner', '-version'], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024, windowsHide: true }, (err, stdout) => {
      resolve(err ? null : parseFfmpegVersion(String(stdout)));
    });
  });
}

/**
 * Resolves the ffmpeg binary (`resolveFfmpegPath`), asks it for its version, and logs the choice once: which
 * binary, from where and which version. Falling back to the bundled build is a warning (it is a 2018 build that
 * no distribution patches any more), as is a binary that does not answer `-version`.
 */
export async function chooseFfmpeg(opts: ResolveFfmpegPathOptions & { versionTimeoutMs?: number } = {}): Promise<FfmpegIdentity> {
  const resolved = resolveFfmpegPath(opts);
  const version = await probeFfmpegVersion(resolved.path, opts.versionTimeoutMs);
  const identity: FfmpegIdentity = { ...resolved, version };
  const fields = { ffmpegPath: resolved.path, ffmpegSource: resolved.source, ffmpegVersion: version };
  if (resolved.source === 'bundled') {
    opts.logger?.warn(
      fields,
      `ffmpeg: using the bundled @ffmpeg-installer build ${version ?? '(version unknown)'}, an unmaintained 2018 build: ` +
        `install your distribution's ffmpeg (Debian/Ubuntu: apt-get install ffmpeg) or set FFMPEG_PATH`,
    );
  } else {
    opts.logger?.info(fields, `ffmpeg: ${resolved.path} (${resolved.source === 'env' ? 'FFMPEG_PATH' : 'PATH'}), version ${version ?? 'unknown'}`);
  }
  if (version === null) {
    opts.logger?.warn(fields, `ffmpeg: ${resolved.path} did not answer "-version" as ffmpeg does; decoding may fail`);
  }
  return identity;
}

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFfmpegOnPath, isExecutableFile, resolveFfmpegPath } from '../../src/services/audio/ffmpeg-path';

describe('resolveFfmpegPath', () => {
  let dir: string;
  let fakeFfmpeg: string;
  let notExecutable: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ffpath-'));
    fakeFfmpeg = path.join(dir, 'ffmpeg');
    writeFileSync(fakeFfmpeg, '#!/bin/sh\nexit 0\n');
    chmodSync(fakeFfmpeg, 0o755);
    notExecutable = path.join(dir, 'plain');
    writeFileSync(notExecutable, 'x');
    chmodSync(notExecutable, 0o644);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses an explicit executable path first', () => {
    expect(resolveFfmpegPath({ explicitPath: fakeFfmpeg, searchPath: '' })).toEqual({ path: fakeFfmpeg, source: 'env' });
  });

  it('falls back to PATH when the explicit path is missing or not executable', () => {
    const searchPath = ['/nonexistent-dir', dir].join(path.delimiter);
    expect(resolveFfmpegPath({ explicitPath: notExecutable, searchPath })).toEqual({ path: fakeFfmpeg, source: 'path' });
    expect(resolveFfmpegPath({ explicitPath: '/no/such/ffmpeg', searchPath })).toEqual({ path: fakeFfmpeg, source: 'path' });
    expect(resolveFfmpegPath({ searchPath })).toEqual({ path: fakeFfmpeg, source: 'path' });
    expect(findFfmpegOnPath('/nonexistent-dir')).toBeNull();
  });

  it('falls back to the bundled @ffmpeg-installer binary, which is executable', () => {
    const r = resolveFfmpegPath({ searchPath: '/nonexistent-dir' });
    expect(r.source).toBe('bundled');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the package's own answer, loaded as the product loads it
    expect(r.path).toBe((require('@ffmpeg-installer/ffmpeg') as { path: string }).path);
    expect(isExecutableFile(r.path)).toBe(true);
    expect(isExecutableFile(dir)).toBe(false);
  });

  it('throws a clear error when nothing is available', () => {
    expect(() =>
      resolveFfmpegPath({
        searchPath: '',
        loadBundled: () => {
          throw new Error('Cannot find module');
        },
      }),
    ).toThrow(/No ffmpeg found/);
  });
});

/**
 * A maintained ffmpeg (issue 11 row 8): the system ffmpeg is preferred (FFMPEG_PATH, then PATH), its path and
 * version are logged once at start-up, and falling back to the bundled 2018 build is a warning. The spawned
 * server's own start-up line is checked in http-abuse.test.ts; here the pieces, on real binaries.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chooseFfmpeg, parseFfmpegVersion, probeFfmpegVersion } from '../../src/services/audio/ffmpeg-path';
import { captureLogger } from '../auth/helpers';
import { childProcesses } from '../ops/helpers';

const DEBIAN_FFMPEG = '/usr/bin/ffmpeg';

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}
const linesOf = (cap: ReturnType<typeof captureLogger>): Line[] => cap.lines().map((l) => ({ ...l, level: Number(l.level), msg: String(l.msg) }));

describe('ffmpeg choice', () => {
  let dir: string;
  const script = (name: string, body: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  };
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ffchoice-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the version from the first line of `ffmpeg -version`', () => {
    expect(parseFfmpegVersion('ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers\nbuilt with gcc 12')).toBe('5.1.6-0+deb12u1');
    expect(parseFfmpegVersion('ffmpeg version N-47683-g0e8eb07980-static https://johnvansickle.com/ffmpeg/  Copyright (c) 2000-2018')).toBe(
      'N-47683-g0e8eb07980-static',
    );
    expect(parseFfmpegVersion('')).toBeNull();
    expect(parseFfmpegVersion('usage: sox ...')).toBeNull();
    expect(parseFfmpegVersion('x'.repeat(1_000_000))).toBeNull();
  });

  it("the tests run on Debian's ffmpeg, found on PATH, and it answers -version", async () => {
    const cap = captureLogger();
    const chosen = await chooseFfmpeg({ logger: cap.log });
    expect(chosen.source).toBe('path');
    expect(chosen.path).toBe(DEBIAN_FFMPEG);
    expect(chosen.version).toMatch(/^\d+\.\d+/);
    const line = linesOf(cap).find((l) => l.msg.startsWith('ffmpeg: '));
    expect(line).toMatchObject({ level: 30, ffmpegPath: DEBIAN_FFMPEG, ffmpegSource: 'path', ffmpegVersion: chosen.version });
    expect(linesOf(cap).filter((l) => l.level >= 40)).toEqual([]);
  });

  it('FFMPEG_PATH wins over PATH', async () => {
    const fake = script('my-ffmpeg', 'echo "ffmpeg version 9.9-custom Copyright"');
    const cap = captureLogger();
    const chosen = await chooseFfmpeg({ explicitPath: fake, logger: cap.log });
    expect(chosen).toEqual({ path: fake, source: 'env', version: '9.9-custom' });
    expect(linesOf(cap).find((l) => l.msg.startsWith('ffmpeg: '))?.msg).toContain('FFMPEG_PATH');
  });

  it('without a system ffmpeg it falls back to the bundled 2018 build, and warns with its version', async () => {
    const cap = captureLogger();
    const chosen = await chooseFfmpeg({ searchPath: path.join(dir, 'empty'), logger: cap.log });
    expect(chosen.source).toBe('bundled');
    expect(chosen.version).toMatch(/^N-\d+/);
    const warn = linesOf(cap).find((l) => l.level === 40 && l.msg.includes('bundled'));
    expect(warn?.msg).toMatch(/2018/);
    expect(warn?.msg).toMatch(/apt-get install ffmpeg/);
    expect(warn).toMatchObject({ ffmpegSource: 'bundled', ffmpegVersion: chosen.version });
  });

  it('a binary that never answers -version is killed at the bound, and the choice is logged as a warning', async () => {
    const hang = script('ffmpeg-hangs', 'exec sleep 30');
    const t0 = Date.now();
    expect(await probeFfmpegVersion(hang, 300)).toBeNull();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(childProcesses(process.pid, 'sleep')).toEqual([]);
    const cap = captureLogger();
    const chosen = await chooseFfmpeg({ explicitPath: hang, versionTimeoutMs: 300, logger: cap.log });
    expect(chosen.version).toBeNull();
    expect(linesOf(cap).some((l) => l.level === 40 && l.msg.includes('did not answer'))).toBe(true);
    // Something that is not ffmpeg at all answers, but not as ffmpeg.
    expect(await probeFfmpegVersion(script('not-ffmpeg', 'echo hello'))).toBeNull();
  });
});

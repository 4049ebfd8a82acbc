/**
 * Failure handling with stand-in "ffmpeg" scripts (its own test file: fluent-ffmpeg caches the binary path and the
 * capability probe per module registry).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { collect, pseudoRandomBytes, waitFor } from './helpers';

let dir: string;
const created: Array<{ destroy(): void }> = [];

function fake(name: string, body: string): string {
  const p = path.join(dir, name);
  writeFileSync(
    p,
    `#!/bin/sh
case "$*" in
  *-formats*) printf ' DE s16le           PCM signed 16-bit little-endian\\n D  matroska,webm   Matroska / WebM\\n'; exit 0;;
  *-encoders*) exit 0;;
esac
${body}
`,
  );
  chmodSync(p, 0o755);
  return p;
}

function setup(ffmpegPath: string, closeTimeoutMs?: number) {
  const factory = createFfmpegDecoderFactory({ ffmpegPath, webmDecoder: 'ffmpeg', closeTimeoutMs });
  const dec = factory.create('fake');
  created.push(dec);
  return { factory, dec, out: collect(dec) };
}

const pcm24k = { format: 'pcm' as const, sampleRate: 24000 };

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fake-ffmpeg-'));
});
afterEach(() => created.splice(0).forEach((d) => d.destroy()));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('FfmpegSessionDecoder with a misbehaving ffmpeg', () => {
  it('a missing binary → error event AUDIO_DECODER_CRASHED, the write still settles, no path leaked', async () => {
    const { factory, dec, out } = setup(path.join(dir, 'does-not-exist'));
    const errP = out.nextError();
    await dec.write(pseudoRandomBytes(4800, 1), pcm24k);
    const err = await errP;
    expect(err.code).toBe('AUDIO_DECODER_CRASHED');
    expect(err.message).not.toContain(dir);
    await dec.close();
    expect(factory.processesAlive).toBe(0);
    expect(factory.decodeErrors).toBe(1);
  });

  it('close() is bounded: a process that ignores the end of its input is killed after closeTimeoutMs', async () => {
    // It answers once (so it is up, not still starting), then ignores the end of its input.
    const hang = fake('hang', `printf 'ab'; exec sleep 30`);
    const { factory, dec, out } = setup(hang, 300);
    await dec.write(pseudoRandomBytes(4800, 2), pcm24k);
    await waitFor(() => factory.processesAlive === 1 && out.pcm().length === 2);
    const t0 = Date.now();
    await dec.close();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2000);
    expect(factory.processesAlive).toBe(0);
    expect(out.errors).toEqual([]); // our own kill is not a crash
  });

  it('exit code 1 with an error message → AUDIO_DECODE_FAILED with the stderr summarised (paths removed)', async () => {
    const bad = fake('bad', `cat >/dev/null & echo "[s16le @ 0x55d0c0ffee00] /srv/app/secret/input: Invalid data found when processing input" >&2; exit 1`);
    const { dec, out } = setup(bad);
    const errP = out.nextError();
    await dec.write(pseudoRandomBytes(4800, 3), pcm24k);
    const err = await errP;
    expect(err.code).toBe('AUDIO_DECODE_FAILED');
    expect(err.message).toBe('Audio could not be decoded: s16le: <path>: Invalid data found when processing input');
    await dec.close();
  });

  it('an exit before the input ended → AUDIO_DECODE_FAILED; the next chunk starts a new process', async () => {
    const quits = fake('quits', 'exit 0');
    const { factory, dec, out } = setup(quits);
    const errP = out.nextError();
    await dec.write(pseudoRandomBytes(4800, 4), pcm24k);
    expect((await errP).code).toBe('AUDIO_DECODE_FAILED');
    await dec.write(pseudoRandomBytes(4800, 5), pcm24k);
    await dec.close();
    expect(factory.processesSpawned).toBe(2);
    expect(factory.processesAlive).toBe(0);
  });

  it('odd-sized output from the process is re-aligned to whole samples', async () => {
    const odd = fake('odd', `cat >/dev/null; printf 'abc'; printf 'defgh'; exit 0`);
    const { dec, out } = setup(odd);
    await dec.write(pseudoRandomBytes(4800, 6), pcm24k);
    await dec.close();
    expect(out.chunks.every((c) => c.length % 2 === 0)).toBe(true);
    expect(out.pcm().toString('latin1')).toBe('abcdefgh');
    expect(out.errors).toEqual([]);
  });
});

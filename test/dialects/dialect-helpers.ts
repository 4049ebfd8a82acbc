/**
 * What the dialect tests share: real audio (a Chromium fixture decoded to PCM by real ffmpeg at the rate and channel
 * count a dialect's client declares), the emulator's disorder picked by a seeded random source (the seed is printed
 * and named in failures), and a WebSocket client that only records frames (each dialect's test speaks its protocol
 * from the text).
 */
import { spawnSync } from 'node:child_process';
import type { FaultOptions } from '../../src/emulator';
import { ffmpegBinary } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { prng } from '../ops/helpers';
import { startTestServer, type TestServer } from '../helpers/test-server';
import type { WsTestClient } from '../helpers/ws-test-client';

export { connect, connectRefused, type Msg, type WsTestClient } from '../helpers/ws-test-client';

/** The dialect's URL with our credential in `?token=` (the only change a dialect's client needs). */
export function dialectUrl(httpUrl: string, path: string, token?: string): string {
  const u = new URL(path, httpUrl.replace(/^http/, 'ws'));
  if (token !== undefined) u.searchParams.set('token', token);
  return u.toString();
}

/** A whole Chromium recording (all its chunks) decoded by real ffmpeg to s16le at `rate` with `channels` channels. */
export function recordingAsPcm(name: 'chromium-hello-1000ms' | 'chromium-short-250ms' | 'chromium-long-22s', rate: number, channels: number): Buffer {
  const rec = loadRecording(name);
  const r = spawnSync(
    ffmpegBinary(),
    ['-hide_banner', '-loglevel', 'error', '-f', 'webm', '-i', 'pipe:0', '-f', 's16le', '-ar', String(rate), '-ac', String(channels), 'pipe:1'],
    { input: Buffer.concat(rec.chunks), maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`ffmpeg decode failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** Splits PCM into chunks of `ms` (whole frames). */
export function pcmChunks(pcm: Buffer, rate: number, channels: number, ms: number): Buffer[] {
  const size = Math.round((rate * ms) / 1000) * 2 * channels;
  const out: Buffer[] = [];
  for (let i = 0; i < pcm.length; i += size) out.push(pcm.subarray(i, i + size));
  return out;
}

/** The seed of this run (`DIALECT_SEED` replays one), printed once. */
export function runSeed(suite: string): number {
  const seed = process.env.DIALECT_SEED ? Number(process.env.DIALECT_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${suite}: disorder seed ${seed} (replay with DIALECT_SEED=${seed})`);
  return seed;
}

/**
 * The emulator's disorder for one test, from the seed: replies split into several messages, the user's words late
 * (after the first reply content), a slow first reply.
 */
export function disorder(seed: number): FaultOptions {
  const rnd = prng(seed);
  return {
    splitReplyParts: 1 + Math.floor(rnd() * 3),
    lateInputTranscription: rnd() < 0.5,
    replyDelayMs: Math.floor(rnd() * 150),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The in-process server of a dialect suite (with the emulator timing the seed picked): started before the suite,
 * closed after it; after each test its clients are closed and every session is gone before the next test starts.
 */
export function dialectSuiteServer(timing: 'spaced' | 'eager', clients: WsTestClient[], use: (t: TestServer) => void): void {
  let t: TestServer | undefined;
  beforeAll(async () => {
    t = await startTestServer({ emulator: { timing } });
    use(t);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t?.emu.waitFor(() => t!.server.registry.size === 0, 5000);
  });
  afterAll(async () => {
    await t?.close();
  });
}

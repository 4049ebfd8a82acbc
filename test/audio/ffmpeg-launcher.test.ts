/**
 * The ffmpeg launcher (issue 13): decoders started by a small Node child, their audio over a private Unix socket
 * straight to ffmpeg. Real ffmpeg, real processes, real sockets: the recordings decode bit-identical to the
 * in-process spawn, the warm pool works on top of it, a SIGKILLed launcher costs the session one primed restart
 * and leaves no ffmpeg, a stall is still caught, and a local stranger on the socket gets nothing.
 */
import fs from 'node:fs';
import net from 'node:net';
import { createFfmpegDecoderFactory, type FfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import type { AudioPathEvent } from '../../src/services/audio/session-audio-decoder';
import { childProcesses, processAlive, prng } from '../ops/helpers';
import { collect, waitFor } from './helpers';
import { ffmpegBinary, referenceDecode } from '../helpers/ffmpeg';
import { HELLO, LONG, SHORT, loadChunks } from '../helpers/fixtures';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ffmpeg launcher', () => {
  const factories: FfmpegDecoderFactory[] = [];
  afterEach(async () => {
    await Promise.all(factories.splice(0).map((f) => f.close()));
  });

  const newFactory = async (extra: { poolSize?: number; stallMs?: number; useLauncher?: boolean } = {}) => {
    const f = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', useLauncher: true, ...extra });
    factories.push(f);
    await f.launcher?.whenReady();
    return f;
  };

  it.each([HELLO, SHORT, LONG])('%s decodes bit-identical to the in-process spawn, and its ffmpeg is the launcher’s child', async (name) => {
    const chunks = loadChunks(name);
    const decode = async (f: FfmpegDecoderFactory) => {
      const d = f.create('s');
      const out = collect(d);
      let pid: number | undefined;
      for (const c of chunks) {
        await d.write(c, { format: 'webm' });
        pid ??= d.currentPid;
      }
      await waitFor(() => d.currentPid !== undefined || out.chunks.length > 0, 10_000);
      pid ??= d.currentPid;
      await d.close();
      expect(out.errors).toEqual([]);
      return { pcm: out.pcm(), pid };
    };
    const inProcess = await decode(await newFactory({ useLauncher: false }));
    const f = await newFactory();
    const launched = await decode(f);
    expect(launched.pcm.length).toBeGreaterThan(0);
    expect(launched.pcm.equals(inProcess.pcm)).toBe(true);
    expect(launched.pcm.equals(referenceDecode(Buffer.concat(chunks)))).toBe(true);
    expect(f.launcher!.stats().launched).toBe(1);
    expect(f.launcher!.stats().refused).toBe(0);
    // It was not this process that forked it.
    expect(launched.pid).toBeDefined();
    expect(childProcesses(process.pid, 'ffmpeg')).not.toContain(launched.pid);
    expect(f.processesAlive).toBe(0);
  });

  it('the warm pool runs on top of it: ready processes are the launcher’s, a recording takes one and decodes exactly', async () => {
    const f = await newFactory({ poolSize: 2 });
    const d = f.create('s1');
    const out = collect(d);
    await waitFor(() => f.pool!.stats().ready === 2, 10_000);
    const launcherPid = f.launcher!.pid!;
    await waitFor(() => childProcesses(launcherPid, 'ffmpeg').length === 2, 5000);
    const hello = loadChunks(HELLO);
    for (const c of hello) await d.write(c, { format: 'webm' });
    await d.close();
    expect(out.errors).toEqual([]);
    expect(out.pcm().equals(referenceDecode(Buffer.concat(hello)))).toBe(true);
    expect(f.pool!.stats().handedOver).toBe(1);
    expect(f.pool!.stats().misses).toBe(0);
    expect(childProcesses(process.pid, 'ffmpeg')).toEqual([]); // none in-process: the pool's came from the launcher too
    await f.close();
    expect(processAlive(launcherPid)).toBe(false);
  });

  it('kill -9 of the launcher mid-decode: the decoder restarts primed (a new launcher, or in-process meanwhile), no ffmpeg is left', async () => {
    const seed = Date.now() % 100_000;
    const rnd = prng(seed);
    const f = await newFactory({ stallMs: 5000 });
    const d = f.create('s');
    const out = collect(d);
    const events: AudioPathEvent[] = [];
    d.on('audioEvent', (e) => events.push(e));
    const chunks = loadChunks(LONG);
    const half = Math.floor(chunks.length / 2);
    for (const c of chunks.slice(0, half)) await d.write(c, { format: 'webm' });
    await waitFor(() => out.chunks.length > 0, 10_000);
    const firstLauncher = f.launcher!.pid!;
    const firstFfmpeg = d.currentPid!;
    expect(childProcesses(firstLauncher, 'ffmpeg')).toEqual([firstFfmpeg]);
    process.kill(firstLauncher, 'SIGKILL');
    const err = await out.nextError(10_000);
    expect(err.code).toBe('AUDIO_DECODER_CRASHED');
    await waitFor(() => !processAlive(firstFfmpeg), 5000); // the orphan was killed by the server
    // The rest of the recording, at a seeded random pace: the next chunk restarts the decoder primed with the head.
    for (const c of chunks.slice(half)) {
      await d.write(c, { format: 'webm' });
      await sleep(Math.floor(rnd() * 20));
    }
    await d.close();
    expect(out.errors.map((e) => e.code)).toEqual(['AUDIO_DECODER_CRASHED']);
    expect(events).toContainEqual({ kind: 'decoder_restart', cause: 'failure' });
    expect(d.stats().restarts).toBe(1);
    // Audio after the restart arrived (the 22 s recording: well beyond the half fed before the kill).
    expect({ seed, enough: out.pcm().length > 16000 * 2 * 12 }).toEqual({ seed, enough: true });
    await waitFor(() => f.launcher!.stats().ready, 10_000);
    expect(f.launcher!.pid).not.toBe(firstLauncher);
    expect(f.launcher!.stats().launchersStarted).toBe(2);
    expect(f.processesAlive).toBe(0);
    expect(childProcesses(process.pid, 'ffmpeg')).toEqual([]);
    expect(childProcesses(f.launcher!.pid!, 'ffmpeg')).toEqual([]);
  });

  it('a stopped ffmpeg (SIGSTOP) behind the launcher is caught by the stall deadline, killed and replaced', async () => {
    const f = await newFactory({ stallMs: 400 });
    const d = f.create('s');
    const out = collect(d);
    const events: AudioPathEvent[] = [];
    d.on('audioEvent', (e) => events.push(e));
    const chunks = loadChunks(LONG);
    await d.write(chunks[0]!, { format: 'webm' });
    await d.write(chunks[1]!, { format: 'webm' });
    await waitFor(() => out.chunks.length > 0, 10_000);
    const pid = d.currentPid!;
    process.kill(pid, 'SIGSTOP');
    for (const c of chunks.slice(2, 12)) await d.write(c, { format: 'webm' });
    await waitFor(() => events.some((e) => e.kind === 'decoder_stall'), 10_000);
    await waitFor(() => !processAlive(pid), 5000);
    await d.close();
    expect(events).toContainEqual({ kind: 'decoder_restart', cause: 'stall' });
    expect(f.launcher!.stats().launched).toBe(2);
    expect(f.processesAlive).toBe(0);
  });

  describe('a local stranger on the private socket', () => {
    it('the socket lives in a 0700 directory', async () => {
      const f = await newFactory();
      const path = f.launcher!.socketPath;
      const dir = path.slice(0, path.lastIndexOf('/'));
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      await f.close();
      expect(fs.existsSync(dir)).toBe(false);
    });

    it('connections without the token (silent, junk, a forged header for a live decoder) get no byte and are dropped; the decoder is unharmed', async () => {
      const f = await newFactory();
      const d = f.create('s');
      const out = collect(d);
      const hello = loadChunks(HELLO);
      await d.write(hello[0]!, { format: 'webm' });
      await waitFor(() => d.currentPid !== undefined, 10_000);
      const attempt = (payload: Buffer | null) =>
        new Promise<{ received: number; closedMs: number }>((resolve, reject) => {
          const t0 = performance.now();
          let received = 0;
          const s = net.connect({ path: f.launcher!.socketPath });
          s.on('data', (b) => (received += b.length));
          s.on('error', () => undefined);
          s.on('close', () => resolve({ received, closedMs: performance.now() - t0 }));
          s.on('connect', () => {
            if (payload) s.write(payload);
          });
          setTimeout(() => reject(new Error('the server kept the connection')), 10_000).unref();
        });
      const forged = Buffer.alloc(36, 0xab);
      forged.writeUInt32BE(1, 32); // the id of the live decoder (the factory's first), with a wrong token
      const results = await Promise.all([
        attempt(null),
        attempt(Buffer.from('GET / HTTP/1.1\r\n\r\n'.repeat(4))),
        attempt(forged),
        ...Array.from({ length: 20 }, () => attempt(Buffer.alloc(36))),
      ]);
      for (const r of results) expect(r.received).toBe(0);
      expect(results[0]!.closedMs).toBeGreaterThanOrEqual(4500); // the silent one: at the handshake deadline (5 s)
      expect(results[0]!.closedMs).toBeLessThan(15_000);
      expect(f.launcher!.stats().connectionsRejected).toBe(23);
      for (const c of hello.slice(1)) await d.write(c, { format: 'webm' });
      await d.close();
      expect(out.errors).toEqual([]);
      expect(out.pcm().equals(referenceDecode(Buffer.concat(hello)))).toBe(true);
    });
  });
});

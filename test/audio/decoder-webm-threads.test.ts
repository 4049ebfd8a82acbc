/**
 * The session decoder with in-process WebM decoded on worker threads (LIVE_AUDIO_DECODE_THREADS, 1 in the server's
 * config): the same PCM as the one-shot decode, and no accepted audio lost when the thread dies or hangs in the middle
 * of a recording (its streams are replayed, from the recording's head, into a stream on a new thread).
 */
import path from 'node:path';
import { createFfmpegDecoderFactory, type FfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import type { AudioPathEvent } from '../../src/services/audio/session-audio-decoder';
import { DecodeThreads } from '../../src/services/audio/threads/decode-threads';
import { silentLogger } from '../../src/util/logger';
import { collect, decoderPids, similarity, waitFor } from './helpers';
import { ffmpegBinary } from '../helpers/ffmpeg';
import { LONG, loadChunks } from '../helpers/fixtures';
import { inProcessDecode } from '../helpers/in-process-decode';

const FAULT_ENTRY = path.join(__dirname, 'threads', 'fault-thread-entry.ts');
const long = loadChunks(LONG);
const refLong = inProcessDecode(Buffer.concat(long));

const factories: FfmpegDecoderFactory[] = [];
afterEach(async () => {
  await Promise.all(factories.splice(0).map((f) => f.close()));
});

function newFactory(decodeThreads: number | DecodeThreads): FfmpegDecoderFactory {
  const f = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), decodeThreads });
  factories.push(f);
  return f;
}

async function feed(factory: FfmpegDecoderFactory, label: string) {
  const dec = factory.create(label);
  const out = collect(dec);
  const events: AudioPathEvent[] = [];
  dec.on('audioEvent', (e) => events.push(e));
  for (const c of long) await dec.write(c, { format: 'webm' });
  await dec.close();
  return { dec, out, events };
}

describe('session decoder, WebM decoded on a thread', () => {
  it('three sessions at once on one thread: each gives exactly the one-shot decode, no process, the thread counted', async () => {
    const factory = newFactory(1);
    const runs = await Promise.all(['a', 'b', 'c'].map((l) => feed(factory, l)));
    for (const r of runs) {
      expect(r.out.errors).toEqual([]);
      expect(r.out.pcm().equals(refLong)).toBe(true);
    }
    expect(decoderPids()).toEqual([]);
    expect(factory.processesSpawned).toBe(0);
    expect(factory.decodeThreads).toMatchObject({ running: 1, started: 1, lost: 0, streams: 0 });
    expect(factory.inProcessStreams).toBe(0);
  });

  it.each([
    ['dies', { exitAfterPushes: 9 }, 2000],
    ['hangs', { hangAfterPushes: 9 }, 400],
  ])('the thread %s mid-recording: the session replays what it had not delivered: no error, as many samples as the one-shot decode, the same signal', async (_what, faults, hungMs) => {
    const firstThreadOnly = new Int32Array(new SharedArrayBuffer(4));
    const threads = new DecodeThreads({ threads: 1, logger: silentLogger, entry: FAULT_ENTRY, workerData: { ...faults, firstThreadOnly }, hungMs });
    const factory = newFactory(threads);
    const dec = factory.create('s');
    const out = collect(dec);
    const events: AudioPathEvent[] = [];
    dec.on('audioEvent', (e) => events.push(e));
    for (const c of long) {
      await dec.write(c, { format: 'webm' });
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(() => events.some((e) => e.kind === 'decoder_stall'), 5000);
    await dec.close();
    expect(out.errors).toEqual([]);
    expect(events.filter((e) => e.kind === 'decoder_stall')).toHaveLength(1);
    expect(events).toContainEqual({ kind: 'decoder_restart', cause: 'stall' });
    // The replacement runs on a new (sound) thread.
    expect(threads.stats()).toMatchObject({ lost: 1, started: 2 });
    // Everything accepted came out once, in order: as many samples as the one-shot decode (the replacement is primed
    // with the recording's head and drops what the lost stream had already given), identical up to the loss, and the
    // same signal after it (a fresh libopus state decodes the first packets after the restart a little differently).
    const got = out.pcm();
    expect(got.length).toBe(refLong.length);
    let same = 0;
    while (same < got.length && got[same] === refLong[same]) same++;
    expect(same).toBeGreaterThan(32_000 * 3);
    if (same === got.length) {
      // The loss fell where the primed replacement decodes exactly as the lost stream would have.
      console.log('identical to the end');
    } else {
      const after = similarity(got.subarray(same), refLong.subarray(same));
      console.log(`identical for ${(same / 32_000).toFixed(2)} s; after: corr ${after.corr.toFixed(5)}, SNR ${after.snrDb.toFixed(1)} dB`);
      expect(after.corr).toBeGreaterThan(0.99);
    }
    expect(dec.stats()).toMatchObject({ stalls: 1, restarts: 1 });
  });
});

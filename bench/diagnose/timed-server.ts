/**
 * The server with timers around the decoder's stream changes (diagnosis only; `npm run bench` never runs this).
 * It wraps internals of FfmpegSessionDecoder / FfmpegPcmStream, so it may need updating when they change; it
 * fails loudly rather than measuring nothing. On SIGTERM it prints one JSON line with the timings and exits.
 */
import { loadConfig } from '../../src/config/config';
import { createLiveAudioServer } from '../../src/server';
import { FfmpegPcmStream } from '../../src/services/audio/ffmpeg-stream';
import { FfmpegSessionDecoder } from '../../src/services/audio/ffmpeg-session-decoder';
import { startsWithEbmlHeader } from '../../src/services/audio/ebml';

type Timed = Record<string, unknown> & { __created?: number; __restart?: boolean; __spawned?: number; __firstOut?: boolean };

export interface RestartTimings {
  /** Old stream: stdin closed → process exited and its output drained. */
  oldStreamEndMs: number[];
  /** A new recording's stream object created → ffmpeg process spawned (fluent-ffmpeg's preparation + spawn). */
  createdToSpawnedMs: number[];
  /** The same for the first stream of a session (during the start phase). */
  firstStreamCreatedToSpawnedMs: number[];
  /** ffmpeg spawned → its first PCM bytes. */
  spawnedToFirstPcmMs: number[];
  /** A chunk with a WebM header: write() called → write() resolved (old stream ended, new one spawned, bytes in). */
  headerChunkAcceptedMs: number[];
  /** Any other chunk: write() called → the decoder's next PCM (what the relay latency measures, minus framing). */
  continuationToPcmMs: number[];
}

function patch<T extends object>(proto: T, name: string, wrap: (orig: (...a: any[]) => any) => (...a: any[]) => any): void {
  const orig = (proto as Record<string, unknown>)[name];
  if (typeof orig !== 'function') throw new Error(`diagnosis: ${name} is gone from the decoder; update bench/diagnose/timed-server.ts`);
  (proto as Record<string, unknown>)[name] = wrap(orig as (...a: any[]) => any);
}

async function main(): Promise<void> {
  const t: RestartTimings = { oldStreamEndMs: [], createdToSpawnedMs: [], firstStreamCreatedToSpawnedMs: [], spawnedToFirstPcmMs: [], headerChunkAcceptedMs: [], continuationToPcmMs: [] };
  patch(FfmpegSessionDecoder.prototype, 'startStream', (orig) =>
    function (this: { __streams?: number }, ...a: unknown[]) {
      const created = performance.now();
      const active = orig.apply(this, a) as { stream: Timed };
      active.stream.__created = created;
      active.stream.__restart = (this.__streams = (this.__streams ?? 0) + 1) > 1;
      return active;
    },
  );
  patch(FfmpegPcmStream.prototype, 'onStart', (orig) =>
    function (this: Timed, ...a: unknown[]) {
      this.__spawned = performance.now();
      if (this.__created !== undefined) (this.__restart ? t.createdToSpawnedMs : t.firstStreamCreatedToSpawnedMs).push(this.__spawned - this.__created);
      return orig.apply(this, a);
    },
  );
  patch(FfmpegPcmStream.prototype, 'handleOutput', (orig) =>
    function (this: Timed, ...a: unknown[]) {
      if (!this.__firstOut && this.__spawned !== undefined) {
        this.__firstOut = true;
        t.spawnedToFirstPcmMs.push(performance.now() - this.__spawned);
      }
      return orig.apply(this, a);
    },
  );
  patch(FfmpegPcmStream.prototype, 'end', (orig) =>
    async function (this: unknown, ...a: unknown[]) {
      const s = performance.now();
      await orig.apply(this, a);
      t.oldStreamEndMs.push(performance.now() - s);
    },
  );
  patch(FfmpegSessionDecoder.prototype, 'write', (orig) =>
    function (this: FfmpegSessionDecoder, chunk: Buffer, ...rest: unknown[]) {
      const s = performance.now();
      const p = orig.call(this, chunk, ...rest) as Promise<void>;
      if (startsWithEbmlHeader(chunk)) p.then(() => t.headerChunkAcceptedMs.push(performance.now() - s), () => undefined);
      else {
        const once = () => {
          this.off('pcm', once);
          t.continuationToPcmMs.push(performance.now() - s);
        };
        this.on('pcm', once);
      }
      return p;
    },
  );

  const server = await createLiveAudioServer(loadConfig(process.env));
  await server.listen();
  process.once('SIGTERM', () => {
    process.stdout.write(`TIMINGS ${JSON.stringify(t)}\n`);
    void server.close().then(() => process.exit(0));
  });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

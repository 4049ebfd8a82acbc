/**
 * Three ways a backend can turn a stream of MediaRecorder WebM chunks into PCM, driven the same way so their costs
 * can be compared:
 *
 * - `long-lived`: this server's decoder (`FfmpegSessionDecoder`): one ffmpeg per stream, fed through stdin.
 * - `per-chunk`: what the old backends did: one ffmpeg per chunk, with the stream's header (the bytes of the first
 *   chunk before its first Cluster) re-sent in front of every later chunk.
 * - `redecode`: one ffmpeg per chunk on everything received so far, keeping only the samples beyond what was
 *   already returned (correct output, cost growing with the stream's length).
 *
 * Each session reports, per chunk, when its PCM was complete (`onChunk`), and how many samples it delivered.
 */
import { spawn } from 'node:child_process';
import { createFfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { startsWithEbmlHeader } from '../../src/services/audio/ebml';

export type DesignName = 'long-lived' | 'per-chunk' | 'redecode';
export const DESIGNS: DesignName[] = ['long-lived', 'per-chunk', 'redecode'];

/** Audio the long-lived stream may legitimately still hold when a chunk counts as done (resampler delay + margin). */
const HOLD_BACK_MS = 25;

export interface ChunkDone {
  n: number;
  /** Write → the chunk's PCM complete, ms (NaN when it was never decoded). */
  latencyMs: number;
  /** Samples this chunk produced (16 kHz). */
  samples: number;
  failed: boolean;
  /** Still queued when the session closed (the design had fallen behind). */
  skipped?: boolean;
}

export interface DesignSession {
  /** Feeds chunk n (global index; `bytes` starts with the EBML header on a new recording). */
  write(n: number, bytes: Buffer): void;
  /** Ends the session; resolves once its processes have exited. */
  close(): Promise<void>;
  /** Every PCM byte delivered, in order (kept only when asked for, for the quality check). */
  readonly pcm: Buffer[];
  /** Samples delivered so far. */
  readonly samplesOut: number;
}

export interface DesignContext {
  ffmpegPath: string;
  /** Session audio time at the end of global chunk n (ms). */
  cumEndMs: (n: number) => number;
  onChunk: (d: ChunkDone) => void;
  keepPcm?: boolean;
}

const FFMPEG_ARGS = ['-hide_banner', '-loglevel', 'error', '-f', 'webm', '-i', 'pipe:0', '-f', 's16le', '-ar', '16000', '-ac', '1', 'pipe:1'];

/** One ffmpeg run over `input`; resolves with its stdout and exit code. */
export function decodeOnce(ffmpegPath: string, input: Buffer): Promise<{ pcm: Buffer; code: number | null }> {
  return new Promise((resolve) => {
    const p = spawn(ffmpegPath, FFMPEG_ARGS, { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stdin.on('error', () => undefined);
    p.on('error', () => resolve({ pcm: Buffer.alloc(0), code: null }));
    p.on('close', (code) => resolve({ pcm: Buffer.concat(out), code }));
    p.stdin.end(input);
  });
}

/** The bytes of a WebM stream's first chunk before its first Cluster (EBML header, Segment, Info, Tracks). */
export function initSegment(firstChunk: Buffer): Buffer {
  const i = firstChunk.indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]));
  return i > 0 ? firstChunk.subarray(0, i) : firstChunk;
}

/** Chunks processed one after another per session (a later chunk waits for the previous one). */
abstract class QueuedSession implements DesignSession {
  readonly pcm: Buffer[] = [];
  samplesOut = 0;
  private tail: Promise<void> = Promise.resolve();
  private closing = false;

  constructor(protected readonly ctx: DesignContext) {}

  write(n: number, bytes: Buffer): void {
    const t = performance.now();
    this.tail = this.tail.then(async () => {
      if (this.closing) {
        this.ctx.onChunk({ n, latencyMs: NaN, samples: 0, failed: true, skipped: true });
        return;
      }
      const { pcm, failed } = await this.decode(bytes);
      this.samplesOut += pcm.length / 2;
      if (this.ctx.keepPcm) this.pcm.push(pcm);
      this.ctx.onChunk({ n, latencyMs: performance.now() - t, samples: pcm.length / 2, failed });
    });
  }

  protected abstract decode(bytes: Buffer): Promise<{ pcm: Buffer; failed: boolean }>;

  /** Waits for the chunk being decoded; chunks still queued are skipped (reported with `skipped`). */
  close(): Promise<void> {
    this.closing = true;
    return this.tail;
  }
}

class PerChunkSession extends QueuedSession {
  private header: Buffer | undefined;

  protected async decode(bytes: Buffer): Promise<{ pcm: Buffer; failed: boolean }> {
    let input = bytes;
    if (startsWithEbmlHeader(bytes)) this.header = initSegment(bytes);
    else if (this.header) input = Buffer.concat([this.header, bytes]);
    const r = await decodeOnce(this.ctx.ffmpegPath, input);
    return { pcm: r.pcm, failed: r.code !== 0 };
  }
}

class RedecodeSession extends QueuedSession {
  private stream: Buffer[] = [];
  private returnedBytes = 0;

  protected async decode(bytes: Buffer): Promise<{ pcm: Buffer; failed: boolean }> {
    if (startsWithEbmlHeader(bytes)) {
      this.stream = [];
      this.returnedBytes = 0;
    }
    this.stream.push(bytes);
    const r = await decodeOnce(this.ctx.ffmpegPath, Buffer.concat(this.stream));
    const fresh = r.pcm.subarray(Math.min(this.returnedBytes, r.pcm.length));
    this.returnedBytes = Math.max(this.returnedBytes, r.pcm.length);
    return { pcm: Buffer.from(fresh), failed: r.code !== 0 };
  }
}

class LongLivedSession implements DesignSession {
  readonly pcm: Buffer[] = [];
  private bytesOut = 0;
  private readonly pending: { n: number; t: number; needBytes: number; before: number }[] = [];

  constructor(
    private readonly ctx: DesignContext,
    private readonly decoder: ReturnType<ReturnType<typeof createFfmpegDecoderFactory>['create']>,
  ) {
    decoder.on('pcm', (pcm) => {
      this.bytesOut += pcm.length;
      if (ctx.keepPcm) this.pcm.push(pcm);
      const now = performance.now();
      while (this.pending.length > 0 && this.bytesOut >= this.pending[0].needBytes) {
        const p = this.pending.shift()!;
        ctx.onChunk({ n: p.n, latencyMs: now - p.t, samples: (this.bytesOut - p.before) / 2, failed: false });
      }
    });
    decoder.on('error', () => {
      for (const p of this.pending.splice(0)) ctx.onChunk({ n: p.n, latencyMs: performance.now() - p.t, samples: 0, failed: true });
    });
  }

  write(n: number, bytes: Buffer): void {
    const needBytes = Math.max(0, (this.ctx.cumEndMs(n) - HOLD_BACK_MS) * 32);
    this.pending.push({ n, t: performance.now(), needBytes, before: this.bytesOut });
    this.decoder.write(bytes, { format: 'webm' }).catch(() => undefined);
  }

  get samplesOut(): number {
    return this.bytesOut / 2;
  }

  async close(): Promise<void> {
    await this.decoder.close();
    for (const p of this.pending.splice(0)) this.ctx.onChunk({ n: p.n, latencyMs: performance.now() - p.t, samples: 0, failed: true });
  }
}

/** Creates sessions of one design. */
export function designFactory(design: DesignName, ffmpegPath: string): (ctx: Omit<DesignContext, 'ffmpegPath'>) => DesignSession {
  if (design === 'long-lived') {
    const factory = createFfmpegDecoderFactory({ ffmpegPath });
    let i = 0;
    return (ctx) => new LongLivedSession({ ...ctx, ffmpegPath }, factory.create(`bench-${i++}`));
  }
  if (design === 'per-chunk') return (ctx) => new PerChunkSession({ ...ctx, ffmpegPath });
  return (ctx) => new RedecodeSession({ ...ctx, ffmpegPath });
}

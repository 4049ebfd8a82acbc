import { TypedEmitter } from '../../util/typed-emitter';
import { silentLogger, type Logger } from '../../util/logger';
import { AUDIO_FORMATS, UPSTREAM_SAMPLE_RATE, type ChunkDescriptor } from './audio-types';
import {
  AudioDecodeError,
  AudioTooLargeError,
  type SessionAudioDecoder,
  type SessionAudioDecoderEvents,
} from './session-audio-decoder';
import { looksLikeWebmContinuation, startsWithEbmlHeader, WebmStreamChecker } from './ebml';
import { FfmpegPcmStream } from './ffmpeg-stream';
import { checkRateAndChannels, parseWav, type RawSampleFormat } from './wav';

export const DEFAULT_MAX_CHUNK_BYTES = 5 * 1024 * 1024;
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;

/** Global counters shared by all decoders of one factory (for metrics). */
export interface DecoderCounters {
  processesAlive: number;
  processesSpawned: number;
  decodeErrors: number;
}

export interface FfmpegSessionDecoderOptions {
  ffmpegPath: string;
  logger?: Logger;
  /** Larger chunks are refused with `AudioTooLargeError` (default 5 MiB). */
  maxChunkBytes?: number;
  /** Bound for `close()` and for flushing a stream before a restart; the process is killed after it (default 2 s). */
  closeTimeoutMs?: number;
  /** Shared counters (the factory passes its own). */
  counters?: DecoderCounters;
  /** Label used in log lines (e.g. the session id). */
  sessionLabel?: string;
}

type Job =
  | { kind: 'webm'; chunk: Buffer; header: boolean }
  | { kind: 'raw'; format: RawSampleFormat; sampleRate: number; channels: number; data: Buffer };

interface ActiveStream {
  stream: FfmpegPcmStream;
  /** 'webm' or the raw key `format/rate/channels`. */
  key: string;
  /** Structure check of the WebM bytes written so far (webm streams only). */
  checker?: WebmStreamChecker;
}

const NO_HEADER_MESSAGE =
  'Audio chunk is a continuation of a WebM stream whose first chunk (with the header) was not received; start a new recording';

/**
 * Per-session decoder: browser WebM/Opus, WAV or raw PCM chunks in, 16 kHz mono s16le PCM out (`pcm` events),
 * using one long-lived ffmpeg per stream (see FfmpegPcmStream). Writes are queued and processed strictly in order;
 * a change of stream (new EBML header, other WAV/PCM parameters, other format) flushes the previous stream first,
 * so output order always equals input order. 16 kHz mono s16 input is passed through without ffmpeg.
 */
export class FfmpegSessionDecoder extends TypedEmitter<SessionAudioDecoderEvents> implements SessionAudioDecoder {
  private readonly ffmpegPath: string;
  private readonly log: Logger;
  private readonly maxChunkBytes: number;
  private readonly closeTimeoutMs: number;
  private readonly counters: DecoderCounters;
  private readonly streams = new Set<FfmpegPcmStream>();
  private current: ActiveStream | null = null;
  private tail: Promise<void> = Promise.resolve();
  private state: 'open' | 'closing' | 'closed' | 'destroyed' = 'open';
  private closing: Promise<void> | null = null;

  constructor(opts: FfmpegSessionDecoderOptions) {
    super();
    this.ffmpegPath = opts.ffmpegPath;
    this.log = (opts.logger ?? silentLogger).child({ component: 'audio-decoder', session: opts.sessionLabel });
    this.maxChunkBytes = opts.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.counters = opts.counters ?? { processesAlive: 0, processesSpawned: 0, decodeErrors: 0 };
  }

  /** Decoder processes alive for this session (0 or 1; transiently 1 while a stream is being flushed). */
  get processesAlive(): number {
    let n = 0;
    for (const s of this.streams) if (s.alive) n++;
    return n;
  }

  /** pid of the current ffmpeg process, if any (for tests and diagnostics). */
  get currentPid(): number | undefined {
    return this.current?.stream.pid;
  }

  write(chunk: Buffer, desc: ChunkDescriptor): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new Error(`Audio decoder is ${this.state}`));
    let job: Job;
    try {
      job = this.validate(chunk, desc);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.tail.then(() => this.process(job));
    this.tail = run.then(noop, noop);
    return run;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.state === 'destroyed') return Promise.resolve();
    this.state = 'closing';
    this.closing = this.tail
      .then(() => this.endCurrent())
      .then(() => {
        if (this.state === 'closing') this.state = 'closed';
      });
    return this.closing;
  }

  destroy(): void {
    if (this.state === 'destroyed') return;
    this.state = 'destroyed';
    this.current = null;
    for (const s of this.streams) s.kill();
  }

  private isDestroyed(): boolean {
    return this.state === 'destroyed';
  }

  /** Stateless checks, done before queueing so bad chunks are refused at once. */
  private validate(chunk: Buffer, desc: ChunkDescriptor): Job {
    if (!desc || !AUDIO_FORMATS.includes(desc.format)) {
      throw new AudioDecodeError(
        'AUDIO_UNSUPPORTED_FORMAT',
        `Unsupported audio format '${String(desc?.format)}' (expected ${AUDIO_FORMATS.join(', ')})`,
      );
    }
    if (!Buffer.isBuffer(chunk)) chunk = Buffer.from(chunk as Uint8Array);
    if (chunk.length > this.maxChunkBytes) throw new AudioTooLargeError(this.maxChunkBytes, chunk.length);
    if (chunk.length === 0) throw new AudioDecodeError('AUDIO_INVALID', 'Audio chunk is empty');

    switch (desc.format) {
      case 'webm':
        return { kind: 'webm', chunk, header: startsWithEbmlHeader(chunk) };
      case 'wav': {
        const wav = parseWav(chunk);
        return {
          kind: 'raw',
          format: wav.sampleFormat,
          sampleRate: wav.sampleRate,
          channels: wav.channels,
          data: wav.data,
        };
      }
      case 'pcm': {
        const sampleRate = desc.sampleRate ?? UPSTREAM_SAMPLE_RATE;
        const channels = desc.channels ?? 1;
        const rangeError = checkRateAndChannels(sampleRate, channels);
        if (rangeError) throw new AudioDecodeError('AUDIO_INVALID', `Invalid raw PCM parameters: ${rangeError}`);
        const frame = 2 * channels;
        if (chunk.length % frame !== 0) {
          throw new AudioDecodeError(
            'AUDIO_INVALID',
            `Raw PCM chunk of ${chunk.length} bytes is not a whole number of ${frame}-byte s16le frames`,
          );
        }
        return { kind: 'raw', format: 's16le', sampleRate, channels, data: chunk };
      }
    }
  }

  private async process(job: Job): Promise<void> {
    if (this.state === 'destroyed') return;
    if (job.kind === 'webm') {
      if (job.header) {
        await this.endCurrent();
        if (this.isDestroyed()) return;
        const active = this.startStream('webm', 'webm', []);
        active.checker = new WebmStreamChecker();
        await this.feedWebm(active, job.chunk);
        return;
      }
      const cur = this.current;
      if (cur && cur.key === 'webm' && cur.stream.usable) {
        await this.feedWebm(cur, job.chunk);
        return;
      }
      if (looksLikeWebmContinuation(job.chunk)) throw new AudioDecodeError('AUDIO_STREAM_NO_HEADER', NO_HEADER_MESSAGE);
      throw new AudioDecodeError(
        'AUDIO_INVALID',
        'Audio data is not a WebM stream (no EBML header and no WebM continuation data); send audio/webm from MediaRecorder, or use format wav/pcm',
      );
    }

    if (job.data.length === 0) return; // e.g. a WAV file without samples
    if (job.format === 's16le' && job.sampleRate === UPSTREAM_SAMPLE_RATE && job.channels === 1) {
      // Already what the upstream wants: no process.
      await this.endCurrent();
      if (this.isDestroyed()) return;
      this.emitPcm(job.data);
      return;
    }
    const key = `${job.format}/${job.sampleRate}/${job.channels}`;
    let cur = this.current;
    if (!cur || cur.key !== key || !cur.stream.usable) {
      await this.endCurrent();
      if (this.isDestroyed()) return;
      cur = this.startStream(key, job.format, ['-ar', String(job.sampleRate), '-ac', String(job.channels)]);
    }
    await cur.stream.write(job.data);
  }

  /**
   * Writes WebM bytes after checking their structure. On corruption, the valid prefix is still decoded, the stream
   * is ended and AUDIO_DECODE_FAILED is emitted (after the last good PCM); the next continuation needs a new header.
   */
  private async feedWebm(active: ActiveStream, chunk: Buffer): Promise<void> {
    const check = active.checker ? active.checker.push(chunk) : ({ ok: true } as const);
    if (check.ok) {
      await active.stream.write(chunk);
      return;
    }
    if (check.validBytes > 0) await active.stream.write(chunk.subarray(0, check.validBytes));
    if (this.current === active) this.current = null;
    this.log.debug({ reason: check.reason }, 'corrupt WebM stream');
    await active.stream.failAndEnd(
      new AudioDecodeError('AUDIO_DECODE_FAILED', `Audio could not be decoded: the WebM stream is corrupt (${check.reason})`),
      this.closeTimeoutMs,
    );
  }

  private startStream(key: string, inputFormat: string, inputOptions: string[]): ActiveStream {
    const counters = this.counters;
    const stream: FfmpegPcmStream = new FfmpegPcmStream({
      ffmpegPath: this.ffmpegPath,
      inputFormat,
      inputOptions,
      logger: this.log,
      onPcm: (pcm) => this.emitPcm(pcm),
      onSpawn: () => {
        counters.processesSpawned++;
        counters.processesAlive++;
      },
      onExit: () => {
        counters.processesAlive--;
      },
      onFailure: (err) => {
        if (this.current?.stream === stream) this.current = null;
        this.emitError(err);
      },
    });
    this.streams.add(stream);
    void stream.done.then(() => {
      this.streams.delete(stream);
      if (this.current?.stream === stream) this.current = null;
    });
    const active = { stream, key };
    this.current = active;
    return active;
  }

  /** Ends the current stream's input and waits for its last PCM (bounded by closeTimeoutMs). */
  private async endCurrent(): Promise<void> {
    const cur = this.current;
    this.current = null;
    if (cur) await cur.stream.end(this.closeTimeoutMs);
  }

  private emitPcm(pcm: Buffer): void {
    if (this.state === 'destroyed' || pcm.length === 0) return;
    try {
      this.emit('pcm', pcm);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'pcm listener threw');
    }
  }

  private emitError(err: AudioDecodeError): void {
    this.counters.decodeErrors++;
    if (this.state === 'destroyed') return;
    if (this.listenerCount('error') === 0) {
      this.log.warn({ code: err.code, reason: err.message }, 'audio decoder error with no listener');
      return;
    }
    try {
      this.emit('error', err);
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'error listener threw');
    }
  }
}

export interface FfmpegDecoderFactoryOptions {
  ffmpegPath: string;
  logger?: Logger;
  maxChunkBytes?: number;
  closeTimeoutMs?: number;
}

export interface FfmpegDecoderFactory {
  create(sessionLabel: string): FfmpegSessionDecoder;
  /** ffmpeg processes currently alive across all sessions. */
  readonly processesAlive: number;
  /** ffmpeg processes spawned since start. */
  readonly processesSpawned: number;
  /** `error` events (AUDIO_DECODE_FAILED / AUDIO_DECODER_CRASHED) since start; up-front rejections not counted. */
  readonly decodeErrors: number;
}

/**
 * Creates the decoder factory the server wires once (the ffmpeg path comes from `resolveFfmpegPath`).
 * Note: fluent-ffmpeg keeps the binary path (and its capability probe) in a module-global cache, so all factories
 * of one process must use the same ffmpeg binary.
 */
export function createFfmpegDecoderFactory(opts: FfmpegDecoderFactoryOptions): FfmpegDecoderFactory {
  const counters: DecoderCounters = { processesAlive: 0, processesSpawned: 0, decodeErrors: 0 };
  return {
    create(sessionLabel: string) {
      return new FfmpegSessionDecoder({ ...opts, counters, sessionLabel });
    },
    get processesAlive() {
      return counters.processesAlive;
    },
    get processesSpawned() {
      return counters.processesSpawned;
    },
    get decodeErrors() {
      return counters.decodeErrors;
    },
  };
}

function noop(): void {}

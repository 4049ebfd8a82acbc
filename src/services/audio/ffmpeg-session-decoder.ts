import { TypedEmitter } from '../../util/typed-emitter';
import { silentLogger, type Logger } from '../../util/logger';
import { AUDIO_FORMATS, UPSTREAM_SAMPLE_RATE, type ChunkDescriptor } from './audio-types';
import {
  AudioDecodeError,
  AudioLimitError,
  AudioTooLargeError,
  type AudioPathEvent,
  type DecoderFactory,
  type DecoderProcessCounters,
  type DecoderStats,
  type SessionAudioDecoder,
  type SessionAudioDecoderEvents,
} from './session-audio-decoder';
import { WebmStreamChecker } from './ebml';
import { FfmpegPcmStream, type FfmpegStreamHandlers } from './ffmpeg-stream';
import type { PcmStream } from './pcm-stream';
import { checkRateAndChannels, parseWav, type RawSampleFormat } from './wav';
import { sniffContainer } from './containers/sniff';
import { checkOggHead, lastGranule, oggCarriesAudio } from './containers/ogg-pages';
import { OutputLedger } from './output-ledger';
import { checkMp4Head, mp4CarriesAudio } from './containers/mp4-boxes';
import { WebmSequencer, type ChunkOutcome, type SequencedWrite } from './webm/webm-sequencer';
import { DecoderRestartBudget } from './decoder-restart-budget';
import { DecoderPool } from './decoder-pool';
import type { DecoderProcessLauncher } from './decoder-process';
import { DecoderStarts } from './decoder-starts';
import type { DecoderStartSink } from './decoder-starts';
import { FfmpegLauncher } from './launcher/ffmpeg-launcher';
import { WebmOpusStream } from './opus/webm-opus-stream';
import { DecodeThreads } from './threads/decode-threads';
import { ThreadedPcmStream } from './threads/threaded-pcm-stream';
import type { OpusPacketDecoderFactory } from './opus/opus-packet-decoder';
import { DecodeScheduler } from './opus/decode-scheduler';

/** How browser WebM/Opus recordings are decoded (LIVE_AUDIO_WEBM_DECODER): in this process, or by ffmpeg. */
export type WebmDecoderKind = 'in_process' | 'ffmpeg';
export const DEFAULT_WEBM_DECODER: WebmDecoderKind = 'in_process';

export const DEFAULT_MAX_CHUNK_BYTES = 5 * 1024 * 1024;
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;
export const DEFAULT_REORDER_WAIT_MS = 1500;
export const DEFAULT_REORDER_MAX_BYTES = 1024 * 1024;
export const DEFAULT_DECODER_STALL_MS = 5000;
export const DEFAULT_DECODER_RESTARTS_PER_MINUTE = 10;
/** Input waiting for a held decoder beyond which more chunks are refused (429 AUDIO_BACKLOG_FULL). */
export const DEFAULT_MAX_QUEUED_INPUT_BYTES = 2 * 1024 * 1024;

/** The counters all decoders of one factory update (read through the factory's `DecoderProcessCounters`). */
export type DecoderCounters = {
  -readonly [K in 'processesAlive' | 'processesSpawned' | 'decodeErrors' | 'inProcessStreams' | 'inProcessStarted']: number;
};

/** The audio-path settings of a session decoder (from the config). */
export interface AudioPathSettings {
  /** Longest wait of an early WebM chunk for the chunks before it (LIVE_AUDIO_REORDER_WAIT_MS). */
  reorderWaitMs?: number;
  /** Most bytes of early chunks held per session (LIVE_AUDIO_REORDER_MAX_BYTES). */
  reorderMaxBytes?: number;
  /** A decoder that takes nothing for this long while owing output is killed and replaced (LIVE_AUDIO_DECODER_STALL_MS). */
  stallMs?: number;
  /** Decoder processes one session may start per minute (LIVE_AUDIO_DECODER_RESTARTS_PER_MINUTE; 0 = unlimited). */
  restartsPerMinute?: number;
  /** Input held for a paused decoder beyond which chunks are refused. */
  maxQueuedInputBytes?: number;
  /** How far below the server's CPU priority the decoder processes run (LIVE_AUDIO_DECODER_NICE, nice -n; 0 = the same). */
  decoderNice?: number;
  /** WebM/Opus recordings: decoded in-process (default) or by one ffmpeg each (LIVE_AUDIO_WEBM_DECODER). */
  webmDecoder?: WebmDecoderKind;
  /** The Opus decoder of in-process WebM streams (default: libopus through @evan/opus). */
  opusDecoder?: OpusPacketDecoderFactory;
  /** Shares the main thread's decoding time among in-process streams (the factory passes its one). */
  decodeScheduler?: DecodeScheduler;
}

export interface FfmpegSessionDecoderOptions extends AudioPathSettings {
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
  /** Warm WebM/Opus decoders: a new recording takes one instead of starting a process. */
  pool?: DecoderPool;
  /** Starts the processes outside the main thread (the ffmpeg launcher); without it they are spawned in-process. */
  launcher?: DecoderProcessLauncher;
  /** Where its processes' starts are reported (path and duration, for `/metrics`). */
  starts?: DecoderStartSink;
  /** Called once when the decoder is closed or destroyed (the factory counts open decoders). */
  onRetired?: () => void;
  /** Decoding threads for in-process WebM (without them, or when none can take a stream, it decodes on this thread). */
  decodeThreads?: DecodeThreads;
}

type Container = 'webm' | 'ogg' | 'mp4' | 'wav' | 'pcm';

/** A timed or framed container stream the session keeps the head of, so it can restart its decoder primed. */
interface ContainerRecording {
  container: 'webm' | 'ogg' | 'mp4';
  /** 1, 2, ... per container kind. */
  no: number;
  /** Bytes a restarted decoder is fed first (WebM: EBML..Tracks; Ogg: head pages; MP4: ftyp+moov). */
  primer: Buffer;
  /** Ogg: the last granule position seen (48 kHz samples), to time the next pages. */
  lastGranule?: bigint;
  /**
   * WebM: the recording began on another instance (a takeover primes this decoder with its head): every stream of
   * it here, the first included, continues it and does not drop the OpusHead pre-skip again.
   */
  continues?: boolean;
}

type Job =
  | { kind: 'webm'; w: SequencedWrite }
  | { kind: 'framed'; rec: ContainerRecording; starts: boolean; data: Buffer; owes: boolean; bodyOffset: number; ms: number | undefined }
  | { kind: 'raw'; format: RawSampleFormat; sampleRate: number; channels: number; data: Buffer; container: 'wav' | 'pcm' }
  | { kind: 'replace'; old: ActiveStream; writes: Array<{ bytes: Buffer; ms: number | undefined }>; discardBytes: number };

interface ActiveStream {
  stream: PcmStream;
  /** Identifies what it decodes: `webm#2`, `ogg#1`, `pcm/s16le/24000/1`, ... */
  key: string;
  container: Container;
  recording?: ContainerRecording;
  /** Structure check of the WebM bytes written so far (WebM streams only). */
  checker?: WebmStreamChecker;
  /** What it was given and has not delivered yet (replayed into its replacement after a stall). */
  ledger: OutputLedger;
  /** Output bytes to drop at the start (audio already delivered by the stream it replaces). */
  discardBytes: number;
}

/** Most bytes of written input kept for a replay after a stall. */
const MAX_UNCONFIRMED_BYTES = 4 * 1024 * 1024;

const CODECS: Record<'webm' | 'ogg' | 'mp4', { format: string; codec: string }> = {
  webm: { format: 'webm', codec: 'opus' },
  ogg: { format: 'ogg', codec: 'opus' },
  mp4: { format: 'mp4', codec: 'aac' },
};
const RAW_CODECS: Record<RawSampleFormat, string> = {
  u8: 'pcm_u8',
  s16le: 'pcm_s16le',
  s24le: 'pcm_s24le',
  s32le: 'pcm_s32le',
  f32le: 'pcm_f32le',
};

/**
 * Per-session decoder: browser WebM/Opus, Ogg/Opus, fragmented MP4/AAC, WAV or raw PCM chunks in, 16 kHz mono
 * s16le PCM out (`pcm` events), through one decoding stream (`PcmStream`) at a time: a WebM recording is decoded
 * in this process by `WebmOpusStream` (demuxer + libopus; no process), unless `webmDecoder` is 'ffmpeg'; Ogg, MP4
 * and WAV/PCM that needs resampling get one long-lived ffmpeg per stream (`FfmpegPcmStream`).
 *
 * - The container is taken from the bytes (`sniffContainer`), whatever the declared format says; the codec is
 *   checked before ffmpeg sees anything (WebM and Ogg: Opus; MP4: AAC), and ffmpeg is started with the demuxer and
 *   the decoder forced.
 * - WebM chunks go through the session's reorder buffer (`WebmSequencer`) and reach ffmpeg in the order of their
 *   own timing; everything else is decoded in arrival order. Writes are processed strictly in that order; a change
 *   of stream (new recording, other raw parameters, other format) flushes the previous stream first, so output order
 *   always equals stream order. 16 kHz mono s16 input is passed through without ffmpeg.
 * - No dead sessions: the head of every recording is kept, so after any failure the next chunk restarts the decoder
 *   primed with it; a stalled decoder is replaced at once and the input it had not answered is fed again.
 * - Bounded: a per-session budget of decoder starts per minute, a stall deadline, and output that can be held
 *   (`pauseOutput`) with the input waiting for it bounded (`AUDIO_BACKLOG_FULL`).
 */
export class FfmpegSessionDecoder extends TypedEmitter<SessionAudioDecoderEvents> implements SessionAudioDecoder {
  private readonly ffmpegPath: string;
  private readonly decoderNice: number;
  private readonly webmDecoder: WebmDecoderKind;
  private readonly opusDecoder: OpusPacketDecoderFactory | undefined;
  private readonly decodeScheduler: DecodeScheduler;
  private readonly decodeThreads: DecodeThreads | undefined;
  private readonly log: Logger;
  private readonly maxChunkBytes: number;
  private readonly closeTimeoutMs: number;
  private readonly stallMs: number;
  private readonly maxQueuedInputBytes: number;
  private readonly counters: DecoderCounters;
  private readonly streams = new Set<PcmStream>();
  private readonly sequencer: WebmSequencer;
  private readonly restartBudget: DecoderRestartBudget;
  private current: ActiveStream | null = null;
  /** The container of the last chunk: where a chunk without any magic continues (Ogg/MP4 cut anywhere). */
  private lastContainer: Container | null = null;
  private ogg: ContainerRecording | undefined;
  private mp4: ContainerRecording | undefined;
  private framedCount = 0;
  private tail: Promise<void> = Promise.resolve();
  private queuedJobBytes = 0;
  private state: 'open' | 'closing' | 'closed' | 'destroyed' = 'open';
  private closing: Promise<void> | null = null;
  private outputPaused = false;
  /** Pass-through PCM emitted while the output is held (the consumer's backlog of it). */
  private passThroughWhilePaused = 0;
  private readonly counts = { spawns: 0, restarts: 0, stalls: 0 };
  private readonly pool: DecoderPool | undefined;
  private readonly launcher: DecoderProcessLauncher | undefined;
  private readonly starts: DecoderStartSink | undefined;
  private onRetired: (() => void) | undefined;

  constructor(opts: FfmpegSessionDecoderOptions) {
    super();
    this.pool = opts.pool;
    this.launcher = opts.launcher;
    this.starts = opts.starts;
    this.onRetired = opts.onRetired;
    this.ffmpegPath = opts.ffmpegPath;
    this.decoderNice = opts.decoderNice ?? 0;
    this.webmDecoder = opts.webmDecoder ?? DEFAULT_WEBM_DECODER;
    this.opusDecoder = opts.opusDecoder;
    this.decodeScheduler = opts.decodeScheduler ?? new DecodeScheduler();
    this.decodeThreads = opts.decodeThreads;
    this.log = (opts.logger ?? silentLogger).child({ component: 'audio-decoder', session: opts.sessionLabel });
    this.maxChunkBytes = opts.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.stallMs = opts.stallMs ?? DEFAULT_DECODER_STALL_MS;
    this.maxQueuedInputBytes = opts.maxQueuedInputBytes ?? DEFAULT_MAX_QUEUED_INPUT_BYTES;
    this.counters = opts.counters ?? { processesAlive: 0, processesSpawned: 0, decodeErrors: 0, inProcessStreams: 0, inProcessStarted: 0 };
    this.restartBudget = new DecoderRestartBudget(opts.restartsPerMinute ?? DEFAULT_DECODER_RESTARTS_PER_MINUTE);
    this.sequencer = new WebmSequencer({
      waitMs: opts.reorderWaitMs ?? DEFAULT_REORDER_WAIT_MS,
      maxBytes: opts.reorderMaxBytes ?? DEFAULT_REORDER_MAX_BYTES,
      write: (w) => {
        this.emit('webmWritten', w.bytes, w.startsRecording, w.durationMs);
        return this.enqueue({ kind: 'webm', w }, w.bytes.length);
      },
      onEvent: (e) => this.emitEvent(e),
    });
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

  stats(): DecoderStats {
    return { ...this.sequencer.stats(), ...this.counts, container: this.current?.container ?? this.lastContainer };
  }

  inputPending(): boolean {
    if (this.queuedJobBytes > 0) return true;
    for (const st of this.streams) if (st.owesOutput) return true;
    return false;
  }

  write(chunk: Buffer, desc: ChunkDescriptor): Promise<ChunkOutcome> {
    if (this.state !== 'open') return Promise.reject(new Error(`Audio decoder is ${this.state}`));
    try {
      return this.route(chunk, desc);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  pauseOutput(): void {
    if (this.outputPaused) return;
    this.outputPaused = true;
    this.current?.stream.setOutputPaused(true);
  }

  resumeOutput(): void {
    if (!this.outputPaused) return;
    this.outputPaused = false;
    this.passThroughWhilePaused = 0;
    for (const s of this.streams) s.setOutputPaused(false);
  }

  discardStream(): void {
    if (this.state === 'destroyed') return;
    this.sequencer.resync();
    const cur = this.current;
    if (cur) {
      this.current = null;
      cur.stream.kill();
    }
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.state === 'destroyed') return Promise.resolve();
    this.state = 'closing';
    this.retire();
    this.sequencer.flush();
    this.closing = this.tail
      .then(() => this.endCurrent())
      .then(() => {
        this.sequencer.close();
        if (this.state === 'closing') this.state = 'closed';
      });
    return this.closing;
  }

  destroy(): void {
    if (this.state === 'destroyed') return;
    this.state = 'destroyed';
    this.retire();
    this.sequencer.close();
    this.current = null;
    for (const s of this.streams) s.kill();
  }

  private retire(): void {
    const f = this.onRetired;
    this.onRetired = undefined;
    f?.();
  }

  // ------------------------------------------------------------------ routing

  /** Checks the chunk, finds its container and hands it to the matching path. Throws for chunks refused up front. */
  private route(chunkIn: Buffer, desc: ChunkDescriptor): Promise<ChunkOutcome> {
    if (!desc || !AUDIO_FORMATS.includes(desc.format)) {
      throw new AudioDecodeError(
        'AUDIO_UNSUPPORTED_FORMAT',
        `Unsupported audio format '${String(desc?.format)}' (expected ${AUDIO_FORMATS.join(', ')})`,
      );
    }
    const chunk = Buffer.isBuffer(chunkIn) ? chunkIn : Buffer.from(chunkIn as Uint8Array);
    if (chunk.length > this.maxChunkBytes) throw new AudioTooLargeError(this.maxChunkBytes, chunk.length);
    if (chunk.length === 0) throw new AudioDecodeError('AUDIO_INVALID', 'Audio chunk is empty');
    this.refuseWhenBacklogged(chunk.length);

    if (desc.format === 'pcm') return this.routeRaw(this.rawPcmJob(chunk, desc));
    const sniffed = sniffContainer(chunk);
    let container: Container = sniffed?.container ?? (desc.format === 'wav' ? 'wav' : 'webm');
    // Bytes without any magic continue the Ogg or MP4 stream they follow (pages or fragments cut anywhere).
    if (!sniffed && (this.lastContainer === 'ogg' || this.lastContainer === 'mp4')) container = this.lastContainer;
    switch (container) {
      case 'webm':
        if (this.lastContainer !== 'webm') this.lastContainer = 'webm';
        return this.sequencer.submit(chunk, { resumesStream: desc.resumesStream === true });
      case 'wav':
        return this.routeRaw(this.wavJob(chunk));
      case 'ogg':
      case 'mp4':
        return this.routeFramed(container, chunk, !!sniffed?.startsStream, !!sniffed);
    }
  }

  private routeRaw(job: Extract<Job, { kind: 'raw' }>): Promise<ChunkOutcome> {
    this.sequencer.flush();
    this.lastContainer = job.container;
    return this.enqueue(job, job.data.length).then(() => 'in_order' as const);
  }

  private routeFramed(container: 'ogg' | 'mp4', chunk: Buffer, starts: boolean, aligned: boolean): Promise<ChunkOutcome> {
    let rec = container === 'ogg' ? this.ogg : this.mp4;
    let bodyOffset = 0;
    if (starts) {
      const head = container === 'ogg' ? checkOggHead(chunk) : checkMp4Head(chunk);
      if (head.kind === 'unsupported_codec') {
        const what = 'codec' in head ? head.codec : head.codecs.join(', ') || 'no track';
        throw new AudioDecodeError(
          'AUDIO_UNSUPPORTED_CODEC',
          container === 'ogg'
            ? `Unsupported codec in Ogg audio (${what.slice(0, 40)}): only Opus is accepted`
            : `Unsupported codec in MP4 audio (${what.slice(0, 40)}): only one AAC (mp4a) audio track is accepted`,
        );
      }
      if (head.kind === 'incomplete') {
        throw new AudioDecodeError('AUDIO_INVALID', 'The first chunk of an MP4 recording must hold its whole head (ftyp and moov)');
      }
      if (head.kind === 'invalid') throw new AudioDecodeError('AUDIO_INVALID', `Invalid ${container === 'ogg' ? 'Ogg' : 'MP4'} stream: ${head.reason}`);
      rec = { container, no: ++this.framedCount, primer: head.head };
      bodyOffset = head.bodyOffset;
      if (container === 'ogg') this.ogg = rec;
      else this.mp4 = rec;
    } else if (!rec) {
      throw new AudioDecodeError(
        'AUDIO_STREAM_NO_HEADER',
        `Audio chunk is a continuation of ${container === 'ogg' ? 'an Ogg' : 'an MP4'} stream whose first chunk (with the header) was not received; start a new recording`,
      );
    }
    this.sequencer.flush();
    this.lastContainer = container;
    const owes = !aligned || (container === 'ogg' ? oggCarriesAudio(chunk) : mp4CarriesAudio(chunk));
    const ms = container === 'ogg' && aligned ? oggDurationMs(rec, chunk) : undefined;
    return this.enqueue({ kind: 'framed', rec, starts, data: chunk, owes, bodyOffset, ms }, chunk.length).then(() =>
      starts ? ('new_recording' as const) : aligned ? ('in_order' as const) : ('arrival_order' as const),
    );
  }

  private wavJob(chunk: Buffer): Extract<Job, { kind: 'raw' }> {
    const wav = parseWav(chunk);
    return { kind: 'raw', format: wav.sampleFormat, sampleRate: wav.sampleRate, channels: wav.channels, data: wav.data, container: 'wav' };
  }

  private rawPcmJob(chunk: Buffer, desc: ChunkDescriptor): Extract<Job, { kind: 'raw' }> {
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
    return { kind: 'raw', format: 's16le', sampleRate, channels, data: chunk, container: 'pcm' };
  }

  /**
   * Input waiting for the decoder is bounded: with some already waiting (output held by pacing, or a decoder
   * slower than the client), a chunk that would take it over the bound is refused (the client is too fast).
   */
  private refuseWhenBacklogged(incoming: number): void {
    const waiting = (this.current?.stream.queuedBytes ?? 0) + this.queuedJobBytes + this.passThroughWhilePaused;
    if (waiting > 0 && waiting + incoming > this.maxQueuedInputBytes) {
      throw new AudioLimitError(
        'AUDIO_BACKLOG_FULL',
        'Audio arrives faster than it can be relayed; slow down (the relay sends at most twice real time)',
        1,
      );
    }
  }

  // ------------------------------------------------------------------ jobs

  private enqueue(job: Job, bytes: number): Promise<void> {
    this.queuedJobBytes += bytes;
    const run = this.tail.then(() => {
      this.queuedJobBytes -= bytes;
      return this.process(job);
    });
    this.tail = run.then(noop, noop);
    return run;
  }

  private async process(job: Job): Promise<void> {
    if (this.state === 'destroyed') return;
    switch (job.kind) {
      case 'webm':
        return this.processWebm(job.w);
      case 'framed':
        return this.processFramed(job);
      case 'raw':
        return this.processRaw(job);
      case 'replace':
        return this.replaceStalled(job);
    }
  }

  private async processWebm(w: SequencedWrite): Promise<void> {
    const rec: ContainerRecording = { container: 'webm', no: w.recording.no, primer: w.recording.header.primer, continues: w.resumesStream === true };
    const key = `webm#${w.recording.no}`;
    if (w.startsRecording) {
      await this.endCurrent();
      if (this.isDestroyed()) return;
      const active = this.startStream(key, 'webm', rec, false);
      await this.feed(active, w.bytes, w.restartBytes ?? w.bytes, w.blocks > 0, w.durationMs);
      return;
    }
    const cur = this.current;
    if (cur && cur.key === key && cur.stream.usable) {
      await this.feed(cur, w.bytes, w.restartBytes ?? w.bytes, w.blocks > 0, w.durationMs);
      return;
    }
    // The recording's decoder is gone (a failure, a cut, another format in between): start it again, primed.
    if (!w.restartBytes) {
      this.emitError(new AudioDecodeError('AUDIO_DECODE_FAILED', 'Audio could not be decoded: the chunk cannot be decoded without the bytes before it'));
      return;
    }
    await this.endCurrent();
    if (this.isDestroyed()) return;
    const active = this.startStream(key, 'webm', rec, true);
    await this.feed(active, rec.primer, rec.primer, false, 0);
    await this.feed(active, w.restartBytes, w.restartBytes, w.blocks > 0, w.durationMs);
  }

  private async processFramed(job: Extract<Job, { kind: 'framed' }>): Promise<void> {
    const key = `${job.rec.container}#${job.rec.no}`;
    const cur = this.current;
    if (!job.starts && cur && cur.key === key && cur.stream.usable) {
      await this.feed(cur, job.data, job.data, job.owes, job.ms);
      return;
    }
    await this.endCurrent();
    if (this.isDestroyed()) return;
    const active = this.startStream(key, job.rec.container, job.rec, !job.starts);
    if (!job.starts) await this.feed(active, job.rec.primer, job.rec.primer, false, 0);
    await this.feed(active, job.data, job.data.subarray(job.bodyOffset), job.owes, job.ms);
  }

  private async processRaw(job: Extract<Job, { kind: 'raw' }>): Promise<void> {
    if (job.data.length === 0) return; // e.g. a WAV file without samples
    if (job.format === 's16le' && job.sampleRate === UPSTREAM_SAMPLE_RATE && job.channels === 1) {
      // Already what the upstream wants: no process.
      await this.endCurrent();
      if (this.isDestroyed()) return;
      if (this.outputPaused) this.passThroughWhilePaused += job.data.length;
      this.emitPcm(job.data);
      return;
    }
    const key = `${job.container}/${job.format}/${job.sampleRate}/${job.channels}`;
    let cur = this.current;
    if (!cur || cur.key !== key || !cur.stream.usable) {
      await this.endCurrent();
      if (this.isDestroyed()) return;
      cur = this.startStream(key, job.container, undefined, false, {
        format: job.format,
        codec: RAW_CODECS[job.format],
        options: ['-ar', String(job.sampleRate), '-ac', String(job.channels)],
      });
    }
    const bytesPerSample = { u8: 1, s16le: 2, s24le: 3, s32le: 4, f32le: 4 }[job.format];
    await this.feed(cur, job.data, job.data, true, (job.data.length / (bytesPerSample * job.channels * job.sampleRate)) * 1000);
  }

  /**
   * Writes to a stream, after the WebM structure check. On corruption, the valid prefix is still decoded, the
   * stream is ended and AUDIO_DECODE_FAILED is emitted (after the last good PCM); the next chunk restarts it primed.
   */
  private async feed(active: ActiveStream, bytes: Buffer, restartForm: Buffer, owes: boolean, ms: number | undefined): Promise<void> {
    if (bytes.length === 0) return;
    const check = active.checker ? active.checker.push(bytes) : ({ ok: true } as const);
    if (!check.ok) {
      if (check.validBytes > 0) await active.stream.write(bytes.subarray(0, check.validBytes), false);
      if (this.current === active) this.current = null;
      this.log.debug({ reason: check.reason }, 'corrupt WebM stream');
      await active.stream.failAndEnd(
        new AudioDecodeError('AUDIO_DECODE_FAILED', `Audio could not be decoded: the WebM stream is corrupt (${check.reason})`),
        this.closeTimeoutMs,
      );
      return;
    }
    if (owes && ms !== 0) active.ledger.record(restartForm, ms);
    await active.stream.write(bytes, owes);
  }

  /**
   * Starts a decoder process, within the session's restart budget (throws `AudioLimitError` when it is spent).
   * `restart`: it continues a recording that already had a decoder.
   */
  private startStream(
    key: string,
    container: Container,
    recording: ContainerRecording | undefined,
    restart: boolean,
    raw?: { format: string; codec: string; options: string[] },
    cause: 'failure' | 'stall' | 'cut' = 'failure',
  ): ActiveStream {
    const budget = this.restartBudget.take();
    if (!budget.ok) {
      this.emitEvent({ kind: 'restart_refused' });
      this.log.warn({ key, retryAfterSec: budget.retryAfterSec }, 'decoder start refused by the per-session restart budget');
      throw new AudioLimitError(
        'AUDIO_DECODER_RESTART_LIMITED',
        'Too many audio decoder restarts for this session (new recordings or format changes); slow down',
        budget.retryAfterSec,
      );
    }
    this.counts.spawns++;
    if (restart) {
      this.counts.restarts++;
      this.emitEvent({ kind: 'decoder_restart', cause });
    }
    const counters = this.counters;
    const spec = raw ?? { format: CODECS[container as 'webm' | 'ogg' | 'mp4'].format, codec: CODECS[container as 'webm' | 'ogg' | 'mp4'].codec, options: [] };
    // eslint-disable-next-line prefer-const -- assigned once below, but the stream's callbacks (created first) read it
    let active!: ActiveStream;
    const handlers: FfmpegStreamHandlers = {
      stallMs: this.stallMs,
      owesOutput: () => active.ledger.owed,
      logger: this.log,
      onPcm: (pcm) => {
        let out = pcm;
        if (active.discardBytes > 0) {
          const n = Math.min(active.discardBytes, out.length);
          active.discardBytes -= n;
          out = out.subarray(n);
        }
        active.ledger.delivered(out.length);
        this.emitPcm(out);
      },
      onFailure: (err) => {
        if (this.current?.stream === stream) this.current = null;
        if (err.code !== 'AUDIO_DECODER_STALLED') this.emitError(err); // a stall was handled when it happened
      },
      onStall: (err) => this.onStalled(active, err),
    };
    // A browser recording is decoded in-process, or takes a warm process when one is ready (the pool counts it);
    // anything else starts its own.
    const inProcess = !raw && container === 'webm' && this.webmDecoder === 'in_process';
    const warm = !raw && !inProcess && container === 'webm' ? this.pool?.take() : undefined;
    warm?.bind(handlers);
    const stream: PcmStream = inProcess
      ? this.inProcessWebm(handlers, restart || recording?.continues === true)
      : warm ??
      new FfmpegPcmStream({
        ffmpegPath: this.ffmpegPath,
        inputFormat: spec.format,
        codec: spec.codec,
        inputOptions: spec.options,
        launcher: this.launcher,
        niceness: this.decoderNice,
        starts: this.starts,
        ...handlers,
        onSpawn: () => {
          counters.processesSpawned++;
          counters.processesAlive++;
        },
        onExit: () => {
          counters.processesAlive--;
        },
      });
    if (this.outputPaused) stream.setOutputPaused(true);
    this.streams.add(stream);
    void stream.done.then(() => {
      this.streams.delete(stream);
      if (this.current?.stream === stream) this.current = null;
    });
    active = { stream, key, container, recording, ledger: new OutputLedger(MAX_UNCONFIRMED_BYTES), discardBytes: 0 };
    if (container === 'webm') {
      active.checker = new WebmStreamChecker();
    }
    this.current = active;
    return active;
  }

  /**
   * A WebM/Opus stream decoded in this process (`primed`: it continues a recording, fed its head again): on a
   * decoding thread when there are threads (its loss is a stall: the undelivered input is replayed into a new
   * stream), else on this thread in slices.
   */
  private inProcessWebm(h: FfmpegStreamHandlers, primed: boolean): PcmStream {
    const counters = this.counters;
    const threads = this.decodeThreads;
    const stream: PcmStream =
      (threads && ThreadedPcmStream.open(threads, 'webm-opus', { primed }, { logger: h.logger, onPcm: h.onPcm, onFailure: h.onFailure, onStall: h.onStall })) ??
      new WebmOpusStream({ logger: h.logger, onPcm: h.onPcm, onFailure: h.onFailure, primed, decoder: this.opusDecoder, scheduler: this.decodeScheduler });
    counters.inProcessStreams++;
    counters.inProcessStarted++;
    void stream.done.then(() => counters.inProcessStreams--);
    return stream;
  }

  /**
   * A decoder stalled (it is being killed): its replacement is queued at once, ahead of anything written after
   * this, and fed what the old one never delivered.
   */
  private onStalled(active: ActiveStream, err: AudioDecodeError): void {
    this.counts.stalls++;
    this.counters.decodeErrors++;
    if (this.current === active) this.current = null;
    const { writes, discardBytes } = active.ledger.takeForReplay();
    this.log.warn({ key: active.key, replay: writes.length }, `audio decoder stalled: ${err.message}`);
    // (nothing owed: the next chunk starts a decoder when it comes)
    if (this.state === 'open' && writes.length) {
      void this.enqueue({ kind: 'replace', old: active, writes, discardBytes }, 0).catch((e: unknown) =>
        this.log.warn({ err: (e as Error).message }, 'could not replace a stalled decoder'),
      );
    }
    this.emitEvent({ kind: 'decoder_stall' });
  }

  private async replaceStalled(job: Extract<Job, { kind: 'replace' }>): Promise<void> {
    const { old, writes, discardBytes } = job;
    await this.endCurrent(); // (nothing, unless another stream started in between)
    if (this.isDestroyed()) return;
    const active = this.startStream(old.key, old.container, old.recording, true, this.rawSpecOf(old), 'stall');
    // The first replayed write may have given part of its audio already: that part is dropped from the new output.
    active.discardBytes = discardBytes;
    if (old.recording) await this.feed(active, old.recording.primer, old.recording.primer, false, 0);
    for (const r of writes) await this.feed(active, r.bytes, r.bytes, true, r.ms);
  }

  private rawSpecOf(a: ActiveStream): { format: string; codec: string; options: string[] } | undefined {
    if (a.container !== 'wav' && a.container !== 'pcm') return undefined;
    const [, format, rate, channels] = a.key.split('/');
    return { format: format!, codec: RAW_CODECS[format as RawSampleFormat], options: ['-ar', rate!, '-ac', channels!] };
  }

  /** Ends the current stream's input and waits for its last PCM (bounded by closeTimeoutMs). */
  private async endCurrent(): Promise<void> {
    const cur = this.current;
    this.current = null;
    if (cur) await cur.stream.end(this.closeTimeoutMs);
  }

  private isDestroyed(): boolean {
    return this.state === 'destroyed';
  }

  private emitPcm(pcm: Buffer): void {
    if (this.state === 'destroyed' || pcm.length === 0) return;
    try {
      this.emit('pcm', pcm);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'pcm listener threw');
    }
  }

  private emitEvent(e: AudioPathEvent): void {
    if (this.state === 'destroyed') return;
    try {
      this.emit('audioEvent', e);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'audioEvent listener threw');
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

export interface FfmpegDecoderFactoryOptions extends AudioPathSettings {
  ffmpegPath: string;
  logger?: Logger;
  maxChunkBytes?: number;
  closeTimeoutMs?: number;
  /**
   * Warm WebM/Opus decoders kept while a session is open (LIVE_AUDIO_DECODER_POOL_SIZE; 0 = none). Only with
   * `webmDecoder: 'ffmpeg'`: in-process WebM needs no process, and nothing else takes a warm one.
   */
  poolSize?: number;
  /** A warm decoder older than this is replaced (LIVE_AUDIO_DECODER_POOL_MAX_AGE_MS). */
  poolMaxAgeMs?: number;
  /**
   * Start ffmpeg from a small launcher process, off the main thread (LIVE_AUDIO_DECODER_LAUNCHER, on by default in
   * the server's config); off (this option's default): spawned in-process. The launcher starts with the factory;
   * until it is ready, and while it restarts, processes are spawned in-process.
   */
  useLauncher?: boolean;
  /**
   * In-process WebM is decoded on this many worker threads (LIVE_AUDIO_DECODE_THREADS, 1 in the server's config), or
   * by the given threads (tests); 0 or absent: on the main thread.
   */
  decodeThreads?: number | DecodeThreads;
  /** The decoding threads' entry file (LIVE_AUDIO_DECODE_THREAD_ENTRY: tests only, the config refuses it outside NODE_ENV=test). */
  decodeThreadEntry?: string;
}

/** The server's default comes from the config (LIVE_AUDIO_DECODER_POOL_SIZE); a factory made without one has none. */
export const DEFAULT_DECODER_POOL_MAX_AGE_MS = 10 * 60_000;

/** The ffmpeg decoder factory: its counters are ffmpeg processes (also readable on the factory itself). */
export interface FfmpegDecoderFactory extends DecoderFactory, DecoderProcessCounters {
  create(sessionLabel: string): FfmpegSessionDecoder;
  readonly counters: DecoderProcessCounters;
  /** The warm pool (undefined when its size is 0). */
  readonly pool: DecoderPool | undefined;
  /** The ffmpeg launcher (undefined unless `useLauncher`). */
  readonly launcher: FfmpegLauncher | undefined;
  /** Its processes' starts (by path, timed) and the launcher's state, for `/metrics`. */
  readonly starts: DecoderStarts;
  /** Decoders created and not yet closed. */
  readonly openDecoders: number;
  /** Stops the pool and the launcher; resolves once their processes are gone. */
  close(): Promise<void>;
}

/**
 * Creates the decoder factory the server wires once (the ffmpeg path comes from `resolveFfmpegPath`).
 * Note: fluent-ffmpeg keeps the binary path (and its capability probe) in a module-global cache, so all factories
 * of one process must use the same ffmpeg binary.
 *
 * The warm pool runs while at least one decoder (one session) is open: an idle server holds no ffmpeg. It serves
 * WebM only, so it is not started when WebM is decoded in-process (`webmDecoder`, the default).
 */
export function createFfmpegDecoderFactory(opts: FfmpegDecoderFactoryOptions): FfmpegDecoderFactory {
  const counters: DecoderCounters = { processesAlive: 0, processesSpawned: 0, decodeErrors: 0, inProcessStreams: 0, inProcessStarted: 0 };
  const poolSize = (opts.webmDecoder ?? DEFAULT_WEBM_DECODER) === 'ffmpeg' ? (opts.poolSize ?? 0) : 0;
  const inProcessWebm = (opts.webmDecoder ?? DEFAULT_WEBM_DECODER) === 'in_process';
  const decodeThreads =
    opts.decodeThreads instanceof DecodeThreads
      ? opts.decodeThreads
      : inProcessWebm && (opts.decodeThreads ?? 0) > 0
        ? new DecodeThreads({ threads: opts.decodeThreads as number, logger: opts.logger, entry: opts.decodeThreadEntry })
        : undefined;
  // Started with the server, so that no session's first chunk waits for a thread's start (its entry and wasm loaded).
  decodeThreads?.prestart();
  const launcher = opts.useLauncher ? new FfmpegLauncher({ logger: opts.logger }) : undefined;
  void launcher?.start().catch((err: Error) => opts.logger?.error({ err: err.message }, 'the ffmpeg launcher could not start; decoders start in-process'));
  const starts = new DecoderStarts(() => {
    if (!launcher) return undefined;
    const s = launcher.stats();
    return { up: launcher.available, restarts: Math.max(0, s.launchersStarted - 1) };
  });
  const pool =
    poolSize > 0
      ? new DecoderPool({
          ffmpegPath: opts.ffmpegPath,
          inputFormat: CODECS.webm.format,
          codec: CODECS.webm.codec,
          size: poolSize,
          maxAgeMs: opts.poolMaxAgeMs ?? DEFAULT_DECODER_POOL_MAX_AGE_MS,
          logger: opts.logger,
          launcher,
          niceness: opts.decoderNice,
          starts,
          // A warm process counts as a decoder (spawned, alive) once a session takes it; until then it is pooled.
          counters: {
            spawned: () => undefined,
            handedOver: () => {
              counters.processesSpawned++;
              counters.processesAlive++;
            },
            handedOverExited: () => counters.processesAlive--,
          },
        })
      : undefined;
  // One for all sessions: in-process WebM decoding shares the main thread fairly and yields to its I/O.
  const decodeScheduler = new DecodeScheduler();
  let open = 0;
  return {
    create(sessionLabel: string) {
      open++;
      pool?.setActive(true);
      decodeThreads?.prestart();
      return new FfmpegSessionDecoder({
        ...opts,
        decodeScheduler,
        counters,
        sessionLabel,
        pool,
        launcher,
        starts,
        decodeThreads,
        onRetired: () => {
          open--;
          if (open === 0) pool?.setActive(false);
        },
      });
    },
    get counters() {
      return this;
    },
    get pool() {
      return pool;
    },
    get launcher() {
      return launcher;
    },
    get starts() {
      return starts;
    },
    get openDecoders() {
      return open;
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
    get inProcessStreams() {
      return counters.inProcessStreams;
    },
    get inProcessStarted() {
      return counters.inProcessStarted;
    },
    get processesPooled() {
      const s = pool?.stats();
      return s ? s.ready + s.starting + s.retiring : 0;
    },
    get poolSpawned() {
      return pool?.stats().spawned ?? 0;
    },
    get decodeThreads() {
      return decodeThreads?.stats();
    },
    async close() {
      await pool?.close();
      await launcher?.close();
      await decodeThreads?.close();
    },
  };
}

function noop(): void {}

/** Audio in an Ogg/Opus chunk, from its pages' granule positions, and remembers the last one. */
function oggDurationMs(rec: ContainerRecording, chunk: Buffer): number | undefined {
  const last = lastGranule(chunk);
  if (last === undefined) return undefined;
  const from = rec.lastGranule ?? 0n;
  rec.lastGranule = last;
  return last >= from ? Number(last - from) / 48 : undefined;
}

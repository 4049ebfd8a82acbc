import type { ChunkDescriptor } from './audio-types';
import type { DecoderStartSource } from './decoder-starts';
import type { DecodeThreadsStats } from './threads/decode-threads';
import type { TypedEmitter } from '../../util/typed-emitter';
import type { ChunkOutcome, ReorderStats } from './webm/webm-sequencer';

/** Something worth counting on a session's audio path (metrics and logs). */
export type AudioPathEvent =
  | { kind: 'reordered' }
  | { kind: 'duplicate' }
  | { kind: 'skipped'; lostMs: number }
  | { kind: 'late' }
  | { kind: 'unplaced' }
  /** A decoder process was started again for the same recording (after a failure, a stall or a cut). */
  | { kind: 'decoder_restart'; cause: 'failure' | 'stall' | 'cut' }
  /** A decoder accepted nothing for the stall deadline and was killed. */
  | { kind: 'decoder_stall' }
  /** A restart was refused by the per-session restart budget. */
  | { kind: 'restart_refused' };

/**
 * Events of a per-session decoder.
 * - `pcm`: decoded 16 kHz mono s16le audio, in stream order, always an even number of bytes.
 * - `error`: the decoder failed on audio it had accepted (e.g. ffmpeg rejected the stream or crashed). The
 *   decoder stays usable: the next chunk of the same recording restarts it, primed with the recording's head.
 * - `audioEvent`: reorder, restart and stall events (for metrics).
 */
export type SessionAudioDecoderEvents = {
  pcm: (pcm: Buffer) => void;
  error: (err: AudioDecodeError) => void;
  audioEvent: (e: AudioPathEvent) => void;
  /** WebM bytes about to be written to the decoder, in stream order (a session record follows the stream with them). */
  webmWritten: (bytes: Buffer, startsRecording: boolean, durationMs: number | undefined) => void;
};

/** What a decoder counts about its session's audio. */
export interface DecoderStats extends ReorderStats {
  /** Decoder processes started for this session. */
  spawns: number;
  /** Of which restarts of a recording already running (failure, stall, cut). */
  restarts: number;
  /** Decoders killed for accepting nothing within the stall deadline. */
  stalls: number;
  /** The container of the current stream (`webm`, `ogg`, `mp4`, `wav`, `pcm`), if any. */
  container: string | null;
}

/**
 * The audio seam: one instance per live session. Implementations: `FfmpegSessionDecoder`.
 *
 * Chunks of timed containers (WebM) are put in the order of their own timing, not of the `write` calls; everything
 * else is decoded in call order. Output can be held (`pauseOutput`) so decoded audio does not pile up while the
 * upstream is paced.
 */
export interface SessionAudioDecoder extends TypedEmitter<SessionAudioDecoderEvents> {
  /**
   * Feeds one client chunk (already base64-decoded). Resolves once the chunk was placed (queued for the decoder or
   * dropped as a duplicate or late) with where it went. Rejects with `AudioDecodeError` when the chunk is refused
   * (a continuation before any header, another codec, a bad WAV header, ...) or `AudioLimitError` when a budget
   * refuses it. A failure found later by the decoder process is reported through the `error` event instead.
   */
  write(chunk: Buffer, desc: ChunkDescriptor): Promise<ChunkOutcome>;
  /** Ends the input and resolves once every decoded sample has been emitted and the process has exited. */
  close(): Promise<void>;
  /** Kills the decoder at once; no further events. */
  destroy(): void;
  /** Holds decoded output (the process is back-pressured) until `resumeOutput`. */
  pauseOutput(): void;
  resumeOutput(): void;
  /**
   * Drops the current stream's audio not yet delivered and everything waiting to be decoded (e.g. the audio budget
   * is spent); the next chunk of the recording starts a decoder primed with its head.
   */
  discardStream(): void;
  stats(): DecoderStats;
  /**
   * Input is still on its way to PCM: writes queued, a process that has not taken its input or has given no output
   * since audio was last written to it (e.g. still starting).
   */
  inputPending(): boolean;
  /** Number of decoder processes alive for this session (0 or 1). */
  readonly processesAlive: number;
}

/** Process counters of a decoder factory, across all its decoders (read by metrics and shutdown). */
export interface DecoderProcessCounters {
  /** Decoder processes alive now. */
  readonly processesAlive: number;
  /** Decoder processes started for sessions since start (a warm one from the pool counts when a session takes it). */
  readonly processesSpawned: number;
  /** `error` events (AUDIO_DECODE_FAILED / AUDIO_DECODER_CRASHED) and stalls since start; up-front refusals not counted. */
  readonly decodeErrors: number;
  /** Streams decoded in this process now (WebM/Opus with LIVE_AUDIO_WEBM_DECODER=in_process; not processes). */
  readonly inProcessStreams?: number;
  /** Streams decoded in this process started since start. */
  readonly inProcessStarted?: number;
  /** The decoding threads of in-process WebM, if any. */
  readonly decodeThreads?: DecodeThreadsStats;
  /** Warm processes of the decoder pool: waiting for a recording, starting, or being stopped (not in `processesAlive`). */
  readonly processesPooled?: number;
  /** Processes the decoder pool started since start (handed over or not). */
  readonly poolSpawned?: number;
}

/** Creates one decoder per session; a factory that runs processes says how many through `counters`. */
export interface DecoderFactory {
  create(sessionLabel: string): SessionAudioDecoder;
  readonly counters?: DecoderProcessCounters;
  /** How its processes start (path, duration) and its launcher's state, when it runs processes. */
  readonly starts?: DecoderStartSource;
  /** Stops whatever the factory runs besides its decoders (a warm pool); at server shutdown; resolves once it has. */
  close?(): Promise<void>;
}

/** Client-visible audio problems; mapped to HTTP 422 (415 for formats and codecs) by the controllers. */
export class AudioDecodeError extends Error {
  constructor(
    readonly code:
      | 'AUDIO_STREAM_NO_HEADER'
      | 'AUDIO_INVALID'
      | 'AUDIO_DECODE_FAILED'
      | 'AUDIO_UNSUPPORTED_FORMAT'
      | 'AUDIO_UNSUPPORTED_CODEC'
      | 'AUDIO_DECODER_CRASHED'
      | 'AUDIO_DECODER_STALLED',
    message: string,
  ) {
    super(message);
    this.name = 'AudioDecodeError';
  }
}

/** A chunk refused by a per-session budget of the audio path; mapped to HTTP 429 with `Retry-After`. */
export class AudioLimitError extends Error {
  constructor(
    readonly code: 'AUDIO_DECODER_RESTART_LIMITED' | 'AUDIO_BACKLOG_FULL',
    message: string,
    readonly retryAfterSec: number,
  ) {
    super(message);
    this.name = 'AudioLimitError';
  }
}

/** A chunk larger than the decoder's limit (`maxChunkBytes`); mapped to HTTP 413 by the controllers. */
export class AudioTooLargeError extends Error {
  constructor(
    readonly maxBytes: number,
    readonly actualBytes: number,
  ) {
    super(`Audio chunk of ${actualBytes} bytes exceeds the limit of ${maxBytes} bytes`);
    this.name = 'AudioTooLargeError';
  }
}

import type { ChunkDescriptor } from './audio-types';
import type { TypedEmitter } from '../../util/typed-emitter';

/**
 * Events of a per-session decoder.
 * - `pcm`: decoded 16 kHz mono s16le audio, in input order, always an even number of bytes.
 * - `error`: the decoder failed (e.g. ffmpeg rejected the stream or crashed). The decoder stays usable:
 *   the next chunk that starts a new stream (a WebM EBML header, a WAV file, raw PCM) starts a new decoder.
 */
export interface SessionAudioDecoderEvents {
  [event: string]: (...args: any[]) => void;
  pcm: (pcm: Buffer) => void;
  error: (err: AudioDecodeError) => void;
}

/**
 * The audio seam: one instance per live session. Chunks are written strictly in the order of `write` calls
 * (callers serialise per session). Implementations: `FfmpegSessionDecoder`.
 */
export interface SessionAudioDecoder extends TypedEmitter<SessionAudioDecoderEvents> {
  /**
   * Feeds one client chunk (already base64-decoded). Resolves when the decoder accepted the bytes.
   * Rejects with `AudioDecodeError` when the chunk can be refused up front (a WebM continuation before any
   * header, a bad WAV header, an odd PCM byte count, ...). A failure found later by the decoder process is
   * reported through the `error` event instead.
   */
  write(chunk: Buffer, desc: ChunkDescriptor): Promise<void>;
  /** Ends the input and resolves once every decoded sample has been emitted and the process has exited. */
  close(): Promise<void>;
  /** Kills the decoder at once; no further events. */
  destroy(): void;
  /** Number of decoder processes alive for this session (0 or 1). */
  readonly processesAlive: number;
}

/** Client-visible audio problems; mapped to HTTP 422 (or 413 for size) by the controllers. */
export class AudioDecodeError extends Error {
  constructor(
    readonly code:
      | 'AUDIO_STREAM_NO_HEADER'
      | 'AUDIO_INVALID'
      | 'AUDIO_DECODE_FAILED'
      | 'AUDIO_UNSUPPORTED_FORMAT'
      | 'AUDIO_DECODER_CRASHED',
    message: string,
  ) {
    super(message);
    this.name = 'AudioDecodeError';
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

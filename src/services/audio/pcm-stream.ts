import type { Logger } from '../../util/logger';
import type { AudioDecodeError } from './session-audio-decoder';

/**
 * One decoding stream of a session: the bytes of one container stream in (in stream order), 16 kHz mono s16le PCM
 * out through the owner's `onPcm`. The session decoder keeps one current stream per recording or raw format and
 * replaces it on a new recording, a failure or a stall.
 *
 * Implementations: `FfmpegPcmStream` (one ffmpeg process), `WebmOpusStream` (browser WebM/Opus decoded in-process).
 */
export interface PcmStream {
  /** Resolves once the stream is finished and its output delivered (or it never started). Never rejects. */
  readonly done: Promise<void>;
  /** pid of the process decoding it, if one runs (in-process streams have none). */
  readonly pid: number | undefined;
  /** A decoder process runs for it (counted as a live decoder process). */
  readonly alive: boolean;
  /** It accepts more input (not ended, failed, killed or finished). */
  readonly usable: boolean;
  /** Input bytes handed to it and not yet decoded (the owner bounds this backlog). */
  readonly queuedBytes: number;
  /** Input that must produce audio has not been answered with output yet. */
  readonly owesOutput: boolean;
  /**
   * Holds decoded output (and so the decoding of more input) until released. Released output comes in a later turn,
   * never inside this call (the owner may release it and drop the stream in one go).
   */
  setOutputPaused(paused: boolean): void;
  /**
   * Hands bytes to the decoder and resolves at once; output follows through `onPcm`, never synchronously inside this
   * call. Bytes written to an unusable stream are dropped. `owesOutput`: the bytes hold audio.
   */
  write(buf: Buffer, owesOutput?: boolean): Promise<void>;
  /** Ends the input and resolves once every decoded sample was delivered (bounded by `timeoutMs` of silence). */
  end(timeoutMs: number): Promise<void>;
  /** Reports `err` through `onFailure` once the audio written before the failure point has been delivered. */
  failAndEnd(err: AudioDecodeError, timeoutMs: number): Promise<void>;
  /** Stops at once: no more output and no failure report. */
  kill(): void;
}

/** What the owner gives a stream it creates. */
export interface PcmStreamHandlers {
  logger: Logger;
  /** Decoded 16 kHz mono s16le, even-length, in stream order. */
  onPcm: (pcm: Buffer) => void;
  /** The stream failed on audio it had accepted; called at most once, after the PCM before the failure, never after `kill()`. */
  onFailure: (err: AudioDecodeError) => void;
}

import type { Logger } from '../../../util/logger';
import type { PcmStream, PcmStreamHandlers } from '../pcm-stream';
import { AudioDecodeError } from '../session-audio-decoder';
import type { OpusPacketDecoderFactory } from './opus-packet-decoder';
import { DecodeScheduler, type DecodeTask } from './decode-scheduler';
import { WebmOpusDecoder, type WebmOpusDecoderStats } from './webm-opus-decoder';

export interface WebmOpusStreamOptions extends PcmStreamHandlers {
  /** The Opus decoder of the stream (default: libopus at 16 kHz mono). */
  decoder?: OpusPacketDecoderFactory;
  /**
   * The stream continues a recording that already had a decoder (fed its head again, then later bytes): the
   * OpusHead pre-skip, which belongs to the recording's first samples, is not dropped again.
   */
  primed?: boolean;
  /** Most packets decoded in one slice (then other streams and the event loop's I/O get a turn; default 20). */
  packetsPerTurn?: number;
  /** Shares decoding time with the other streams (the factory's one); default: a scheduler of its own. */
  scheduler?: DecodeScheduler;
  /** Told once when the stream is finished (the owner counts live in-process streams). */
  onFinished?: () => void;
}

/** What a stream did (for tests and logs). */
export interface WebmOpusStreamStats extends WebmOpusDecoderStats {
  /** Slices decoded (each one in a turn of the event loop given by the scheduler). */
  turns: number;
}

/**
 * A browser WebM/Opus recording decoded on this thread (no ffmpeg): `WebmOpusDecoder` (demuxer → libopus at 16 kHz
 * mono) run in slices.
 *
 * - `write()` only queues: decoding runs in later turns of the event loop given by the `DecodeScheduler` (shared by
 *   the streams of a server), at most `packetsPerTurn` packets a slice, so one 5 MB chunk (or many streams at once)
 *   cannot hold the loop, and `onPcm` never runs inside `write()`.
 * - Held output (`setOutputPaused(true)`) stops decoding: the input stays queued (`queuedBytes`), so the owner's
 *   backlog bound holds as it does for an ffmpeg whose pipe is full.
 * - Failures are the core's (bad packets, broken structure: see WebmOpusDecoder), reported after the PCM decoded
 *   before them; after `end()` a broken stream only ends.
 * - Not a process: `pid` is undefined and `alive` false (`processesAlive` counts processes only). It cannot stall.
 */
export class WebmOpusStream implements PcmStream {
  readonly done: Promise<void>;
  readonly pid = undefined;
  readonly alive = false;

  private readonly core: WebmOpusDecoder;
  private readonly log: Logger;
  private readonly packetsPerTurn: number;
  private readonly scheduler: DecodeScheduler;
  private readonly task: DecodeTask = { runSlice: () => this.turn() };
  private resolveDone!: () => void;
  private paused = false;
  private inputEnded = false;
  private killed = false;
  private settled = false;
  /** Set by the owner (`failAndEnd`) or by a bug in decoding; the core's own failure is reported otherwise. */
  private ownFailure: AudioDecodeError | null = null;
  private turns = 0;

  constructor(private readonly opts: WebmOpusStreamOptions) {
    this.log = opts.logger;
    this.packetsPerTurn = Math.max(1, opts.packetsPerTurn ?? 20);
    this.scheduler = opts.scheduler ?? new DecodeScheduler();
    this.core = new WebmOpusDecoder({ logger: opts.logger, decoder: opts.decoder, primed: opts.primed });
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  }

  get usable(): boolean {
    return !this.inputEnded && !this.killed && !this.ownFailure && !this.core.isStopped && !this.settled;
  }

  get queuedBytes(): number {
    return this.settled ? 0 : this.core.bufferedBytes;
  }

  get owesOutput(): boolean {
    return !this.settled && !this.killed && this.core.pendingWork;
  }

  stats(): WebmOpusStreamStats {
    return { ...this.core.stats(), turns: this.turns };
  }

  setOutputPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (!paused) this.schedule();
  }

  write(buf: Buffer, _owesOutput = true): Promise<void> {
    if (!this.usable || buf.length === 0) return Promise.resolve();
    this.core.write(buf);
    this.schedule();
    return Promise.resolve();
  }

  async end(_timeoutMs: number): Promise<void> {
    // Decoding in-process cannot stall: what is queued is decoded (while the output is held, once it is released).
    if (!this.inputEnded) {
      this.inputEnded = true;
      this.core.endInput();
      this.schedule();
    }
    await this.done;
  }

  async failAndEnd(err: AudioDecodeError, timeoutMs: number): Promise<void> {
    if (!this.ownFailure && !this.killed) this.ownFailure = err;
    await this.end(timeoutMs);
  }

  kill(): void {
    if (this.settled) return;
    this.killed = true;
    this.inputEnded = true;
    this.settle();
  }

  private schedule(): void {
    if (this.settled || this.paused) return;
    this.scheduler.request(this.task);
  }

  /** One slice: at most `packetsPerTurn` packets, then their PCM in one `onPcm`. True: more is ready now. */
  private turn(): boolean {
    try {
      return this.slice();
    } catch (err) {
      // A bug, not the input: the stream fails (the owner restarts it primed), the server goes on.
      this.log.error({ err: (err as Error).message }, 'in-process WebM decoding failed');
      this.ownFailure ??= new AudioDecodeError('AUDIO_DECODER_CRASHED', 'The audio decoder failed');
      this.settle();
      return false;
    }
  }

  private slice(): boolean {
    if (this.settled || this.paused) return false;
    this.turns++;
    const { pcm, more } = this.core.decodeSome(this.packetsPerTurn);
    this.deliver(pcm);
    if (this.settled) return false;
    if (this.core.isStopped) {
      // What was decoded before the failure point went out above; the rest of the input is not decoded.
      this.inputEnded = true;
      this.settle();
      return false;
    }
    if (!more && this.inputEnded) this.settle();
    return more && !this.paused && !this.settled;
  }

  private deliver(out: Buffer[]): void {
    if (out.length === 0 || this.killed) return;
    const pcm = out.length === 1 ? out[0]! : Buffer.concat(out);
    try {
      this.opts.onPcm(pcm);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'onPcm threw');
    }
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.scheduler.cancel(this.task);
    this.core.close();
    const failure = this.ownFailure ?? this.core.failure;
    if (failure && !this.killed) {
      this.log.warn({ code: failure.code, reason: failure.message }, 'audio decoder failed');
      try {
        this.opts.onFailure(failure);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'onFailure threw');
      }
    }
    try {
      this.opts.onFinished?.();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'onFinished threw');
    }
    this.resolveDone();
  }
}

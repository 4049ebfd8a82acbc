import type { Logger } from '../../../util/logger';
import { opusPacketDurationMs } from '../opus-packet';
import type { PcmStream, PcmStreamHandlers } from '../pcm-stream';
import { AudioDecodeError } from '../session-audio-decoder';
import { createLibopusDecoder, type OpusPacketDecoder, type OpusPacketDecoderFactory } from './opus-packet-decoder';
import { TimelineGuard } from './timeline-guard';
import { DecodeScheduler, type DecodeTask } from './decode-scheduler';
import { WebmDemuxError, WebmOpusDemuxer, type OpusTrack } from './webm-opus-demuxer';

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
export interface WebmOpusStreamStats {
  packets: number;
  /** Packets skipped as undecodable (rejected by libopus, no valid TOC, laced, oversized, empty). */
  badPackets: number;
  /** Packets dropped because the audio decoded was already ahead of the block times (see TimelineGuard). */
  aheadOfTimeline: number;
  /** Slices decoded (each one in a turn of the event loop given by the scheduler). */
  turns: number;
}

/** Undecodable packets accepted while the input is open before the stream is declared undecodable (as ffmpeg's 5 error lines). */
const MAX_BAD_PACKETS = 5;
/** Elements the demuxer may read per packet of the turn's budget (a stream of tiny non-audio elements yields too). */
const ELEMENTS_PER_PACKET = 8;
const SAMPLES_PER_MS = 16;

/**
 * A browser WebM/Opus recording decoded in this process (no ffmpeg): `WebmOpusDemuxer` → libopus at 16 kHz mono.
 *
 * - `write()` only queues: decoding runs in later turns of the event loop given by the `DecodeScheduler` (shared by
 *   the streams of a server), at most `packetsPerTurn` packets a slice, so one 5 MB chunk (or many streams at once)
 *   cannot hold the loop, and `onPcm` never runs inside `write()`.
 * - Held output (`setOutputPaused(true)`) stops decoding: the input stays queued (`queuedBytes`), so the owner's
 *   backlog bound holds as it does for an ffmpeg whose pipe is full.
 * - Failure policy, as for ffmpeg: a packet libopus rejects (or that cannot be Opus) is skipped and counted; the
 *   5th while the input is open fails the stream with AUDIO_DECODE_FAILED after the PCM decoded before it. A broken
 *   structure or a recording without an Opus track fails it the same way. After `end()`, bad packets are only logged.
 * - Not a process: `pid` is undefined and `alive` false (`processesAlive` counts processes only). It cannot stall.
 */
export class WebmOpusStream implements PcmStream {
  readonly done: Promise<void>;
  readonly pid = undefined;
  readonly alive = false;

  private readonly demuxer = new WebmOpusDemuxer();
  private readonly guard = new TimelineGuard();
  private readonly log: Logger;
  private readonly packetsPerTurn: number;
  private decoder: OpusPacketDecoder | null = null;
  private resolveDone!: () => void;
  private heads = 0;
  /** 16 kHz samples still to drop at the start of the recording (its OpusHead pre-skip). */
  private dropSamples = 0;
  private readonly scheduler: DecodeScheduler;
  private readonly task: DecodeTask = { runSlice: () => this.turn() };
  private paused = false;
  private inputEnded = false;
  private killed = false;
  private settled = false;
  private failure: AudioDecodeError | null = null;
  /** The stream failed by itself (bad packets, broken structure): nothing more is decoded. */
  private broken = false;
  /** Input was written since decoding last ran out of bytes (there may be audio to give). */
  private work = false;
  private lastBadReason = '';
  private readonly counts: WebmOpusStreamStats = { packets: 0, badPackets: 0, aheadOfTimeline: 0, turns: 0 };

  constructor(private readonly opts: WebmOpusStreamOptions) {
    this.log = opts.logger;
    this.packetsPerTurn = Math.max(1, opts.packetsPerTurn ?? 20);
    this.scheduler = opts.scheduler ?? new DecodeScheduler();
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  }

  get usable(): boolean {
    return !this.inputEnded && !this.killed && !this.failure && !this.settled;
  }

  get queuedBytes(): number {
    return this.settled ? 0 : this.demuxer.bufferedBytes;
  }

  get owesOutput(): boolean {
    return !this.settled && !this.killed && this.work;
  }

  stats(): WebmOpusStreamStats {
    return { ...this.counts };
  }

  setOutputPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (!paused) this.schedule();
  }

  write(buf: Buffer, _owesOutput = true): Promise<void> {
    if (!this.usable || buf.length === 0) return Promise.resolve();
    this.demuxer.push(buf);
    this.work = true;
    this.schedule();
    return Promise.resolve();
  }

  async end(_timeoutMs: number): Promise<void> {
    // Decoding in-process cannot stall: what is queued is decoded (while the output is held, once it is released).
    if (!this.inputEnded) {
      this.inputEnded = true;
      this.schedule();
    }
    await this.done;
  }

  async failAndEnd(err: AudioDecodeError, timeoutMs: number): Promise<void> {
    if (!this.failure && !this.killed) this.failure = err;
    await this.end(timeoutMs);
  }

  kill(): void {
    if (this.settled) return;
    this.killed = true;
    this.inputEnded = true;
    this.settle();
  }

  // ------------------------------------------------------------------ decoding

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
      this.broken = true;
      this.failure ??= new AudioDecodeError('AUDIO_DECODER_CRASHED', 'The audio decoder failed');
      this.settle();
      return false;
    }
  }

  private slice(): boolean {
    if (this.settled || this.paused) return false;
    this.counts.turns++;
    const out: Buffer[] = [];
    let more = false;
    let budget = this.packetsPerTurn;
    try {
      while (budget > 0 && !this.broken) {
        const ev = this.demuxer.next(budget * ELEMENTS_PER_PACKET);
        if (!ev) {
          this.work = false;
          break;
        }
        if (ev.kind === 'budget') {
          more = true;
          break;
        }
        if (ev.kind === 'head') {
          this.startRecording(ev.track);
          continue;
        }
        budget--;
        if (ev.kind === 'bad') {
          this.badPacket(ev.reason);
          continue;
        }
        const pcm = this.decodePacket(ev.packet, ev.timeMs);
        if (pcm) out.push(pcm);
      }
      if (budget === 0) more = true;
    } catch (err) {
      if (!(err instanceof WebmDemuxError)) throw err;
      this.broken = true;
      if (!this.failure && !this.inputEnded) this.failure = new AudioDecodeError('AUDIO_DECODE_FAILED', `Audio could not be decoded: ${err.message}`);
      else this.log.debug({ reason: err.message }, 'WebM stream broken after its end');
    }
    this.deliver(out);
    if (this.settled) return false;
    if (this.broken) {
      // What was decoded before the failure point went out above; the rest of the input is not decoded.
      this.inputEnded = true;
      this.settle();
      return false;
    }
    if (!more && this.inputEnded) this.settle();
    return more && !this.paused && !this.settled;
  }

  private startRecording(track: OpusTrack): void {
    const first = this.heads++ === 0;
    if (!this.decoder) {
      try {
        this.decoder = (this.opts.decoder ?? createLibopusDecoder)();
      } catch (err) {
        this.broken = true;
        this.failure ??= new AudioDecodeError('AUDIO_DECODER_CRASHED', 'The audio decoder could not be run');
        this.log.error({ err: (err as Error).message }, 'could not create the Opus decoder');
        return;
      }
    } else {
      this.decoder.reset();
    }
    this.guard.reset();
    // 48 kHz samples → 16 kHz; not again when a restart is primed with the recording's head.
    this.dropSamples = first && this.opts.primed ? 0 : Math.round(track.preSkip / 3);
    this.log.debug({ track: track.number, channels: track.channels, preSkip: track.preSkip, primed: !!this.opts.primed }, 'WebM/Opus recording');
  }

  private decodePacket(packet: Buffer, timeMs: number): Buffer | undefined {
    const ms = opusPacketDurationMs(packet);
    if (ms === undefined) {
      this.badPacket('not an Opus packet');
      return undefined;
    }
    if (!this.decoder) {
      // (Only when the decoder could not be created; the failure is set.)
      return undefined;
    }
    if (!this.guard.admits(timeMs)) {
      if (this.counts.aheadOfTimeline++ === 0) this.log.warn({ timeMs }, 'Opus packets beyond their block times dropped');
      return undefined;
    }
    let pcm: Buffer;
    try {
      pcm = this.decoder.decode(packet);
    } catch (err) {
      this.badPacket((err as Error).message);
      return undefined;
    }
    this.counts.packets++;
    this.guard.decoded(pcm.length / 2 / SAMPLES_PER_MS);
    if (this.dropSamples > 0) {
      const n = Math.min(this.dropSamples, pcm.length >> 1);
      this.dropSamples -= n;
      pcm = pcm.subarray(n * 2);
    }
    return pcm.length ? pcm : undefined;
  }

  private badPacket(reason: string): void {
    this.counts.badPackets++;
    this.lastBadReason = reason;
    this.log.debug({ reason, badPackets: this.counts.badPackets }, 'Opus packet skipped');
    if (this.inputEnded || this.failure || this.counts.badPackets < MAX_BAD_PACKETS) return;
    this.broken = true;
    this.failure = new AudioDecodeError(
      'AUDIO_DECODE_FAILED',
      `Audio could not be decoded: ${this.counts.badPackets} Opus packets were rejected (${this.lastBadReason.slice(0, 80)})`,
    );
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
    this.work = false;
    this.scheduler.cancel(this.task);
    this.decoder?.free();
    this.decoder = null;
    if (this.counts.badPackets || this.counts.aheadOfTimeline) this.log.debug({ ...this.counts }, 'WebM/Opus stream finished');
    if (this.failure && !this.killed) {
      this.log.warn({ code: this.failure.code, reason: this.failure.message }, 'audio decoder failed');
      try {
        this.opts.onFailure(this.failure);
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

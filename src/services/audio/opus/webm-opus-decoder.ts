import { silentLogger, type Logger } from '../../../util/logger';
import { opusPacketDurationMs } from '../opus-packet';
import { AudioDecodeError } from '../session-audio-decoder';
import type { SyncDecodeResult, SyncPcmDecoder } from '../threads/sync-pcm-decoder';
import { createLibopusDecoder, type OpusPacketDecoder, type OpusPacketDecoderFactory } from './opus-packet-decoder';
import { TimelineGuard } from './timeline-guard';
import { WebmDemuxError, WebmOpusDemuxer, type OpusTrack } from './webm-opus-demuxer';

export interface WebmOpusDecoderOptions {
  logger?: Logger;
  /** The Opus decoder of the stream (default: libopus at 16 kHz mono). */
  decoder?: OpusPacketDecoderFactory;
  /**
   * The stream continues a recording that already had a decoder (fed its head again, then later bytes): the
   * OpusHead pre-skip, which belongs to the recording's first samples, is not dropped again.
   */
  primed?: boolean;
}

/** What a decoder did (for tests and logs). */
export interface WebmOpusDecoderStats {
  packets: number;
  /** Packets skipped as undecodable (rejected by libopus, no valid TOC, laced, oversized, empty). */
  badPackets: number;
  /** Packets dropped because the audio decoded was already ahead of the block times (see TimelineGuard). */
  aheadOfTimeline: number;
}

/** Undecodable packets accepted while the input is open before the stream is declared undecodable (as ffmpeg's 5 error lines). */
const MAX_BAD_PACKETS = 5;
/** Elements the demuxer may read per packet of a call's budget (a stream of tiny non-audio elements yields too). */
const ELEMENTS_PER_PACKET = 8;
const SAMPLES_PER_MS = 16;

/**
 * The synchronous core of in-process WebM/Opus decoding: `WebmOpusDemuxer` → libopus at 16 kHz mono, with the
 * OpusHead pre-skip dropped and the decoded audio bounded by the block times (`TimelineGuard`). It does work only
 * when asked (`decodeSome`, or `push`/`finish` which decode everything), so its owner decides where and in what
 * slices it runs: `WebmOpusStream` on the main thread a slice per event-loop turn, a decoding thread all at once.
 *
 * Failure policy, as for ffmpeg: a packet libopus rejects (or that cannot be Opus) is skipped and counted; the 5th
 * while the input is open breaks the stream (AUDIO_DECODE_FAILED) after the PCM decoded before it. A broken
 * structure or a recording without an Opus track breaks it the same way. After `endInput()`, bad packets are only
 * logged.
 */
export class WebmOpusDecoder implements SyncPcmDecoder {
  private readonly demuxer = new WebmOpusDemuxer();
  private readonly guard = new TimelineGuard();
  private readonly log: Logger;
  private decoder: OpusPacketDecoder | null = null;
  private heads = 0;
  /** 16 kHz samples still to drop at the start of the recording (its OpusHead pre-skip). */
  private dropSamples = 0;
  private inputEnded = false;
  private closed = false;
  private brokenBy: AudioDecodeError | null = null;
  /** Nothing more is decoded (broken, or its structure broke after the input ended). */
  private stopped = false;
  /** Input was written since decoding last ran out of bytes (there may be audio to give). */
  private work = false;
  private lastBadReason = '';
  private readonly counts: WebmOpusDecoderStats = { packets: 0, badPackets: 0, aheadOfTimeline: 0 };

  constructor(private readonly opts: WebmOpusDecoderOptions = {}) {
    this.log = opts.logger ?? silentLogger;
  }

  /** Why the stream failed (nothing more is decoded), if it broke while its input was open. */
  get failure(): AudioDecodeError | null {
    return this.brokenBy;
  }

  /** Nothing more will be decoded (it failed, or its structure broke after the input ended). */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Input bytes held and not yet decoded. */
  get bufferedBytes(): number {
    return this.closed ? 0 : this.demuxer.bufferedBytes;
  }

  /** Input was written since decoding last ran out of bytes. */
  get pendingWork(): boolean {
    return this.work && !this.stopped && !this.closed;
  }

  stats(): WebmOpusDecoderStats {
    return { ...this.counts };
  }

  /** Queues input; nothing is decoded until `decodeSome`. */
  write(bytes: Buffer): void {
    if (this.closed || this.stopped || bytes.length === 0) return;
    this.demuxer.push(bytes);
    this.work = true;
  }

  /** No more input: bad packets no longer break the stream (the valid prefix is decoded). */
  endInput(): void {
    this.inputEnded = true;
  }

  /**
   * Decodes at most `packetBudget` packets. `more`: the budget ran out before the input did (call again). The PCM of
   * the call comes in pieces, in order.
   */
  decodeSome(packetBudget: number): { pcm: Buffer[]; more: boolean } {
    const out: Buffer[] = [];
    let budget = Math.max(1, packetBudget);
    let more = false;
    if (this.closed || this.stopped) return { pcm: out, more };
    try {
      while (budget > 0 && !this.stopped) {
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
      this.stopped = true;
      this.work = false;
      if (!this.inputEnded) this.brokenBy = new AudioDecodeError('AUDIO_DECODE_FAILED', `Audio could not be decoded: ${err.message}`);
      else this.log.debug({ reason: err.message }, 'WebM stream broken after its end');
      return { pcm: out, more: false };
    }
    return { pcm: out, more: more && !this.stopped };
  }

  /** `SyncPcmDecoder`: queues `bytes` and decodes everything queued. */
  push(bytes: Uint8Array): SyncDecodeResult {
    this.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return this.drain();
  }

  /** `SyncPcmDecoder`: the input ended; decodes what is left. */
  finish(): SyncDecodeResult {
    this.endInput();
    return this.drain();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.work = false;
    this.decoder?.free();
    this.decoder = null;
    if (this.counts.badPackets || this.counts.aheadOfTimeline) this.log.debug({ ...this.counts }, 'WebM/Opus stream finished');
  }

  private drain(): SyncDecodeResult {
    const pieces: Buffer[] = [];
    for (;;) {
      const r = this.decodeSome(Number.MAX_SAFE_INTEGER / ELEMENTS_PER_PACKET);
      for (const p of r.pcm) pieces.push(p);
      if (!r.more) break;
    }
    const pcm = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const failure = this.brokenBy ? { code: this.brokenBy.code, message: this.brokenBy.message } : undefined;
    return failure ? { pcm, failure } : { pcm };
  }

  private startRecording(track: OpusTrack): void {
    const first = this.heads++ === 0;
    if (!this.decoder) {
      try {
        this.decoder = (this.opts.decoder ?? createLibopusDecoder)();
      } catch (err) {
        this.brokenBy = new AudioDecodeError('AUDIO_DECODER_CRASHED', 'The audio decoder could not be run');
        this.stopped = true;
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
    if (!this.decoder) return undefined; // (only when the decoder could not be created: the stream is broken)
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
    if (this.inputEnded || this.brokenBy || this.counts.badPackets < MAX_BAD_PACKETS) return;
    this.stopped = true;
    this.brokenBy = new AudioDecodeError(
      'AUDIO_DECODE_FAILED',
      `Audio could not be decoded: ${this.counts.badPackets} Opus packets were rejected (${this.lastBadReason.slice(0, 80)})`,
    );
  }
}

import type { Logger } from '../../../util/logger';
import type { PcmStream, PcmStreamHandlers } from '../pcm-stream';
import { AudioDecodeError } from '../session-audio-decoder';
import { ownBytes } from './decode-thread';
import type { DecodeThreadOutput } from './decode-thread-protocol';
import type { DecodeThreadHandle, DecodeThreads } from './decode-threads';
import type { SyncPcmDecoderKind, SyncPcmDecoderOptions } from './sync-pcm-decoder';

/** Most input bytes in one message to the thread. */
const SLICE_BYTES = 64 * 1024;
/** Most input bytes sent and not yet answered: bounds the PCM that can arrive while the output is held. */
const MAX_IN_FLIGHT_BYTES = 128 * 1024;

export interface ThreadedPcmStreamHandlers extends PcmStreamHandlers {
  /**
   * Its thread died or hung: called at once, so the owner can replay what was not delivered into a new stream;
   * `onFailure` follows with AUDIO_DECODER_STALLED when the stream is done. Without it the loss is a failure.
   */
  onStall?: (err: AudioDecodeError) => void;
}

/**
 * A stream decoded by a synchronous decoder on a decoding thread (`DecodeThreads`), seen from the main thread.
 * Input waits here while the output is held, and at most MAX_IN_FLIGHT_BYTES are with the thread at a time, so a
 * held stream keeps its backlog as input (`queuedBytes`, bounded by the owner) and little decoded audio. Output
 * comes in message order, never inside `write`.
 */
export class ThreadedPcmStream implements PcmStream {
  readonly done: Promise<void>;
  readonly pid = undefined;
  readonly alive = false;

  private readonly handle: DecodeThreadHandle;
  private readonly log: Logger;
  private resolveDone!: () => void;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight = 0;
  private held: Buffer[] = [];
  private paused = false;
  private inputEnded = false;
  private finishSent = false;
  /** The thread is done with the stream (finished, failed or lost). */
  private threadDone = false;
  private failure: AudioDecodeError | null = null;
  private killed = false;
  private settled = false;
  private lastProgressAt = performance.now();
  /** The release of held output, due in the next turn. */
  private releasing: NodeJS.Immediate | undefined;

  /** Opens the stream on a thread; undefined when no thread can take it (the caller decodes in-process). */
  static open(
    threads: DecodeThreads,
    kind: SyncPcmDecoderKind,
    opts: SyncPcmDecoderOptions,
    h: ThreadedPcmStreamHandlers,
  ): ThreadedPcmStream | undefined {
    // (The thread's callbacks are given before the stream exists: they reach it through the box.)
    const box: { stream?: ThreadedPcmStream } = {};
    const handle = threads.open(kind, opts, {
      onOutput: (out) => box.stream?.onOutput(out),
      onLost: (reason) => box.stream?.onLost(reason),
    });
    if (!handle) return undefined;
    box.stream = new ThreadedPcmStream(handle, h);
    return box.stream;
  }

  private constructor(
    handle: DecodeThreadHandle,
    private readonly h: ThreadedPcmStreamHandlers,
  ) {
    this.handle = handle;
    this.log = h.logger;
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
  }

  get usable(): boolean {
    return !this.inputEnded && !this.killed && !this.failure && !this.threadDone && !this.settled;
  }

  get queuedBytes(): number {
    return this.pendingBytes + this.inFlight;
  }

  get owesOutput(): boolean {
    // Held output is owed too: the owner places what follows the audio (an activity marker) after it.
    return !this.settled && !this.killed && (this.pendingBytes + this.inFlight > 0 || this.held.length > 0);
  }

  /**
   * Holds or releases the output. The held output is given in a later turn, never inside this call: the owner may
   * release the output from code that is about to drop the stream (a budget cut clears its queue, which releases the
   * output, then kills the stream), and that audio must not slip in between.
   */
  setOutputPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (paused) return;
    this.lastProgressAt = performance.now();
    if (this.releasing) return;
    this.releasing = setImmediate(() => {
      this.releasing = undefined;
      if (this.paused || this.killed || this.settled) return;
      // (A handler that holds the output again sends the rest back to `held`, in order.)
      for (const pcm of this.held.splice(0)) this.deliver(pcm);
      this.pump();
      this.maybeSettle();
    });
  }

  write(buf: Buffer, _owesOutput = true): Promise<void> {
    if (!this.usable || buf.length === 0) return Promise.resolve();
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    this.pump();
    return Promise.resolve();
  }

  async end(timeoutMs: number): Promise<void> {
    this.inputEnded = true;
    this.pump();
    this.maybeSettle();
    if (this.settled) return;
    const check = setInterval(
      () => {
        if (this.settled || this.paused) return;
        if (performance.now() - this.lastProgressAt < timeoutMs) return;
        clearInterval(check);
        this.log.warn({ timeoutMs }, 'a decoding thread did not finish a stream after its input ended; dropping it');
        this.kill();
      },
      Math.max(10, Math.min(250, Math.floor(timeoutMs / 4))),
    );
    await this.done;
    clearInterval(check);
  }

  async failAndEnd(err: AudioDecodeError, timeoutMs: number): Promise<void> {
    if (!this.failure && !this.killed) this.failure = err;
    await this.end(timeoutMs);
  }

  kill(): void {
    if (this.killed || this.settled) return;
    this.killed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.held = [];
    this.handle.close();
    this.settle(false);
  }

  /** Sends what may go: slices of the pending input within the in-flight bound, then `finish` once all went. */
  private pump(): void {
    if (this.paused || this.killed || this.threadDone) return;
    while (this.pending.length && this.inFlight < MAX_IN_FLIGHT_BYTES) {
      const head = this.pending[0]!;
      const n = Math.min(head.length, SLICE_BYTES, MAX_IN_FLIGHT_BYTES - this.inFlight);
      const slice = ownBytes(head.subarray(0, n));
      if (n === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(n);
      this.pendingBytes -= n;
      this.inFlight += n;
      this.handle.push(slice);
    }
    if (this.inputEnded && this.pending.length === 0 && !this.finishSent) {
      this.finishSent = true;
      this.handle.finish();
    }
  }

  private onOutput(out: DecodeThreadOutput): void {
    if (this.killed || this.settled) return;
    this.lastProgressAt = performance.now();
    this.inFlight = Math.max(0, this.inFlight - out.consumed);
    if (out.pcm && out.pcm.length > 0) this.deliver(Buffer.from(out.pcm.buffer, out.pcm.byteOffset, out.pcm.length));
    if (out.failure && !this.threadDone) {
      this.threadDone = true;
      if (!this.failure) this.failure = new AudioDecodeError(out.failure.code, out.failure.message);
      this.log.debug({ reason: out.failure.message }, 'decoding thread failed the stream');
      this.pending = [];
      this.pendingBytes = 0;
    }
    if (out.finished) this.threadDone = true;
    this.pump();
    this.maybeSettle();
  }

  private onLost(reason: 'crashed' | 'hung'): void {
    if (this.killed || this.settled) return;
    const err = new AudioDecodeError('AUDIO_DECODER_STALLED', `The decoding thread ${reason === 'hung' ? 'stopped answering' : 'died'}`);
    this.threadDone = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight = 0;
    if (this.h.onStall) {
      // The owner replays the undelivered input elsewhere: what this stream still holds would be given twice.
      this.held = [];
      this.h.onStall(err);
    }
    if (!this.failure || this.h.onStall) this.failure = err;
    this.maybeSettle();
  }

  private deliver(pcm: Buffer): void {
    if (this.killed) return;
    // Output that arrives after a release but before the held output went (the release is due in a later turn)
    // queues behind it: given now, it would overtake audio decoded before it.
    if (this.paused || this.releasing) {
      this.held.push(pcm);
      return;
    }
    try {
      this.h.onPcm(pcm);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'pcm handler threw');
    }
  }

  private maybeSettle(): void {
    if (this.settled || !this.threadDone || this.held.length > 0) return;
    // A failed stream that was not ended still counts as done once its output is out.
    this.settle(true);
  }

  private settle(report: boolean): void {
    if (this.settled) return;
    this.settled = true;
    if (this.releasing) clearImmediate(this.releasing);
    this.releasing = undefined;
    if (!this.killed) this.handle.close();
    const failure = this.failure;
    if (report && failure && !this.killed) {
      try {
        this.h.onFailure(failure);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'failure handler threw');
      }
    }
    this.resolveDone();
  }
}

import { UPSTREAM_BYTES_PER_MS } from './audio-types';

/** Where paced frames go (the session's upstream link). */
export interface PacedSink {
  send(frame: Buffer): void;
  /** Bytes written to the upstream socket and not yet sent (its `bufferedAmount`). */
  bufferedAmount(): number;
}

/** What produces the frames: held while the pacer's queue is long (the decoder stops reading its input). */
export interface PacedSource {
  pause(): void;
  resume(): void;
}

export interface PcmPacerOptions {
  /** Never faster than this many times real time (LIVE_AUDIO_MAX_REALTIME_FACTOR). */
  realtimeFactor: number;
  /** Audio that may go at once (the bucket's size), ms: a whole chunk decoded at once goes upstream at once. */
  burstMs: number;
  /** Nothing is sent while the upstream socket holds more than this many bytes. */
  maxBufferedBytes: number;
  /** The source is paused while more than this much audio waits (ms), resumed at `resumeBelowMs`. */
  pauseAboveMs?: number;
  resumeBelowMs?: number;
  /** How often a send blocked by `bufferedAmount` looks again (ms). */
  pollMs?: number;
  bytesPerMs?: number;
  now?: () => number;
}

export interface PacerStats {
  /** Audio waiting now, ms. */
  queuedMs: number;
  /** Frames that had to wait (for credit or for the socket). */
  delayedFrames: number;
  /** Longest queue seen, ms. */
  maxQueuedMs: number;
  /** Times the source was paused. */
  pauses: number;
}

/**
 * Paces decoded PCM to the upstream with a token bucket: credit (ms of audio) refills at `realtimeFactor` × real
 * time up to `burstMs`. A real-time stream never runs out of credit, so its frames go out inside `push` (no timer,
 * no added latency), however they are bunched (a 1 s MediaRecorder chunk decodes at once and goes at once). A decode
 * bomb spends the burst and is then held to the factor; while its frames wait, the source is paused, so decoded
 * audio never piles up here. Nothing is sent while the upstream socket's `bufferedAmount` is above its bound.
 */
export class PcmPacer {
  /** Frames, and markers (callbacks run when everything queued before them has been sent). */
  private readonly queue: Array<Buffer | (() => void)> = [];
  private queuedBytes = 0;
  private credit: number;
  private lastRefill: number;
  private timer: NodeJS.Timeout | undefined;
  private sourcePaused = false;
  private closed = false;
  /** Bumped by `clear()`: a send loop that sees it change stops. */
  private generation = 0;
  private readonly bytesPerMs: number;
  private readonly now: () => number;
  private readonly pauseAboveMs: number;
  private readonly resumeBelowMs: number;
  private readonly stats_ = { delayedFrames: 0, maxQueuedMs: 0, pauses: 0 };

  constructor(
    private readonly sink: PacedSink,
    private readonly source: PacedSource,
    private readonly o: PcmPacerOptions,
  ) {
    if (!(o.realtimeFactor > 0) || !(o.burstMs > 0)) throw new RangeError('PcmPacer: realtimeFactor and burstMs must be > 0');
    this.bytesPerMs = o.bytesPerMs ?? UPSTREAM_BYTES_PER_MS;
    this.now = o.now ?? (() => performance.now());
    this.credit = o.burstMs;
    this.lastRefill = this.now();
    this.pauseAboveMs = o.pauseAboveMs ?? 1000;
    this.resumeBelowMs = o.resumeBelowMs ?? Math.min(250, this.pauseAboveMs / 2);
  }

  /** The source is paused by the pacer (its output is held back, not finished). */
  get sourceHeld(): boolean {
    return this.sourcePaused;
  }

  get queuedMs(): number {
    return this.queuedBytes / this.bytesPerMs;
  }

  stats(): PacerStats {
    return { queuedMs: Math.round(this.queuedMs), ...this.stats_, maxQueuedMs: Math.round(this.stats_.maxQueuedMs) };
  }

  /** Sends the frame now if credit and the socket allow (and nothing waits before it), else queues it. */
  push(frame: Buffer): void {
    if (this.closed || frame.length === 0) return;
    if (this.queue.length === 0 && this.trySend(frame)) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.stats_.delayedFrames++;
    const q = this.queuedMs;
    if (q > this.stats_.maxQueuedMs) this.stats_.maxQueuedMs = q;
    if (!this.sourcePaused && q > this.pauseAboveMs) {
      this.sourcePaused = true;
      this.stats_.pauses++;
      this.source.pause();
    }
    this.schedule();
  }

  /**
   * Runs `marker` once every frame pushed before it has been handed to the sink (at once when nothing waits).
   * Markers are never dropped: `clear()` drops the frames and runs the markers that waited among them, in order.
   */
  pushMarker(marker: () => void): void {
    if (this.closed) return;
    if (this.queue.length === 0) {
      marker();
      return;
    }
    this.queue.push(marker);
  }

  /** Drops everything waiting (e.g. the audio budget is spent); returns the ms dropped. */
  clear(): number {
    const dropped = this.queuedMs;
    this.generation++;
    const markers = this.closed ? [] : this.queue.filter((q): q is () => void => typeof q === 'function');
    this.queue.length = 0;
    this.queuedBytes = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.releaseSource();
    for (const m of markers) m();
    return dropped;
  }

  close(): void {
    this.closed = true;
    this.clear();
  }

  private refill(): void {
    const t = this.now();
    this.credit = Math.min(this.o.burstMs, this.credit + (t - this.lastRefill) * this.o.realtimeFactor);
    this.lastRefill = t;
  }

  /** Sends one frame if allowed now. */
  private trySend(frame: Buffer): boolean {
    if (this.sink.bufferedAmount() > this.o.maxBufferedBytes) return false;
    this.refill();
    const ms = frame.length / this.bytesPerMs;
    if (this.credit < ms) return false;
    this.credit -= ms;
    this.sink.send(frame);
    return true;
  }

  private pump(): void {
    this.timer = undefined;
    const gen = this.generation;
    while (this.queue.length && !this.closed) {
      const frame = this.queue[0]!;
      if (typeof frame === 'function') {
        this.queue.shift();
        frame();
        if (gen !== this.generation) return;
        continue;
      }
      if (!this.trySend(frame)) break;
      if (gen !== this.generation) return; // cleared from inside send
      this.queue.shift();
      this.queuedBytes -= frame.length;
    }
    if (this.queuedMs <= this.resumeBelowMs) this.releaseSource();
    if (this.queue.length) this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.closed || !this.queue.length) return;
    const head = this.queue[0]!;
    if (typeof head === 'function') {
      this.timer = setTimeout(() => this.pump(), 0);
      return;
    }
    let wait: number;
    if (this.sink.bufferedAmount() > this.o.maxBufferedBytes) {
      wait = this.o.pollMs ?? 20;
    } else {
      this.refill();
      const need = head.length / this.bytesPerMs - this.credit;
      wait = Math.max(1, Math.ceil(need / this.o.realtimeFactor));
    }
    this.timer = setTimeout(() => this.pump(), wait);
  }

  private releaseSource(): void {
    if (!this.sourcePaused) return;
    this.sourcePaused = false;
    this.source.resume();
  }
}

import { rms, samplesFor } from './pcm';

/**
 * Turn detection from audio energy, measured on AUDIO time (sample counts), never on the wall clock.
 * The same PCM gives the same turns whether it arrives in 20 ms or 1 s chunks, in real time or in a burst.
 *
 * - Audio is cut into `frameMs` frames at the declared sample rate (a partial frame waits for the next chunk).
 * - A frame is speech when its RMS is above `thresholdRms` (int16 scale).
 * - Speech begins at the first speech frame. It is *committed* (a `speechStart` event, which is what triggers
 *   barge-in) once it has lasted `minSpeechMs`, so a click does not interrupt the model.
 * - A committed turn ends (`turnEnd`) after `silenceDurationMs` of consecutive silent frames.
 *   Uncommitted blips are forgotten after the same silence.
 */
export interface EnergyVadOptions {
  thresholdRms?: number; // default 500
  frameMs?: number; // default 20
  silenceDurationMs?: number; // default 500
  minSpeechMs?: number; // default 200
}

export type VadEvent =
  | { type: 'speechStart'; atMs: number }
  /** `speechMs` spans the first to the last speech frame of the turn (short pauses included). */
  | { type: 'turnEnd'; atMs: number; startMs: number; speechMs: number };

export const DEFAULT_VAD_THRESHOLD_RMS = 500;
export const DEFAULT_SILENCE_DURATION_MS = 500;
export const DEFAULT_MIN_SPEECH_MS = 200;

export class EnergyVad {
  private readonly thresholdRms: number;
  private readonly frameMs: number;
  private readonly silenceDurationMs: number;
  private readonly minSpeechMs: number;

  private carry: Buffer = Buffer.alloc(0);
  private carryRate = 0;
  private clockMs = 0;
  private speech: { startMs: number; lastEndMs: number; committed: boolean } | undefined;
  private silenceMs = 0;

  constructor(opts: EnergyVadOptions = {}) {
    this.thresholdRms = opts.thresholdRms ?? DEFAULT_VAD_THRESHOLD_RMS;
    this.frameMs = opts.frameMs ?? 20;
    this.silenceDurationMs = opts.silenceDurationMs ?? DEFAULT_SILENCE_DURATION_MS;
    this.minSpeechMs = opts.minSpeechMs ?? DEFAULT_MIN_SPEECH_MS;
  }

  /** Audio time consumed so far, in ms (whole frames only). */
  get audioTimeMs(): number {
    return this.clockMs;
  }

  /** True between the first speech frame and the end (or abandonment) of that speech. */
  get speechPending(): boolean {
    return this.speech !== undefined;
  }

  /** Feeds s16le mono PCM at `sampleRate`; returns the events it caused, in order. */
  push(pcm: Buffer, sampleRate: number): VadEvent[] {
    if (sampleRate !== this.carryRate) {
      this.carry = Buffer.alloc(0);
      this.carryRate = sampleRate;
    }
    const frameBytes = Math.max(1, samplesFor(this.frameMs, sampleRate)) * 2;
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, pcm]) : pcm;
    const events: VadEvent[] = [];
    let off = 0;
    for (; off + frameBytes <= data.length; off += frameBytes) {
      this.frame(rms(data.subarray(off, off + frameBytes)) > this.thresholdRms, events);
    }
    this.carry = Buffer.from(data.subarray(off));
    return events;
  }

  /**
   * End of the audio stream (`audioStreamEnd`): any pending speech ends the turn now, however short.
   * The partial frame is dropped.
   */
  end(): VadEvent[] {
    const events: VadEvent[] = [];
    const s = this.speech;
    if (s) {
      if (!s.committed) events.push({ type: 'speechStart', atMs: s.startMs });
      events.push({ type: 'turnEnd', atMs: this.clockMs, startMs: s.startMs, speechMs: s.lastEndMs - s.startMs });
    }
    this.speech = undefined;
    this.silenceMs = 0;
    this.carry = Buffer.alloc(0);
    return events;
  }

  private frame(isSpeech: boolean, events: VadEvent[]): void {
    const start = this.clockMs;
    this.clockMs += this.frameMs;
    if (isSpeech) {
      this.silenceMs = 0;
      if (!this.speech) this.speech = { startMs: start, lastEndMs: this.clockMs, committed: false };
      const s = this.speech;
      s.lastEndMs = this.clockMs;
      if (!s.committed && s.lastEndMs - s.startMs >= this.minSpeechMs) {
        s.committed = true;
        events.push({ type: 'speechStart', atMs: s.startMs });
      }
      return;
    }
    if (!this.speech) return;
    this.silenceMs += this.frameMs;
    if (this.silenceMs < this.silenceDurationMs) return;
    const s = this.speech;
    this.speech = undefined;
    this.silenceMs = 0;
    if (s.committed) {
      events.push({ type: 'turnEnd', atMs: this.clockMs, startMs: s.startMs, speechMs: s.lastEndMs - s.startMs });
    }
  }
}

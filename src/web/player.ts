/**
 * Gapless playback of reply audio (24 kHz mono s16) with Web Audio: each chunk becomes an AudioBuffer
 * scheduled exactly where the previous one ends, so consecutive chunks play without gaps or clicks.
 * `stop()` silences everything scheduled at once (barge-in / interruption).
 */

export const REPLY_RATE = 24000;

export interface PlayerStats {
  /** Samples handed to the audio graph. */
  scheduledSamples: number;
  /** Samples that finished playing (not stopped). */
  playedSamples: number;
  /** Samples cut by `stop()`. */
  stoppedSamples: number;
  chunks: number;
  /** A chunk of the same turn arrived after the queue had run dry (an audible gap). */
  gaps: number;
  /** Number of `stop()` calls that cut audio. */
  interruptions: number;
  playing: boolean;
  /** Audio scheduled ahead of the playback position, ms. */
  bufferedMs: number;
  sampleRate: number;
}

interface Scheduled {
  node: AudioBufferSourceNode;
  samples: number;
  endsAt: number;
  stopped: boolean;
}

export class PcmPlayer {
  private ctx: AudioContext | null = null;
  private nextTime = 0;
  private lastTurn: number | null = null;
  private readonly active = new Set<Scheduled>();
  private readonly stats: Omit<PlayerStats, 'playing' | 'bufferedMs' | 'sampleRate'> = {
    scheduledSamples: 0,
    playedSamples: 0,
    stoppedSamples: 0,
    chunks: 0,
    gaps: 0,
    interruptions: 0,
  };

  /**
   * @param leadMs how far ahead of "now" a chunk starts when nothing is queued: the jitter buffer. Small for
   *   WebSocket streaming; about one poll interval for REST, whose audio arrives once a second.
   */
  constructor(
    private readonly onChange: (s: PlayerStats) => void = () => undefined,
    public leadMs = 80,
  ) {}

  /** Creates or resumes the AudioContext. Call it from a click handler so autoplay rules allow sound. */
  async unlock(): Promise<void> {
    const ctx = this.context();
    if (ctx.state === 'suspended') await ctx.resume().catch(() => undefined);
  }

  private context(): AudioContext {
    if (!this.ctx || this.ctx.state === 'closed') {
      try {
        this.ctx = new AudioContext({ sampleRate: REPLY_RATE, latencyHint: 'interactive' });
      } catch {
        this.ctx = new AudioContext({ latencyHint: 'interactive' });
      }
      this.nextTime = 0;
    }
    return this.ctx;
  }

  /** Queues samples right after what is already queued. `turn` lets the player tell gaps from turn changes. */
  enqueue(pcm: Int16Array, sampleRate = REPLY_RATE, turn: number | null = null): void {
    if (pcm.length === 0) return;
    const ctx = this.context();
    const buffer = ctx.createBuffer(1, pcm.length, sampleRate);
    const ch = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const node = ctx.createBufferSource();
    node.buffer = buffer;
    node.connect(ctx.destination);

    const now = ctx.currentTime;
    let at = this.nextTime;
    if (at < now + 0.003) {
      // The queue ran dry: restart a little ahead of now. Within one turn that is an audible gap.
      if (this.stats.chunks > 0 && turn !== null && turn === this.lastTurn && this.active.size === 0) this.stats.gaps++;
      at = now + this.leadMs / 1000;
    }
    node.start(at);
    this.nextTime = at + buffer.duration;
    this.lastTurn = turn;
    const item: Scheduled = { node, samples: pcm.length, endsAt: this.nextTime, stopped: false };
    this.active.add(item);
    node.onended = () => {
      this.active.delete(item);
      node.disconnect();
      if (!item.stopped) this.stats.playedSamples += item.samples;
      this.changed();
    };
    this.stats.scheduledSamples += pcm.length;
    this.stats.chunks++;
    this.changed();
  }

  /** Silences all queued audio at once. Returns the number of samples cut. */
  stop(): number {
    if (this.active.size === 0) return 0;
    const ctx = this.ctx;
    let cut = 0;
    for (const item of this.active) {
      item.stopped = true;
      const remaining = ctx ? Math.max(0, item.endsAt - ctx.currentTime) : 0;
      cut += Math.min(item.samples, Math.round(remaining * (item.node.buffer?.sampleRate ?? REPLY_RATE)));
      try {
        item.node.stop();
      } catch {
        /* never started */
      }
      item.node.disconnect();
    }
    this.active.clear();
    this.nextTime = 0;
    this.stats.stoppedSamples += cut;
    this.stats.interruptions++;
    this.changed();
    return cut;
  }

  snapshot(): PlayerStats {
    const ctx = this.ctx;
    const ahead = ctx && this.active.size > 0 ? Math.max(0, this.nextTime - ctx.currentTime) : 0;
    return {
      ...this.stats,
      playing: this.active.size > 0,
      bufferedMs: Math.round(ahead * 1000),
      sampleRate: ctx?.sampleRate ?? REPLY_RATE,
    };
  }

  private changed(): void {
    this.onChange(this.snapshot());
  }

  async close(): Promise<void> {
    this.stop();
    const ctx = this.ctx;
    this.ctx = null;
    if (ctx && ctx.state !== 'closed') await ctx.close().catch(() => undefined);
  }
}

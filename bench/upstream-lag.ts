/**
 * "Kept up with real time", measured where it matters: when each chunk's audio reached the model (the emulator).
 *
 * For every upstream connection the tracker walks the emulator's record of received audio messages (arrival time,
 * PCM bytes). Chunk n of a session is *delivered* when the cumulative audio received reaches the chunk's end in audio
 * time (known from the fixture), minus a small tolerance for what the relay may legitimately hold back (ffmpeg's
 * 1 ms resampler delay, the framer's < 20 ms remainder). A client sends chunk n at `t0 + n * timeslice`, so
 * `arrival[n] - n * timeslice` is constant while the relay keeps up; its excess over the connection's best chunk is
 * that chunk's **lag**: client send lag, HTTP/WebSocket handling, queueing, decoding, framing and the upstream
 * socket all included, with no clock shared between processes.
 */
import type { EmulatorConnectionRecord } from '../src/emulator/connection-records';

export interface LagPlan {
  timesliceMs: number;
  /** Audio time at the end of each chunk of one loop (ms). */
  chunkEndMs: number[];
  /** Audio time of one loop (ms). */
  loopMs: number;
}

/** Audio the relay may hold back at a chunk boundary without being late (framer remainder + resampler delay). */
export const HOLD_BACK_TOLERANCE_MS = 25;

interface ConnState {
  msgCursor: number;
  audioCursor: number;
  cumMs: number;
  next: number;
  arrivals: number[];
}

export interface ConnectionLag {
  id: string;
  /** Chunks delivered. */
  chunks: number;
  /** Lag of each delivered chunk, ms (the best chunk is 0). */
  lags: number[];
}

export class UpstreamLagTracker {
  private readonly state = new Map<EmulatorConnectionRecord, ConnState>();

  constructor(
    private readonly connections: () => readonly EmulatorConnectionRecord[],
    private readonly plan: LagPlan,
  ) {}

  private cumEndMs(n: number): number {
    const per = this.plan.chunkEndMs.length;
    return Math.floor(n / per) * this.plan.loopMs + this.plan.chunkEndMs[n % per];
  }

  /** Reads what arrived since the last call (cheap; call it every few hundred ms, and before `lags()`). */
  poll(): void {
    for (const rec of this.connections()) {
      let s = this.state.get(rec);
      if (!s) {
        s = { msgCursor: 0, audioCursor: 0, cumMs: 0, next: 0, arrivals: [] };
        this.state.set(rec, s);
      }
      const msgs = rec.messages;
      for (; s.msgCursor < msgs.length; s.msgCursor++) {
        const m = msgs[s.msgCursor];
        if (m.kind !== 'audio') continue;
        const bytes = rec.audioChunks[s.audioCursor++] ?? 0;
        const rate = rec.audioRates[s.audioCursor - 1] ?? 16000;
        s.cumMs += bytes / 2 / (rate / 1000);
        while (s.cumMs >= this.cumEndMs(s.next) - HOLD_BACK_TOLERANCE_MS) {
          s.arrivals.push(m.at);
          s.next++;
        }
      }
    }
  }

  /** Per-connection lags (connections that received no complete chunk are listed with no lags). */
  lags(): ConnectionLag[] {
    this.poll();
    const out: ConnectionLag[] = [];
    for (const [rec, s] of this.state) {
      const rel = s.arrivals.map((t, n) => t - n * this.plan.timesliceMs);
      const best = rel.length > 0 ? Math.min(...rel) : 0;
      out.push({ id: rec.id, chunks: s.arrivals.length, lags: rel.map((r) => r - best) });
    }
    return out;
  }

  /** Forgets connections (e.g. between benchmark phases). */
  clear(): void {
    this.state.clear();
  }
}

/**
 * Per-user WebSocket limits with fixed one-minute windows (contract.md §3.4): messages and audio bytes.
 * Self-contained on purpose, behind {@link WsRateLimits}, so a shared limiter can replace it later.
 */

export interface WsRateLimitStatus {
  messages: { count: number; limit: number; remaining: number; resetTime: string };
  audioBytes: { totalBytes: number; limit: number; remaining: number; resetTime: string };
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSec: number };

/** The seam the socket uses. */
export interface WsRateLimits {
  /** Counts one message; refuses it when the user's window is full. */
  consumeMessage(userKey: string): RateDecision;
  /** Counts audio bytes; refuses them when they would pass the user's window limit. */
  consumeAudio(userKey: string, bytes: number): RateDecision;
  status(userKey: string): WsRateLimitStatus;
}

export interface FixedWindowOptions {
  maxMessagesPerWindow: number;
  maxAudioBytesPerWindow: number;
  /** Default 60 000 ms. */
  windowMs?: number;
  /** Default Date.now. */
  now?: () => number;
}

interface Window {
  start: number;
  messages: number;
  audioBytes: number;
}

export class FixedWindowWsRateLimiter implements WsRateLimits {
  private readonly windows = new Map<string, Window>();
  private readonly windowMs: number;
  private readonly now: () => number;
  private lastPrune = 0;

  constructor(private readonly o: FixedWindowOptions) {
    this.windowMs = o.windowMs ?? 60_000;
    this.now = o.now ?? Date.now;
  }

  private window(userKey: string): Window {
    const now = this.now();
    this.prune(now);
    let w = this.windows.get(userKey);
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, messages: 0, audioBytes: 0 };
      this.windows.set(userKey, w);
    }
    return w;
  }

  /** Drops expired windows (at most once per window length), so the map cannot grow without bound. */
  private prune(now: number): void {
    if (now - this.lastPrune < this.windowMs) return;
    this.lastPrune = now;
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
  }

  private retryAfter(w: Window): number {
    return Math.max(1, Math.ceil((w.start + this.windowMs - this.now()) / 1000));
  }

  consumeMessage(userKey: string): RateDecision {
    const w = this.window(userKey);
    if (w.messages >= this.o.maxMessagesPerWindow) return { ok: false, retryAfterSec: this.retryAfter(w) };
    w.messages++;
    return { ok: true };
  }

  consumeAudio(userKey: string, bytes: number): RateDecision {
    const w = this.window(userKey);
    if (w.audioBytes + bytes > this.o.maxAudioBytesPerWindow) return { ok: false, retryAfterSec: this.retryAfter(w) };
    w.audioBytes += bytes;
    return { ok: true };
  }

  status(userKey: string): WsRateLimitStatus {
    const w = this.window(userKey);
    const resetTime = new Date(w.start + this.windowMs).toISOString();
    return {
      messages: {
        count: w.messages,
        limit: this.o.maxMessagesPerWindow,
        remaining: Math.max(0, this.o.maxMessagesPerWindow - w.messages),
        resetTime,
      },
      audioBytes: {
        totalBytes: w.audioBytes,
        limit: this.o.maxAudioBytesPerWindow,
        remaining: Math.max(0, this.o.maxAudioBytesPerWindow - w.audioBytes),
        resetTime,
      },
    };
  }

  /** Users with a live window (for tests and metrics). */
  get size(): number {
    return this.windows.size;
  }
}

import type { LimitStore } from './limit-store';

/** The answer of a limiter: allowed or not, and when to come back. */
export interface LimitDecision {
  ok: boolean;
  /** The configured limit per window (0 = unlimited). */
  limit: number;
  /** What is left in the current window after this decision. */
  remaining: number;
  /** Whole seconds until the window frees (≥ 1 when refused, 0 when allowed). */
  retryAfterSec: number;
  /** When the current window ends (epoch ms); 0 when no window is open. */
  resetAt: number;
}

export interface FixedWindowLimiterOptions {
  /** Per window; 0 disables the limiter (everything allowed). */
  limit: number;
  windowMs: number;
  store: LimitStore;
  /** Prefix of this limiter's keys in the store (several limiters share one store). */
  name: string;
  now?: () => number;
}

/**
 * A fixed-window limit on an amount (requests, messages, seconds, bytes) per key. A refused attempt is
 * refunded, so a client that keeps knocking is not locked out longer than the window.
 */
export class FixedWindowLimiter {
  private readonly now: () => number;

  constructor(private readonly o: FixedWindowLimiterOptions) {
    this.now = o.now ?? Date.now;
  }

  get limit(): number {
    return this.o.limit;
  }

  get windowMs(): number {
    return this.o.windowMs;
  }

  private k(key: string): string {
    return `${this.o.name}:${key}`;
  }

  private unlimited(): LimitDecision {
    return { ok: true, limit: 0, remaining: Number.POSITIVE_INFINITY, retryAfterSec: 0, resetAt: 0 };
  }

  private retryAfter(resetAt: number): number {
    return Math.max(1, Math.ceil((resetAt - this.now()) / 1000));
  }

  /** Uses `amount` if it fits in the key's window; otherwise refuses and uses nothing. */
  consume(key: string, amount = 1): LimitDecision {
    if (this.o.limit <= 0) return this.unlimited();
    const w = this.o.store.increment(this.k(key), amount, this.o.windowMs);
    if (w.count <= this.o.limit) {
      return { ok: true, limit: this.o.limit, remaining: this.o.limit - w.count, retryAfterSec: 0, resetAt: w.resetAt };
    }
    this.o.store.decrement(this.k(key), amount);
    const used = Math.max(0, w.count - amount);
    return {
      ok: false,
      limit: this.o.limit,
      remaining: Math.max(0, this.o.limit - used),
      retryAfterSec: this.retryAfter(w.resetAt),
      resetAt: w.resetAt,
    };
  }

  /**
   * Uses as much of `amount` as is left in the key's window (all of it when unlimited) and says how much that was.
   * For amounts that happen in pieces (decoded audio): what does not fit is not used at all.
   */
  take(key: string, amount: number): { granted: number; decision: LimitDecision } {
    if (this.o.limit <= 0) return { granted: amount, decision: this.unlimited() };
    const w = this.o.store.get(this.k(key));
    const room = Math.max(0, this.o.limit - (w?.count ?? 0));
    // Amounts are sums of fractions (100 ms frames): what fits up to rounding fits.
    const granted = room + 1e-6 >= amount ? Math.max(0, amount) : room;
    const after = granted > 0 ? this.o.store.increment(this.k(key), granted, this.o.windowMs) : w;
    const resetAt = after?.resetAt ?? 0;
    const ok = granted >= amount;
    return {
      granted,
      decision: {
        ok,
        limit: this.o.limit,
        remaining: Math.max(0, this.o.limit - (after?.count ?? 0)),
        retryAfterSec: ok ? 0 : resetAt ? this.retryAfter(resetAt) : Math.ceil(this.o.windowMs / 1000),
        resetAt,
      },
    };
  }

  /** Records `amount` after the fact (it has already happened), without refusing anything. */
  charge(key: string, amount: number): void {
    if (this.o.limit <= 0 || !(amount > 0)) return;
    this.o.store.increment(this.k(key), amount, this.o.windowMs);
  }

  /**
   * Gives back `amount` used earlier in the key's current window (e.g. an attempt that turned out to be
   * legitimate). A no-op once that window has ended.
   */
  release(key: string, amount = 1): void {
    if (this.o.limit <= 0 || !(amount > 0)) return;
    this.o.store.decrement(this.k(key), amount);
  }

  /** Would `amount` more fit now? Uses nothing. `amount` 0 asks whether the window is not yet used up. */
  check(key: string, amount = 0): LimitDecision {
    if (this.o.limit <= 0) return this.unlimited();
    const w = this.o.store.get(this.k(key));
    const used = w?.count ?? 0;
    const fits = amount > 0 ? used + amount <= this.o.limit : used < this.o.limit;
    return {
      ok: fits,
      limit: this.o.limit,
      remaining: Math.max(0, this.o.limit - used),
      retryAfterSec: fits || !w ? 0 : this.retryAfter(w.resetAt),
      resetAt: w?.resetAt ?? 0,
    };
  }
}

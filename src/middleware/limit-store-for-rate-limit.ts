import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type { LimitStore } from '../services/limits/limit-store';

/** The key an HTTP limiter (`prefix`, e.g. `session_starts`) counts `key` (a principal id) under in the store. */
export function rateLimitStoreKey(prefix: string, key: string): string {
  return `http_${prefix}:${key}`;
}

/**
 * express-rate-limit's store interface over our `LimitStore` seam, so HTTP request counts live in the same store as
 * every other budget (a shared store for several instances plugs in once, in `Limits`' store, for both).
 * express-rate-limit stays for what it does well: the draft-8 `RateLimit`/`RateLimit-Policy` headers.
 */
export class LimitStoreForRateLimit implements Store {
  private windowMs = 60_000;
  readonly localKeys = true;

  constructor(
    private readonly store: LimitStore,
    /** Prefix of this limiter's keys in the shared store (several limiters share it). */
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  private k(key: string): string {
    return rateLimitStoreKey(this.prefix, key);
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const w = this.store.get(this.k(key));
    return w ? { totalHits: w.count, resetTime: new Date(w.resetAt) } : undefined;
  }

  increment(key: string): ClientRateLimitInfo {
    const w = this.store.increment(this.k(key), 1, this.windowMs);
    return { totalHits: w.count, resetTime: new Date(w.resetAt) };
  }

  decrement(key: string): void {
    this.store.decrement(this.k(key), 1);
  }

  resetKey(key: string): void {
    const w = this.store.get(this.k(key));
    if (w && w.count > 0) this.store.decrement(this.k(key), w.count);
  }
}

import type { LimitStore, WindowCount } from '../services/limits/limit-store';
import type { Logger } from '../util/logger';
import { isClusterUnavailable } from './cluster-errors';
import type { SharedLimitStore } from './redis-limit-store';

interface LocalWindow extends WindowCount {
  windowMs: number;
  /** Last local use (ms): keys used lately also adopt the other instances' use at each reconcile. */
  usedAt: number;
  /** Used here and not yet added to the shared counter (negative: refunds not yet taken back). */
  pending: number;
}

/** Keys used here within this long also adopt the other instances' use at each reconcile. */
const RECENT_USE_MS = 10_000;

export interface ReconciledLimitStoreOptions {
  shared: SharedLimitStore;
  /** How often local usage is added to the shared counters and their totals adopted (default 200 ms). */
  intervalMs?: number;
  now?: () => number;
  logger?: Logger;
}

/**
 * The synchronous limits store seam (`LimitStore`) over the shared Redis counters: every instance counts locally
 * (WebSocket messages are admitted in arrival order without awaiting) and, every `intervalMs`, adds what it used
 * to the shared counter of each key (one atomic INCRBYFLOAT + PEXPIRE script per key) and adopts the total, which
 * includes every other instance's use. A key's budget is therefore one budget across the service, exceeded by at
 * most what the instances admit within one interval. While Redis is down each instance goes on counting alone and
 * adds its usage when Redis is back.
 */
export class ReconciledLimitStore implements LimitStore {
  private readonly windows = new Map<string, LocalWindow>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private flushing = false;

  constructor(private readonly o: ReconciledLimitStoreOptions) {
    this.now = o.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(), o.intervalMs ?? 200);
    this.timer.unref();
  }

  private current(key: string): LocalWindow | undefined {
    const w = this.windows.get(key);
    if (w && w.resetAt <= this.now() && w.pending <= 0) {
      this.windows.delete(key);
      return undefined;
    }
    return w && w.resetAt > this.now() ? w : undefined;
  }

  increment(key: string, amount: number, windowMs: number): WindowCount {
    let w = this.current(key);
    if (!w) {
      // (An ended window's unflushed usage no longer counts anywhere.)
      w = { count: 0, resetAt: this.now() + windowMs, windowMs, pending: 0, usedAt: 0 };
      this.windows.set(key, w);
    }
    w.count += amount;
    w.pending += amount;
    w.usedAt = this.now();
    return { count: w.count, resetAt: w.resetAt };
  }

  decrement(key: string, amount: number): void {
    const w = this.current(key);
    if (!w) return;
    w.count = Math.max(0, w.count - amount);
    w.pending -= amount;
  }

  get(key: string): WindowCount | undefined {
    const w = this.current(key);
    return w ? { count: w.count, resetAt: w.resetAt } : undefined;
  }

  /** Adds local usage to the shared counters and adopts their totals (also called by the timer). */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const [key, w] of [...this.windows]) {
        if (w.pending === 0) {
          if (w.resetAt <= this.now()) this.windows.delete(key);
          else if (this.now() - w.usedAt < RECENT_USE_MS) {
            // Used here lately: adopt what the other instances used since (one GET).
            try {
              const shared = await this.o.shared.get(key);
              if (shared) w.count = Math.max(w.count, shared.count + w.pending);
            } catch (err) {
              if (!isClusterUnavailable(err)) this.o.logger?.warn({ err: (err as Error).message }, 'shared limit counter read failed');
              return;
            }
          }
          continue;
        }
        const amount = w.pending;
        w.pending = 0;
        try {
          if (amount > 0) {
            const shared = await this.o.shared.increment(key, amount, w.windowMs);
            // The total includes the other instances' use; the shared window's end wins.
            w.count = Math.max(w.count, shared.count + w.pending);
            w.resetAt = shared.resetAt;
          } else {
            await this.o.shared.decrement(key, -amount);
          }
        } catch (err) {
          w.pending += amount; // Redis down: counted when it is back
          if (!isClusterUnavailable(err)) this.o.logger?.warn({ err: (err as Error).message }, 'shared limit counter update failed');
          return;
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

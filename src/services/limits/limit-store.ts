/**
 * Storage seam for the fixed-window limiters: one counter per key and window. The in-memory store serves a
 * single process. The interface is synchronous on purpose: WebSocket messages are admitted in arrival order
 * without awaiting. A shared store for several instances (Redis) implements it with local counters that it
 * reconciles in the background (INCRBY + PEXPIRE per key and window, adopting the shared total), which
 * makes the shared limit approximate by at most one reconcile interval.
 */
export interface WindowCount {
  /** Amount used in the current window. */
  count: number;
  /** When the current window ends (epoch ms). */
  resetAt: number;
}

export interface LimitStore {
  /** Adds `amount` to the key's counter in its current window (opening a window of `windowMs` if none). */
  increment(key: string, amount: number, windowMs: number): WindowCount;
  /** Takes `amount` back from the current window (refund of a refused attempt); no-op when the window ended. */
  decrement(key: string, amount: number): void;
  /** The key's current window without changing it, or undefined when none is open. */
  get(key: string): WindowCount | undefined;
  /** Stops background work (timers). */
  close(): void;
}

export interface MemoryLimitStoreOptions {
  /** Clock (tests). */
  now?: () => number;
  /** How often expired windows are swept (default 60 s; 0 = only on access). */
  sweepIntervalMs?: number;
}

/** Fixed windows in a Map; expired windows are swept periodically so idle keys do not pile up. */
export class MemoryLimitStore implements LimitStore {
  private readonly windows = new Map<string, WindowCount>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(opts: MemoryLimitStoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    const every = opts.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  get size(): number {
    return this.windows.size;
  }

  private current(key: string): WindowCount | undefined {
    const w = this.windows.get(key);
    if (w && w.resetAt <= this.now()) {
      this.windows.delete(key);
      return undefined;
    }
    return w;
  }

  increment(key: string, amount: number, windowMs: number): WindowCount {
    let w = this.current(key);
    if (!w) {
      w = { count: 0, resetAt: this.now() + windowMs };
      this.windows.set(key, w);
    }
    w.count += amount;
    return { ...w };
  }

  decrement(key: string, amount: number): void {
    const w = this.current(key);
    if (w) w.count = Math.max(0, w.count - amount);
  }

  get(key: string): WindowCount | undefined {
    const w = this.current(key);
    return w ? { ...w } : undefined;
  }

  sweep(): void {
    const now = this.now();
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.windows.clear();
  }
}

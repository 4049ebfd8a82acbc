import { addUsage, emptyUsage, type UsageFigures } from './usage-figures';

/** `YYYY-MM-DD` in UTC: budgets and reports reset at midnight UTC. */
export type DayKey = string;

export function dayOf(ms: number): DayKey {
  return new Date(ms).toISOString().slice(0, 10);
}

/** What one key (an API key name or a JWT user) used on one UTC day. */
export interface DailyUsage {
  day: DayKey;
  tokens: UsageFigures;
  /** Seconds of user audio sent upstream / of reply audio received. */
  audioSeconds: { input: number; output: number };
  sessions: number;
  turns: number;
}

/** One addition to a key's day: any subset of the counters. */
export interface UsageDelta {
  tokens?: UsageFigures;
  audioInputSeconds?: number;
  audioOutputSeconds?: number;
  sessions?: number;
  turns?: number;
}

export interface UsageReport {
  key: string;
  today: DailyUsage;
  /** Today and the days before it with any usage, newest first, at most `days`. */
  days: DailyUsage[];
  /** Sum over `days`. */
  total: Omit<DailyUsage, 'day'>;
}

/**
 * Per-key daily usage. Async and plain-JSON so a shared (Redis) implementation can replace the memory one.
 */
export interface UsageStore {
  add(key: string, day: DayKey, delta: UsageDelta): Promise<void>;
  /** What `key` used on `day` (zeros when nothing). */
  day(key: string, day: DayKey): Promise<DailyUsage>;
  /** Today and up to `days - 1` days before it (default 31: today and the last 30 days). */
  report(key: string, today: DayKey, days?: number): Promise<UsageReport>;
}

export function emptyDay(day: DayKey): DailyUsage {
  return { day, tokens: emptyUsage(), audioSeconds: { input: 0, output: 0 }, sessions: 0, turns: 0 };
}

export function addDelta(d: DailyUsage, delta: UsageDelta): DailyUsage {
  return {
    day: d.day,
    tokens: delta.tokens ? addUsage(d.tokens, delta.tokens) : d.tokens,
    audioSeconds: {
      input: d.audioSeconds.input + nonNegative(delta.audioInputSeconds),
      output: d.audioSeconds.output + nonNegative(delta.audioOutputSeconds),
    },
    sessions: d.sessions + nonNegative(delta.sessions),
    turns: d.turns + nonNegative(delta.turns),
  };
}

function nonNegative(v: number | undefined): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0;
}

/** Day keys from `today` back, `days` of them. */
export function lastDays(today: DayKey, days: number): DayKey[] {
  const t = Date.parse(`${today}T00:00:00Z`);
  return Array.from({ length: days }, (_, i) => dayOf(t - i * 86_400_000));
}

export interface MemoryUsageStoreOptions {
  /** Days kept per key (today included). Default 31. */
  keepDays?: number;
  /** Keys tracked at most; beyond, the key used least recently is forgotten (counted). Default 10,000. */
  maxKeys?: number;
}

/** In-process usage: bounded in keys and days. */
export class MemoryUsageStore implements UsageStore {
  private readonly keys = new Map<string, Map<DayKey, DailyUsage>>();
  private readonly keepDays: number;
  private readonly maxKeys: number;
  /** Keys forgotten to stay within `maxKeys`. */
  evictedKeys = 0;

  constructor(opts: MemoryUsageStoreOptions = {}) {
    this.keepDays = Math.max(1, opts.keepDays ?? 31);
    this.maxKeys = Math.max(1, opts.maxKeys ?? 10_000);
  }

  async add(key: string, day: DayKey, delta: UsageDelta): Promise<void> {
    let days = this.keys.get(key);
    if (days) this.keys.delete(key); // re-insert: Map order is recency
    else days = new Map();
    this.keys.set(key, days);
    days.set(day, addDelta(days.get(day) ?? emptyDay(day), delta));
    if (days.size > this.keepDays) {
      const keep = new Set(lastDays([...days.keys()].sort().at(-1)!, this.keepDays));
      for (const d of days.keys()) if (!keep.has(d)) days.delete(d);
    }
    while (this.keys.size > this.maxKeys) {
      this.keys.delete(this.keys.keys().next().value as string);
      this.evictedKeys++;
    }
  }

  async day(key: string, day: DayKey): Promise<DailyUsage> {
    return structuredClone(this.keys.get(key)?.get(day) ?? emptyDay(day));
  }

  async report(key: string, today: DayKey, days = 31): Promise<UsageReport> {
    const held = this.keys.get(key);
    const list = lastDays(today, Math.max(1, Math.min(days, this.keepDays)))
      .map((d) => held?.get(d))
      .filter((d): d is DailyUsage => d !== undefined)
      .map((d) => structuredClone(d));
    const total = list.reduce((sum, d) => addDelta(sum, { tokens: d.tokens, audioInputSeconds: d.audioSeconds.input, audioOutputSeconds: d.audioSeconds.output, sessions: d.sessions, turns: d.turns }), emptyDay(today));
    const { day: _day, ...totals } = total;
    return { key, today: list.find((d) => d.day === today) ?? emptyDay(today), days: list, total: totals };
  }

  /** Keys held (tests, status). */
  get size(): number {
    return this.keys.size;
  }
}

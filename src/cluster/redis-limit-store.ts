import { LuaScript } from './lua-script';
import type { RedisConnection } from './redis-connection';

/** One key's fixed window (the shape of `WindowCount` in src/services/limits/limit-store.ts). */
export interface SharedWindowCount {
  /** Amount used in the current window. */
  count: number;
  /** When the current window ends (epoch ms, this instance's clock). */
  resetAt: number;
}

export interface SharedConsumeResult extends SharedWindowCount {
  /** True when `amount` fitted and was used; false when refused (nothing used). */
  ok: boolean;
}

/**
 * The limits store seam, shared by every instance: the `LimitStore` operations made asynchronous (a Redis round
 * trip), plus `consume`, the check-and-use of a fixed-window limiter in one atomic step.
 */
export interface SharedLimitStore {
  /** Uses `amount` of `limit` in the key's window (opening one of `windowMs`) if it fits; otherwise uses nothing. */
  consume(key: string, amount: number, limit: number, windowMs: number): Promise<SharedConsumeResult>;
  /** Adds `amount` (something that already happened) to the key's window, opening one if none. */
  increment(key: string, amount: number, windowMs: number): Promise<SharedWindowCount>;
  /** Takes `amount` back from the current window (never below 0); a no-op when no window is open. */
  decrement(key: string, amount: number): Promise<void>;
  /** The key's current window, or undefined when none is open. */
  get(key: string): Promise<SharedWindowCount | undefined>;
  close(): void;
}

/**
 * KEYS[1] = counter. ARGV = amount, limit (0 = none), window ms. INCRBYFLOAT + PEXPIRE (only when the window
 * opens) + the check, with the refund of a refused amount, in one script: no instance ever sees a count another
 * one is about to take back, and a key never lives without its expiry.
 */
const CONSUME = new LuaScript(
  'limit-consume',
  `local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local count = tonumber(redis.call('INCRBYFLOAT', KEYS[1], amount))
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  ttl = tonumber(ARGV[3])
end
if limit > 0 and count > limit then
  count = tonumber(redis.call('INCRBYFLOAT', KEYS[1], -amount))
  return {0, tostring(count), ttl}
end
return {1, tostring(count), ttl}`,
  1,
);

/** KEYS[1] = counter; ARGV[1] = amount. Only an open window is decremented, and never below 0. */
const DECREMENT = new LuaScript(
  'limit-decrement',
  `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local count = tonumber(redis.call('INCRBYFLOAT', KEYS[1], -tonumber(ARGV[1])))
if count < 0 then redis.call('SET', KEYS[1], '0', 'KEEPTTL') end
return 1`,
  1,
);

/** KEYS[1] = counter. */
const GET = new LuaScript('limit-get', `return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}`, 1);

/**
 * Fixed-window counters in Redis, one key per limiter key and window (`<prefix>limit:<key>`, expiring with its
 * window), so a key's budget is one budget across every instance. Amounts may be fractional (audio seconds).
 * Every call is one round trip; while Redis is down each call fails at once with ClusterUnavailableError.
 */
export class RedisLimitStore implements SharedLimitStore {
  private readonly now: () => number;

  constructor(
    private readonly connection: RedisConnection,
    opts: { now?: () => number } = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  private k(key: string): string {
    return this.connection.key('limit', key);
  }

  async consume(key: string, amount: number, limit: number, windowMs: number): Promise<SharedConsumeResult> {
    const r = (await this.connection.run((c) => CONSUME.run(c, [this.k(key)], [amount, limit, Math.max(1, Math.round(windowMs))]))) as [number, string, number];
    return { ok: r[0] === 1, count: Number(r[1]), resetAt: this.now() + Number(r[2]) };
  }

  async increment(key: string, amount: number, windowMs: number): Promise<SharedWindowCount> {
    const r = await this.consume(key, amount, 0, windowMs);
    return { count: r.count, resetAt: r.resetAt };
  }

  async decrement(key: string, amount: number): Promise<void> {
    await this.connection.run((c) => DECREMENT.run(c, [this.k(key)], [amount]));
  }

  async get(key: string): Promise<SharedWindowCount | undefined> {
    const [count, ttl] = (await this.connection.run((c) => GET.run(c, [this.k(key)], []))) as [string | null, number];
    if (count === null || count === undefined || !(ttl > 0)) return undefined;
    return { count: Number(count), resetAt: this.now() + ttl };
  }

  /** The connection belongs to the caller; nothing to stop here. */
  close(): void {}
}

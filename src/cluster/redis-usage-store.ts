import { addDelta, emptyDay, lastDays, type DailyUsage, type DayKey, type UsageDelta, type UsageReport, type UsageStore } from '../services/usage/usage-store';
import { emptyUsage, type UsageFigures } from '../services/usage/usage-figures';
import { randomBytes } from 'node:crypto';
import { isClusterUnavailable } from './cluster-errors';
import { LuaScript } from './lua-script';
import type { RedisConnection } from './redis-connection';

export interface RedisUsageStoreOptions {
  connection: RedisConnection;
  /**
   * This process's name in the shared counters (default: random). Pass the instance id; a random suffix is added,
   * so a restarted process under the same instance id never mistakes its fresh totals for its old ones.
   */
  writer?: string;
  /** Days kept per key (today included). Default 31, as in memory. */
  keepDays?: number;
  /** (key, day) totals this process keeps (its own part of each); beyond, the least recently used clean one is let go. Default 10,000. */
  maxPending?: number;
}

const TOKEN_FIELDS = ['promptTokens', 'responseTokens', 'thoughtsTokens', 'toolUsePromptTokens', 'cachedTokens', 'totalTokens', 'reports'] as const;
const MODALITY = /^[A-Z_]{1,32}$/;
const WRITER = /^[A-Za-z0-9_.-]{1,80}$/;
const enc = (key: string) => Buffer.from(key, 'utf8').toString('base64url');

/**
 * KEYS: the (key, day) hash. ARGV: ttl ms, then field/value pairs. Each field is one writer's absolute total of
 * one counter: it only grows (set to the larger of the stored and the given value), so a write applied twice (a
 * retry after a reply lost to a timeout, a rewrite after Redis came back) changes nothing.
 */
const RAISE = new LuaScript(
  'usage-raise',
  `for i = 2, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') or 0
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`,
  1,
);

/** This process's own part of one key's day: its absolute totals, and whether Redis has them yet. */
interface OwnTotals {
  key: string;
  day: DayKey;
  /** The hash fields' writer prefix (`<writer>.<n>`): a (key, day) let go and seen again starts a new one. */
  field: string;
  totals: DailyUsage;
  dirty: boolean;
  writing: Promise<void> | undefined;
}

/**
 * Per-key daily usage shared by every instance (cluster mode): one Redis hash per key and UTC day, expiring after
 * `keepDays`, in which each process keeps its own ABSOLUTE totals (fields `<writer>|<counter>`), raised by a Lua
 * script to the larger of the stored and the new value; a report is the sum over the writers. A write is thereby
 * idempotent: one that timed out after Redis applied it and is sent again, or every total rewritten when Redis is
 * back (after a restart that lost its data, the live processes' totals come back whole), never counts anything
 * twice. While Redis is down the totals keep growing locally (bounded) and are written when it answers again; reads
 * then fail with `CLUSTER_UNAVAILABLE` (503), never a partial figure. A key's hash holds a fixed set of counters per
 * writer (modality names are checked) and expires: no key holder can grow it.
 */
export class RedisUsageStore implements UsageStore {
  private readonly keepDays: number;
  private readonly maxEntries: number;
  private readonly writer: string;
  private readonly own = new Map<string, OwnTotals>();
  private nextField = 0;
  /** (key, day) totals let go while not yet written (Redis down and `maxPending` dirty ones held). */
  droppedWhileDown = 0;
  private readonly onState = (state: string) => {
    if (state === 'connected') void this.rewriteAll();
  };

  constructor(private readonly o: RedisUsageStoreOptions) {
    this.keepDays = Math.max(1, o.keepDays ?? 31);
    this.maxEntries = Math.max(1, o.maxPending ?? 10_000);
    const base = o.writer && WRITER.test(o.writer) ? o.writer : 'w';
    this.writer = `${base}.${randomBytes(4).toString('hex')}`;
    o.connection.on('state', this.onState);
  }

  /** Stops following the connection (its `connected` rewrites). */
  close(): void {
    this.o.connection.off('state', this.onState);
  }

  private hashKey(key: string, day: DayKey): string {
    return this.o.connection.key('usage', enc(key), day);
  }

  async add(key: string, day: DayKey, delta: UsageDelta): Promise<void> {
    const id = `${enc(key)}/${day}`;
    let e = this.own.get(id);
    if (e) this.own.delete(id); // re-inserted: Map order is recency
    else e = { key, day, field: `${this.writer}.${this.nextField++}`, totals: emptyDay(day), dirty: false, writing: undefined };
    this.own.set(id, e);
    e.totals = addDelta(e.totals, delta);
    e.dirty = true;
    this.letGo();
    await this.flush(e);
  }

  /** Writes `e`'s totals until Redis has the latest (one write in flight per entry); held when Redis is down. */
  private async flush(e: OwnTotals): Promise<void> {
    while (e.dirty) {
      if (e.writing) {
        await e.writing.catch(() => undefined);
        continue;
      }
      e.dirty = false;
      const w = this.write(e);
      e.writing = w;
      try {
        await w;
      } catch (err) {
        e.dirty = true;
        if (!isClusterUnavailable(err)) throw err;
        return; // held: written when Redis is back (`rewriteAll`)
      } finally {
        if (e.writing === w) e.writing = undefined;
      }
    }
  }

  /** Redis is back (maybe empty after a restart): every total this process holds is written again. */
  async rewriteAll(): Promise<void> {
    for (const e of [...this.own.values()]) {
      e.dirty = true;
      await this.flush(e).catch(() => undefined);
    }
  }

  /** Keeps at most `maxEntries` (key, day) totals: the least recently used written ones go first. */
  private letGo(): void {
    if (this.own.size <= this.maxEntries) return;
    for (const [id, e] of this.own) {
      if (this.own.size <= this.maxEntries) return;
      if (!e.dirty && !e.writing) this.own.delete(id);
    }
    for (const [id] of this.own) {
      if (this.own.size <= this.maxEntries) return;
      this.own.delete(id);
      this.droppedWhileDown++;
    }
  }

  private async write(e: OwnTotals): Promise<void> {
    const d = e.totals;
    const f = (counter: string) => `${e.field}|${counter}`;
    const pairs: (string | number)[] = [];
    for (const t of TOKEN_FIELDS) if (d.tokens[t] > 0) pairs.push(f(`t:${t}`), d.tokens[t]);
    for (const [mod, n] of Object.entries(d.tokens.promptByModality)) if (MODALITY.test(mod) && n > 0) pairs.push(f(`pm:${mod}`), n);
    for (const [mod, n] of Object.entries(d.tokens.responseByModality)) if (MODALITY.test(mod) && n > 0) pairs.push(f(`rm:${mod}`), n);
    if (d.audioSeconds.input > 0) pairs.push(f('ai'), d.audioSeconds.input);
    if (d.audioSeconds.output > 0) pairs.push(f('ao'), d.audioSeconds.output);
    if (d.sessions > 0) pairs.push(f('s'), d.sessions);
    if (d.turns > 0) pairs.push(f('tu'), d.turns);
    if (pairs.length === 0) return;
    const k = this.hashKey(e.key, e.day);
    await this.o.connection.run((cl) => RAISE.run(cl, [k], [(this.keepDays + 1) * 86_400_000, ...pairs]));
  }

  async day(key: string, day: DayKey): Promise<DailyUsage> {
    const h = await this.o.connection.run((cl) => cl.hgetall(this.hashKey(key, day)));
    return parseDay(day, h);
  }

  async report(key: string, today: DayKey, days = 31): Promise<UsageReport> {
    const wanted = lastDays(today, Math.max(1, Math.min(days, this.keepDays)));
    const res = await this.o.connection.run((cl) => {
      const p = cl.pipeline();
      for (const d of wanted) p.hgetall(this.hashKey(key, d));
      return p.exec();
    });
    const list: DailyUsage[] = [];
    (res ?? []).forEach(([err, h], i) => {
      if (err) throw err;
      const fields = h as Record<string, string>;
      if (Object.keys(fields).length > 0) list.push(parseDay(wanted[i]!, fields));
    });
    const total = list.reduce(
      (sum, d) => addDelta(sum, { tokens: d.tokens, audioInputSeconds: d.audioSeconds.input, audioOutputSeconds: d.audioSeconds.output, sessions: d.sessions, turns: d.turns }),
      emptyDay(today),
    );
    const { day: _day, ...totals } = total;
    return { key, today: list.find((d) => d.day === today) ?? emptyDay(today), days: list, total: totals };
  }
}

function parseDay(day: DayKey, raw: Record<string, string> | null | undefined): DailyUsage {
  const out = emptyDay(day);
  if (!raw) return out;
  // Every writer's totals added up, counter by counter (a field without a writer: an earlier version's sum).
  const h: Record<string, number> = {};
  const num = (v: string | undefined) => {
    const n = Number(v ?? 0);
    return Number.isFinite(n) && n > 0 ? n : 0;
  };
  for (const [field, v] of Object.entries(raw)) {
    const counter = field.slice(field.indexOf('|') + 1);
    h[counter] = (h[counter] ?? 0) + num(v);
  }
  const tokens: UsageFigures = emptyUsage();
  for (const f of TOKEN_FIELDS) tokens[f] = h[`t:${f}`] ?? 0;
  for (const [field, v] of Object.entries(h)) {
    if (field.startsWith('pm:')) tokens.promptByModality[field.slice(3)] = v;
    else if (field.startsWith('rm:')) tokens.responseByModality[field.slice(3)] = v;
  }
  out.tokens = tokens;
  out.audioSeconds = { input: Math.round((h.ai ?? 0) * 1000) / 1000, output: Math.round((h.ao ?? 0) * 1000) / 1000 };
  out.sessions = h.s ?? 0;
  out.turns = h.tu ?? 0;
  return out;
}

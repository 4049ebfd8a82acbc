import { addDelta, emptyDay, lastDays, type DailyUsage, type DayKey, type UsageDelta, type UsageReport, type UsageStore } from '../services/usage/usage-store';
import { emptyUsage, type UsageFigures } from '../services/usage/usage-figures';
import { isClusterUnavailable } from './cluster-errors';
import type { RedisConnection } from './redis-connection';

export interface RedisUsageStoreOptions {
  connection: RedisConnection;
  /** Days kept per key (today included). Default 31, as in memory. */
  keepDays?: number;
  /** Additions held while Redis is down (per key and day, merged), added when it is back. Default 10,000. */
  maxPending?: number;
}

const TOKEN_FIELDS = ['promptTokens', 'responseTokens', 'thoughtsTokens', 'toolUsePromptTokens', 'cachedTokens', 'totalTokens', 'reports'] as const;
const MODALITY = /^[A-Z_]{1,32}$/;
const enc = (key: string) => Buffer.from(key, 'utf8').toString('base64url');

/**
 * Per-key daily usage shared by every instance (cluster mode): one Redis hash per key and UTC day, added to with
 * HINCRBY / HINCRBYFLOAT in one MULTI (each instance adds what its own sessions used, so a report is the sum over
 * the instances), expiring after `keepDays`. A key's data is a fixed set of counters per day (modality names are
 * checked), so no key can grow it. While Redis is down the additions are merged locally (bounded) and added when
 * it answers again; reads then fail with `CLUSTER_UNAVAILABLE` (503), never a partial figure.
 */
export class RedisUsageStore implements UsageStore {
  private readonly keepDays: number;
  private readonly maxPending: number;
  private readonly pending = new Map<string, { key: string; day: DayKey; delta: DailyUsage }>();
  /** Additions dropped because Redis was down and `maxPending` were held. */
  droppedWhileDown = 0;

  constructor(private readonly o: RedisUsageStoreOptions) {
    this.keepDays = Math.max(1, o.keepDays ?? 31);
    this.maxPending = Math.max(1, o.maxPending ?? 10_000);
  }

  private hashKey(key: string, day: DayKey): string {
    return this.o.connection.key('usage', enc(key), day);
  }

  async add(key: string, day: DayKey, delta: UsageDelta): Promise<void> {
    const id = `${enc(key)}/${day}`;
    const held = this.pending.get(id);
    const merged = addDelta(held?.delta ?? emptyDay(day), delta);
    this.pending.delete(id);
    try {
      await this.write(key, day, merged);
    } catch (err) {
      if (!isClusterUnavailable(err)) throw err;
      if (this.pending.size >= this.maxPending) this.droppedWhileDown++;
      else this.pending.set(id, { key, day, delta: merged });
      return;
    }
    // Redis answers: what was held for other keys goes too (best effort; kept on failure).
    for (const [pid, p] of [...this.pending]) {
      this.pending.delete(pid);
      await this.write(p.key, p.day, p.delta).catch(() => this.pending.set(pid, p));
    }
  }

  private async write(key: string, day: DayKey, d: DailyUsage): Promise<void> {
    const k = this.hashKey(key, day);
    await this.o.connection.run((cl) => {
      const m = cl.multi();
      for (const f of TOKEN_FIELDS) if (d.tokens[f] > 0) m.hincrby(k, `t:${f}`, d.tokens[f]);
      for (const [mod, n] of Object.entries(d.tokens.promptByModality)) if (MODALITY.test(mod) && n > 0) m.hincrby(k, `pm:${mod}`, n);
      for (const [mod, n] of Object.entries(d.tokens.responseByModality)) if (MODALITY.test(mod) && n > 0) m.hincrby(k, `rm:${mod}`, n);
      if (d.audioSeconds.input > 0) m.hincrbyfloat(k, 'ai', d.audioSeconds.input);
      if (d.audioSeconds.output > 0) m.hincrbyfloat(k, 'ao', d.audioSeconds.output);
      if (d.sessions > 0) m.hincrby(k, 's', d.sessions);
      if (d.turns > 0) m.hincrby(k, 'tu', d.turns);
      m.pexpire(k, (this.keepDays + 1) * 86_400_000);
      return m.exec();
    });
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

function parseDay(day: DayKey, h: Record<string, string> | null | undefined): DailyUsage {
  const out = emptyDay(day);
  if (!h) return out;
  const tokens: UsageFigures = emptyUsage();
  const num = (v: string | undefined) => {
    const n = Number(v ?? 0);
    return Number.isFinite(n) && n > 0 ? n : 0;
  };
  for (const f of TOKEN_FIELDS) tokens[f] = num(h[`t:${f}`]);
  for (const [field, v] of Object.entries(h)) {
    if (field.startsWith('pm:')) tokens.promptByModality[field.slice(3)] = num(v);
    else if (field.startsWith('rm:')) tokens.responseByModality[field.slice(3)] = num(v);
  }
  out.tokens = tokens;
  out.audioSeconds = { input: Math.round(num(h.ai) * 1000) / 1000, output: Math.round(num(h.ao) * 1000) / 1000 };
  out.sessions = num(h.s);
  out.turns = num(h.tu);
  return out;
}

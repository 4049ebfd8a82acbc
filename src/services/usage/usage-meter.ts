import { decideAtTurnBoundary, decideNewSession, dailyTokenBudget, type BudgetSettings, type NewSessionDecision, type TurnBoundaryDecision } from './budget';
import type { UsageMetrics } from './usage-metrics';
import { dayOf, type UsageDelta, type UsageReport, type UsageStore } from './usage-store';

export interface UsageMeterOptions {
  store: UsageStore;
  metrics?: UsageMetrics;
  budget?: BudgetSettings;
  now?: () => number;
}

/**
 * Usage per key (API key name or JWT user): records what sessions use into the store (today's UTC bucket) and the
 * metrics, and answers the budget questions the session door asks (pure decisions over today's spend).
 */
export class UsageMeter {
  private readonly now: () => number;

  constructor(private readonly o: UsageMeterOptions) {
    this.now = o.now ?? Date.now;
  }

  async record(key: string, delta: UsageDelta): Promise<void> {
    this.o.metrics?.observe(key, delta);
    await this.o.store.add(key, dayOf(this.now()), delta);
  }

  /** Tokens `key` spent today (UTC). */
  async spentToday(key: string): Promise<number> {
    return (await this.o.store.day(key, dayOf(this.now()))).tokens.totalTokens;
  }

  /** Before `POST /session/start` / `start_session`. `keyOverride`: the key file's `maxTokensPerDay` for this key. */
  async canStartSession(key: string, keyOverride?: number | null): Promise<NewSessionDecision> {
    const budget = dailyTokenBudget(this.o.budget ?? {}, keyOverride);
    if (budget === null) return { allowed: true, remaining: null };
    const d = decideNewSession(await this.spentToday(key), budget, this.now());
    if (!d.allowed) this.o.metrics?.budget(key, 'refused_new_session');
    return d;
  }

  /** After each turn's usage is recorded: whether the session must end now. */
  async atTurnBoundary(key: string, keyOverride?: number | null): Promise<TurnBoundaryDecision> {
    const budget = dailyTokenBudget(this.o.budget ?? {}, keyOverride);
    if (budget === null) return { end: false };
    const d = decideAtTurnBoundary(await this.spentToday(key), budget);
    if (d.end) this.o.metrics?.budget(key, 'ended_at_turn');
    return d;
  }

  /** The key's daily token budget (null: none). */
  budgetFor(keyOverride?: number | null): number | null {
    return dailyTokenBudget(this.o.budget ?? {}, keyOverride);
  }

  /** `GET /usage`: today and the days before it, `days` in all (default 31: today and the last 30 days). */
  report(key: string, days = 31): Promise<UsageReport> {
    return this.o.store.report(key, dayOf(this.now()), days);
  }
}

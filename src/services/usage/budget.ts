/**
 * Per-key daily token budgets, as pure decisions. `LIVE_AUDIO_MAX_TOKENS_PER_DAY` is the server default (0: no
 * budget); a key may carry its own in the key file (`maxTokensPerDay`, 0 = unlimited), which wins.
 */

export interface BudgetSettings {
  /** `LIVE_AUDIO_MAX_TOKENS_PER_DAY`; 0 or undefined = no budget. */
  serverDailyTokens?: number;
}

/** The key's daily budget in tokens, or `null` for none. `keyOverride`: the key file's value for this key. */
export function dailyTokenBudget(settings: BudgetSettings, keyOverride?: number | null): number | null {
  const v = keyOverride ?? settings.serverDailyTokens;
  return v === undefined || v === null || !(v > 0) ? null : Math.floor(v);
}

export type NewSessionDecision =
  | { allowed: true; remaining: number | null }
  | { allowed: false; code: 'TOKEN_BUDGET_EXHAUSTED'; error: string; status: 429; retryAfterSec: number };

/** Before a session starts: refused once today's spend reached the budget (429 until midnight UTC). */
export function decideNewSession(spentToday: number, budget: number | null, nowMs: number): NewSessionDecision {
  if (budget === null) return { allowed: true, remaining: null };
  if (spentToday < budget) return { allowed: true, remaining: budget - spentToday };
  return {
    allowed: false,
    code: 'TOKEN_BUDGET_EXHAUSTED',
    status: 429,
    error: `The daily token budget of this key (${budget} tokens) is spent; it resets at midnight UTC`,
    retryAfterSec: secondsToMidnightUtc(nowMs),
  };
}

export type TurnBoundaryDecision = { end: false } | { end: true; reason: 'token_budget_exhausted'; message: string };

/**
 * At a turn boundary (after `turnComplete` and its usage): a running session ends once the budget is spent, so a
 * reply is never cut in the middle.
 */
export function decideAtTurnBoundary(spentToday: number, budget: number | null): TurnBoundaryDecision {
  if (budget === null || spentToday < budget) return { end: false };
  return {
    end: true,
    reason: 'token_budget_exhausted',
    message: `The daily token budget of this key (${budget} tokens) is spent; the session ended after the last turn`,
  };
}

export function secondsToMidnightUtc(nowMs: number): number {
  const d = new Date(nowMs);
  const midnight = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
  return Math.max(1, Math.ceil((midnight - nowMs) / 1000));
}

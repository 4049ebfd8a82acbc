import type { UsageMetadata } from '@google/genai';

/**
 * Token counts in a form that adds up: one `usageMetadata` (a turn's, or a setup's) or any sum of them.
 * Gemini Live sends usage per turn, not cumulative (models-and-setup.md §4): totals are sums.
 */
export interface UsageFigures {
  promptTokens: number;
  responseTokens: number;
  thoughtsTokens: number;
  toolUsePromptTokens: number;
  cachedTokens: number;
  totalTokens: number;
  /** Prompt tokens by modality (`TEXT`, `AUDIO`, `IMAGE`, `VIDEO`, ...). */
  promptByModality: Record<string, number>;
  responseByModality: Record<string, number>;
  /** How many `usageMetadata` messages were added up. */
  reports: number;
}

export function emptyUsage(): UsageFigures {
  return {
    promptTokens: 0,
    responseTokens: 0,
    thoughtsTokens: 0,
    toolUsePromptTokens: 0,
    cachedTokens: 0,
    totalTokens: 0,
    promptByModality: {},
    responseByModality: {},
    reports: 0,
  };
}

const MODALITY = /^[A-Z_]{1,32}$/;
/** Bounds a hostile or broken upstream: counts are non-negative integers below 2^40. */
const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.min(Math.floor(v), 2 ** 40) : 0);

function byModality(details: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!Array.isArray(details)) return out;
  for (const d of details.slice(0, 16)) {
    const modality = typeof d?.modality === 'string' && MODALITY.test(d.modality) ? d.modality : 'OTHER';
    out[modality] = (out[modality] ?? 0) + count(d?.tokenCount);
  }
  return out;
}

/** One `usageMetadata` message as figures. `totalTokenCount` missing → the sum of its parts. */
export function fromUsageMetadata(m: UsageMetadata | Record<string, unknown> | undefined): UsageFigures {
  const u = (m ?? {}) as Record<string, unknown>;
  const f = emptyUsage();
  f.promptTokens = count(u.promptTokenCount);
  f.responseTokens = count(u.responseTokenCount);
  f.thoughtsTokens = count(u.thoughtsTokenCount);
  f.toolUsePromptTokens = count(u.toolUsePromptTokenCount);
  f.cachedTokens = count(u.cachedContentTokenCount);
  f.totalTokens = count(u.totalTokenCount) || f.promptTokens + f.responseTokens + f.thoughtsTokens + f.toolUsePromptTokens;
  f.promptByModality = byModality(u.promptTokensDetails);
  f.responseByModality = byModality(u.responseTokensDetails);
  f.reports = 1;
  return f;
}

function addRecord(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** a + b (new object). */
export function addUsage(a: UsageFigures, b: UsageFigures): UsageFigures {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    responseTokens: a.responseTokens + b.responseTokens,
    thoughtsTokens: a.thoughtsTokens + b.thoughtsTokens,
    toolUsePromptTokens: a.toolUsePromptTokens + b.toolUsePromptTokens,
    cachedTokens: a.cachedTokens + b.cachedTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    promptByModality: addRecord(a.promptByModality, b.promptByModality),
    responseByModality: addRecord(a.responseByModality, b.responseByModality),
    reports: a.reports + b.reports,
  };
}

import { Registry } from 'prom-client';
import {
  addUsage,
  dailyTokenBudget,
  dayOf,
  decideAtTurnBoundary,
  decideNewSession,
  emptyUsage,
  fromUsageMetadata,
  MemoryUsageStore,
  secondsToMidnightUtc,
  UsageMeter,
  UsageMetrics,
} from '../../src/services/usage';

const DAY = 86_400_000;
const T0 = Date.parse('2026-12-01T10:00:00Z');

describe('usage figures', () => {
  it('read usageMetadata, including thoughts, tool use, cached tokens and modality details', () => {
    const f = fromUsageMetadata({
      promptTokenCount: 143,
      responseTokenCount: 50,
      thoughtsTokenCount: 12,
      toolUsePromptTokenCount: 5,
      cachedContentTokenCount: 100,
      totalTokenCount: 210,
      promptTokensDetails: [
        { modality: 'AUDIO', tokenCount: 100 },
        { modality: 'TEXT', tokenCount: 43 },
      ],
      responseTokensDetails: [{ modality: 'AUDIO', tokenCount: 50 }],
    } as never);
    expect(f).toEqual({
      promptTokens: 143,
      responseTokens: 50,
      thoughtsTokens: 12,
      toolUsePromptTokens: 5,
      cachedTokens: 100,
      totalTokens: 210,
      promptByModality: { AUDIO: 100, TEXT: 43 },
      responseByModality: { AUDIO: 50 },
      reports: 1,
    });
  });

  it('add up per turn (the 3.1 probe: 143 → 181 → 224 are three turns, not a running total)', () => {
    const sum = [143, 181, 224].map((p) => fromUsageMetadata({ promptTokenCount: p, totalTokenCount: p })).reduce(addUsage, emptyUsage());
    expect(sum).toMatchObject({ promptTokens: 548, totalTokens: 548, reports: 3 });
  });

  it('a hostile or broken upstream cannot make counts negative, fractional, huge or labels unbounded', () => {
    const f = fromUsageMetadata({
      promptTokenCount: -5,
      responseTokenCount: 1.7,
      totalTokenCount: 1e300,
      promptTokensDetails: Array.from({ length: 1000 }, (_, i) => ({ modality: `M${'x'.repeat(i)}<script>`, tokenCount: 1 })),
    } as never);
    expect(f.promptTokens).toBe(0);
    expect(f.responseTokens).toBe(1);
    expect(f.totalTokens).toBe(2 ** 40);
    expect(Object.keys(f.promptByModality)).toEqual(['OTHER']);
    expect(f.promptByModality.OTHER).toBe(16);
    expect(fromUsageMetadata({ promptTokenCount: 3, responseTokenCount: 4 }).totalTokens).toBe(7);
  });
});

describe('MemoryUsageStore: daily buckets per key', () => {
  it('reports today and the last 30 days, tokens by kind and modality, audio seconds, sessions', async () => {
    const store = new MemoryUsageStore();
    const tokens = fromUsageMetadata({ promptTokenCount: 10, responseTokenCount: 5, totalTokenCount: 15, promptTokensDetails: [{ modality: 'AUDIO', tokenCount: 10 }] } as never);
    for (let d = 0; d < 40; d++) await store.add('alice', dayOf(T0 - d * DAY), { tokens, sessions: 1, audioInputSeconds: 2.5, turns: 1 });
    await store.add('alice', dayOf(T0), { audioOutputSeconds: 4 });
    await store.add('bob', dayOf(T0), { tokens });
    const r = await store.report('alice', dayOf(T0));
    expect(r.days).toHaveLength(31);
    expect(r.days[0].day).toBe('2026-12-01');
    expect(r.days[30].day).toBe('2026-11-01');
    expect(r.today).toMatchObject({ day: '2026-12-01', sessions: 1, turns: 1, audioSeconds: { input: 2.5, output: 4 } });
    expect(r.total).toMatchObject({ sessions: 31, audioSeconds: { input: 77.5, output: 4 } });
    expect(r.total.tokens).toMatchObject({ totalTokens: 31 * 15, promptByModality: { AUDIO: 310 } });
    expect((await store.report('bob', dayOf(T0))).total.tokens.totalTokens).toBe(15);
    expect((await store.report('carol', dayOf(T0))).days).toEqual([]);
  });

  it('keeps at most 31 days per key and a bounded number of keys (least recently used forgotten)', async () => {
    const store = new MemoryUsageStore({ maxKeys: 100 });
    for (let d = 0; d < 60; d++) await store.add('alice', dayOf(T0 + d * DAY), { sessions: 1 });
    const r = await store.report('alice', dayOf(T0 + 59 * DAY), 400);
    expect(r.days).toHaveLength(31);
    for (let i = 0; i < 10_000; i++) await store.add(`user${i}`, dayOf(T0), { sessions: 1 });
    expect(store.size).toBe(100);
    expect(store.evictedKeys).toBe(9_901);
  });
});

describe('budgets: pure decisions', () => {
  it('a key override wins over the server default; 0 means no budget', () => {
    expect(dailyTokenBudget({ serverDailyTokens: 1000 })).toBe(1000);
    expect(dailyTokenBudget({ serverDailyTokens: 1000 }, 50)).toBe(50);
    expect(dailyTokenBudget({ serverDailyTokens: 1000 }, 0)).toBeNull();
    expect(dailyTokenBudget({}, null)).toBeNull();
    expect(dailyTokenBudget({ serverDailyTokens: 0 })).toBeNull();
  });

  it('refuses new sessions once spent (429 until midnight UTC); ends running ones at the next turn boundary', () => {
    expect(decideNewSession(999, 1000, T0)).toEqual({ allowed: true, remaining: 1 });
    const refused = decideNewSession(1000, 1000, T0);
    expect(refused).toMatchObject({ allowed: false, status: 429, code: 'TOKEN_BUDGET_EXHAUSTED', retryAfterSec: 14 * 3600 });
    expect(decideNewSession(5_000_000, null, T0)).toEqual({ allowed: true, remaining: null });
    expect(decideAtTurnBoundary(999, 1000)).toEqual({ end: false });
    expect(decideAtTurnBoundary(1200, 1000)).toMatchObject({ end: true, reason: 'token_budget_exhausted' });
    expect(secondsToMidnightUtc(Date.parse('2026-12-01T23:59:59.500Z'))).toBe(1);
  });
});

describe('UsageMeter and the Prometheus counters', () => {
  it('records into today, decides budgets from today only, counts by key name on the given registry', async () => {
    let now = T0;
    const registry = new Registry();
    const metrics = new UsageMetrics(registry, { maxKeyLabels: 2 });
    const meter = new UsageMeter({ store: new MemoryUsageStore(), metrics, budget: { serverDailyTokens: 100 }, now: () => now });
    await meter.record('alice', { sessions: 1, tokens: fromUsageMetadata({ promptTokenCount: 60, responseTokenCount: 30, totalTokenCount: 90 }) });
    expect(await meter.canStartSession('alice')).toEqual({ allowed: true, remaining: 10 });
    expect(await meter.atTurnBoundary('alice')).toEqual({ end: false });
    await meter.record('alice', { tokens: fromUsageMetadata({ totalTokenCount: 15 }), audioInputSeconds: 3 });
    expect(await meter.atTurnBoundary('alice')).toMatchObject({ end: true });
    expect(await meter.canStartSession('alice')).toMatchObject({ allowed: false });
    expect(await meter.canStartSession('alice', 1000)).toMatchObject({ allowed: true, remaining: 895 });
    now += DAY; // a new UTC day
    expect(await meter.canStartSession('alice')).toEqual({ allowed: true, remaining: 100 });
    expect((await meter.report('alice')).days.map((d) => d.day)).toEqual(['2026-12-01']);

    await meter.record('bob', { sessions: 1 });
    await meter.record('carol', { sessions: 1 });
    const text = await registry.metrics();
    expect(text).toContain('live_audio_usage_tokens_total{key="alice",kind="total"} 105');
    expect(text).toContain('live_audio_usage_tokens_total{key="alice",kind="prompt"} 60');
    expect(text).toContain('live_audio_usage_audio_seconds_total{key="alice",direction="input"} 3');
    expect(text).toContain('live_audio_usage_budget_decisions_total{key="alice",decision="ended_at_turn"} 1');
    expect(text).toContain('live_audio_usage_budget_decisions_total{key="alice",decision="refused_new_session"} 1');
    expect(text).toContain('live_audio_usage_sessions_total{key="bob"} 1');
    expect(text).toContain('live_audio_usage_sessions_total{key="other"} 1'); // carol: beyond 2 key labels
  });
});

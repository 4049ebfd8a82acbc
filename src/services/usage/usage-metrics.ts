import { Counter, type Registry } from 'prom-client';
import type { UsageDelta } from './usage-store';

export interface UsageMetricsOptions {
  /** Distinct key labels at most; further keys are counted under `other` (JWT users are unbounded). Default 1,000. */
  maxKeyLabels?: number;
}

/**
 * Prometheus counters of usage by key name, registered on the registry it is given (the server's own, so several
 * servers can live in one process). Label values are bounded.
 */
export class UsageMetrics {
  readonly tokens: Counter<'key' | 'kind'>;
  readonly audioSeconds: Counter<'key' | 'direction'>;
  readonly sessions: Counter<'key'>;
  readonly budgetDecisions: Counter<'key' | 'decision'>;
  private readonly labels = new Set<string>();
  private readonly maxKeyLabels: number;

  constructor(registry: Registry, opts: UsageMetricsOptions = {}) {
    this.maxKeyLabels = opts.maxKeyLabels ?? 1000;
    const registers = [registry];
    this.tokens = new Counter({
      name: 'live_audio_usage_tokens_total',
      help: 'Gemini tokens used, by key and kind (prompt, response, thoughts, tool_use_prompt, cached, total)',
      labelNames: ['key', 'kind'],
      registers,
    });
    this.audioSeconds = new Counter({
      name: 'live_audio_usage_audio_seconds_total',
      help: 'Seconds of audio, by key and direction (input: user audio sent to Gemini, output: reply audio)',
      labelNames: ['key', 'direction'],
      registers,
    });
    this.sessions = new Counter({ name: 'live_audio_usage_sessions_total', help: 'Sessions started, by key', labelNames: ['key'], registers });
    this.budgetDecisions = new Counter({
      name: 'live_audio_usage_budget_decisions_total',
      help: 'Daily token budget enforcement, by key and decision (refused_new_session, ended_at_turn)',
      labelNames: ['key', 'decision'],
      registers,
    });
  }

  /** The label for a key: itself while fewer than `maxKeyLabels` keys were seen, else `other`. */
  label(key: string): string {
    if (this.labels.has(key)) return key;
    if (this.labels.size >= this.maxKeyLabels) return 'other';
    this.labels.add(key);
    return key;
  }

  observe(key: string, delta: UsageDelta): void {
    const k = this.label(key);
    const t = delta.tokens;
    if (t) {
      const kinds: [string, number][] = [
        ['prompt', t.promptTokens],
        ['response', t.responseTokens],
        ['thoughts', t.thoughtsTokens],
        ['tool_use_prompt', t.toolUsePromptTokens],
        ['cached', t.cachedTokens],
        ['total', t.totalTokens],
      ];
      for (const [kind, n] of kinds) if (n > 0) this.tokens.inc({ key: k, kind }, n);
    }
    if (delta.audioInputSeconds) this.audioSeconds.inc({ key: k, direction: 'input' }, delta.audioInputSeconds);
    if (delta.audioOutputSeconds) this.audioSeconds.inc({ key: k, direction: 'output' }, delta.audioOutputSeconds);
    if (delta.sessions) this.sessions.inc({ key: k }, delta.sessions);
  }

  budget(key: string, decision: 'refused_new_session' | 'ended_at_turn'): void {
    this.budgetDecisions.inc({ key: this.label(key), decision });
  }
}

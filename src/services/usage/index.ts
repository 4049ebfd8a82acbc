/** Token and audio usage: per-turn figures that add up, per-key daily buckets, budgets, Prometheus counters. */
export * from './usage-figures';
export * from './usage-store';
export * from './budget';
export * from './usage-metrics';
export * from './usage-meter';

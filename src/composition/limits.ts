import type { AppConfig } from '../config/config';
import type { ClusterNode } from '../cluster/cluster-node';
import { ReconciledLimitStore } from '../cluster/reconciled-limit-store';
import type { Metrics } from '../observability/metrics';
import { MemoryLimitStore, type LimitStore } from '../services/limits/limit-store';
import { Limits } from '../services/limits/limits';
import type { Logger } from '../util/logger';

/**
 * Every budget (HTTP request counts, WebSocket messages, audio, per-IP) counts in one store. Cluster mode: one
 * budget across the instances, counted locally and reconciled with the shared Redis counters every 200 ms.
 */
export function buildLimits(
  config: AppConfig,
  clusterNode: ClusterNode | undefined,
  metrics: Metrics,
  logger: Logger,
): { limitStore: LimitStore; limits: Limits } {
  const limitStore: LimitStore = clusterNode ? new ReconciledLimitStore({ shared: clusterNode.limits, logger }) : new MemoryLimitStore();
  const limits = new Limits({
    store: limitStore,
    audioSecondsPerMinute: config.limits.maxAudioSecondsPerMinute,
    audioBytesPerMinute: config.ws.maxAudioBytesPerMinute,
    wsMessagesPerMinute: config.ws.maxMessagesPerMinute,
    unauthenticatedPerIpPerMinute: config.limits.maxRequestsPerIpPerMinute,
    wsConnectsPerIpPerMinute: config.limits.maxConnectionsPerIpPerMinute,
    onRefused: (kind) => metrics.rateLimited.inc({ limit: kind }),
  });
  return { limitStore, limits };
}

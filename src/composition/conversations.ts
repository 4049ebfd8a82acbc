import type { AppConfig } from '../config/config';
import type { Metrics } from '../observability/metrics';
import { ConversationArchive, MemoryTranscriptStore } from '../services/conversation';
import { LiveModelTable } from '../services/models/live-model-table';
import { ProfileStore } from '../services/profiles/profile-store';
import { DEFAULT_SERVER_SETUP } from '../services/session-setup/resolve-session-setup';
import { SessionPlanner } from '../services/session-setup/session-planner';
import { MemoryUsageStore, UsageMeter, UsageMetrics } from '../services/usage';
import { WebhookSender } from '../services/webhook/webhook-sender';
import type { Logger } from '../util/logger';
import type { ClusterNode } from '../cluster/cluster-node';
import { ClusterTranscriptStore } from '../cluster/cluster-transcript-store';
import { RedisUsageStore } from '../cluster/redis-usage-store';

/**
 * Conversations (issue 14): the model table, profiles (the old server-wide instruction and voice are the `default`
 * profile's), usage per key and day with its budget, transcripts kept after the end, the session.ended webhook.
 * Cluster mode (issue 15): usage and transcripts live in Redis, readable from every instance.
 */
export function buildConversations(config: AppConfig, logger: Logger, metrics: Metrics, cluster?: ClusterNode) {
  const models = new LiveModelTable({ defaultModel: config.gemini.defaultModel, extra: config.gemini.extraModels });
  const profiles = new ProfileStore({
    filePath: config.conversations.profilesFile,
    server: { systemInstruction: config.gemini.systemInstruction, voice: config.gemini.voice },
    models,
    log: logger,
  });
  const usage = new UsageMeter({
    store: cluster ? new RedisUsageStore({ connection: cluster.connection, writer: cluster.id }) : new MemoryUsageStore(),
    metrics: new UsageMetrics(metrics.registry),
    budget: { serverDailyTokens: config.conversations.maxTokensPerDay },
  });
  const hook = config.webhook;
  const webhook = hook
    ? new WebhookSender({
        url: hook.url,
        secret: hook.secret,
        maxAttempts: hook.maxAttempts,
        attemptTimeoutMs: hook.timeoutMs,
        maxQueue: hook.maxQueue,
        logger,
      })
    : undefined;
  const localTranscripts = new MemoryTranscriptStore({
    retentionMs: config.conversations.transcriptRetentionMs,
    maxRecords: config.conversations.transcriptMaxRecords,
    maxBytes: config.conversations.transcriptMaxBytes,
    // Cluster mode: the local copies (read when Redis lacks one) are capped per key as Redis caps its copies.
    ...(cluster && config.cluster ? { maxPerOwner: config.cluster.transcriptsPerKey } : {}),
  });
  const archive = new ConversationArchive({
    store: cluster ? new ClusterTranscriptStore(cluster.records, localTranscripts) : localTranscripts,
    webhook,
    logger,
  });
  const planner = new SessionPlanner({ models, profiles, serverSetup: { ...DEFAULT_SERVER_SETUP }, usage, logger });
  return { usage, archive, planner, transcripts: localTranscripts };
}

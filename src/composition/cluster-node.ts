import type { AppConfig } from '../config/config';
import { ClusterNode } from '../cluster/cluster-node';
import type { Logger } from '../util/logger';

/** Cluster mode (`REDIS_URL`): the node (Redis, registry, records, forwarder, guard); undefined otherwise. */
export function buildClusterNode(config: AppConfig, logger: Logger): ClusterNode | undefined {
  const c = config.cluster;
  if (!c) return undefined;
  return new ClusterNode(
    {
      redisUrl: c.redisUrl,
      secret: c.secret,
      instanceId: c.instanceId,
      advertiseUrl: c.advertiseUrl,
      host: config.host,
      port: config.port,
      keyPrefix: c.redisKeyPrefix,
      commandTimeoutMs: c.redisCommandTimeoutMs,
      downAfterMs: c.redisDownAfterMs,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      missedHeartbeats: c.missedHeartbeats,
      forwardTimeoutMs: c.forwardTimeoutMs,
      maxForwardBodyBytes: config.http.jsonLimit,
      tombstoneMs: config.sessions.tombstoneMs,
      maxSessionsPerPrincipal: config.sessions.maxSessionsPerUser,
      transcriptRetentionMs: config.conversations.transcriptRetentionMs,
      maxTranscriptBytes: c.transcriptMaxBytes,
      maxTranscriptsPerPrincipal: c.transcriptsPerKey,
    },
    logger.child({ component: 'cluster' }),
  );
}

import { contextWindowCompression, type AppConfig } from '../config/config';
import type { ClusterSessions } from '../cluster/cluster-sessions';
import type { Metrics } from '../observability/metrics';
import type { ConversationArchive } from '../services/conversation';
import type { Limits } from '../services/limits/limits';
import { LiveAudioService, type DecoderFactory } from '../services/live-audio-service';
import type { SessionRegistry } from '../services/session/session-registry';
import type { SessionPlanner } from '../services/session-setup/session-planner';
import type { ResilienceOptions } from '../services/upstream/resilient-upstream';
import type { UpstreamProvider } from '../services/upstream/upstream-types';
import type { UsageMeter } from '../services/usage';
import type { Logger } from '../util/logger';

export interface SessionServiceParts {
  registry: SessionRegistry;
  /** Cluster mode: where sessions of other instances are found. */
  directory: ClusterSessions | undefined;
  decoders: DecoderFactory;
  provider: UpstreamProvider;
  planner: SessionPlanner;
  usage: UsageMeter;
  archive: ConversationArchive;
  limits: Limits;
  metrics: Metrics;
  logger: Logger;
}

/** The one door to the sessions (`LiveAudioService`), with the session, upstream, pacing and budget settings. */
export function buildService(
  config: AppConfig,
  p: SessionServiceParts,
  o: { resilience?: Partial<ResilienceOptions> } = {},
): LiveAudioService {
  return new LiveAudioService({
    directory: p.directory,
    registry: p.registry,
    decoders: p.decoders,
    provider: p.provider,
    planner: p.planner,
    usage: p.usage,
    archive: p.archive,
    logger: p.logger,
    sessionMaxAgeMs: config.sessions.maxMs,
    idleTimeoutMs: config.sessions.idleTimeoutMs,
    transcribeWaitMs: config.sessions.transcribeWaitMs,
    toolLimits: { timeoutMs: config.tools.timeoutMs, maxPending: config.tools.maxPendingToolCalls, maxResponseBytes: config.tools.maxToolResponseBytes },
    maxChunkBytes: config.audio.maxChunkBytes,
    logTranscripts: config.log.transcripts,
    resilience: {
      backlogMs: config.upstream.backlogMs,
      reconnectBudgetMs: config.upstream.reconnectBudgetMs,
      backoffBaseMs: config.upstream.reconnectBackoffBaseMs,
      backoffMaxMs: config.upstream.reconnectBackoffMaxMs,
      quickFailureMs: config.upstream.quickFailureMs,
      quickFailureLimit: config.upstream.quickFailureLimit,
      replayMs: config.upstream.reconnectReplayMs,
      ...o.resilience,
    },
    contextWindowCompression: contextWindowCompression(config.upstream),
    onRelayLatency: (ms) => p.metrics.observeRelayLatency(ms),
    // Audio seconds are charged as sessions relay decoded PCM, whatever the transport; a stream is cut at the budget.
    audioBudgetFor: (owner) => ({ take: (seconds) => p.limits.takeAudioSeconds(owner.id, seconds) }),
    audioSecondsPerMinute: config.limits.maxAudioSecondsPerMinute,
    admission: p.limits,
    pacing: {
      realtimeFactor: config.audio.maxRealtimeFactor,
      burstMs: config.audio.pacingBurstMs,
      maxBufferedBytes: config.audio.upstreamMaxBufferedBytes,
      maxFrameMs: config.audio.maxUpstreamFrameMs,
    },
  });
}

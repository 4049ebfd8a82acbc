import type { Logger } from '../util/logger';
import { defaultAdvertiseUrl } from './advertise-url';
import { ClusterGuard } from './cluster-guard';
import { Forwarder } from './forwarder';
import { InstanceRegistry } from './instance-registry';
import { RedisConnection } from './redis-connection';
import { RedisLimitStore } from './redis-limit-store';
import { SessionRecordStore } from './session-records';

/** The cluster settings (the config fields they become when wired: see deploy/README.md for the variables). */
export interface ClusterSettings {
  /** `REDIS_URL` */
  redisUrl: string;
  /** `LIVE_AUDIO_CLUSTER_SECRET` (≥ 32 characters) */
  secret: string;
  /** `LIVE_AUDIO_INSTANCE_ID` (default random) */
  instanceId?: string;
  /** `LIVE_AUDIO_ADVERTISE_URL` (default `http://<HOST>:<PORT>`) */
  advertiseUrl?: string;
  /** `HOST`, `PORT`: for the default advertise URL. */
  host: string;
  port: number;
  /** `LIVE_AUDIO_REDIS_KEY_PREFIX` (default `live-audio:`) */
  keyPrefix?: string;
  /** `LIVE_AUDIO_REDIS_COMMAND_TIMEOUT_MS` (default 1000) */
  commandTimeoutMs?: number;
  /** `LIVE_AUDIO_REDIS_DOWN_AFTER_MS` (default 5000) */
  downAfterMs?: number;
  /** `LIVE_AUDIO_HEARTBEAT_INTERVAL_MS` (default 2000), `LIVE_AUDIO_MISSED_HEARTBEATS` (default 3) */
  heartbeatIntervalMs?: number;
  missedHeartbeats?: number;
  /** `LIVE_AUDIO_FORWARD_TIMEOUT_MS` (default 10000) */
  forwardTimeoutMs?: number;
  /** Largest forwarded body: the largest legal request body (`LIVE_AUDIO_JSON_LIMIT`). */
  maxForwardBodyBytes: number;
  /** `LIVE_AUDIO_SESSION_TOMBSTONE_MS`, `LIVE_AUDIO_MAX_SESSIONS_PER_USER` */
  tombstoneMs: number;
  maxSessionsPerPrincipal: number;
  /** `LIVE_AUDIO_TRANSCRIPT_RETENTION_MS`, `LIVE_AUDIO_CLUSTER_TRANSCRIPT_MAX_BYTES`, `LIVE_AUDIO_CLUSTER_TRANSCRIPTS_PER_KEY` */
  transcriptRetentionMs?: number;
  maxTranscriptBytes?: number;
  maxTranscriptsPerPrincipal?: number;
}

/**
 * One instance's cluster membership, built from the settings: the Redis connection (state for `/ready`), the
 * registry (heartbeat, peers), the session records, the shared limit stores, the forwarder and the guard. The
 * composition root creates it when `REDIS_URL` is set, `start()`s it before listening and `stop()`s it last.
 */
export class ClusterNode {
  readonly connection: RedisConnection;
  readonly registry: InstanceRegistry;
  readonly records: SessionRecordStore;
  readonly limits: RedisLimitStore;
  readonly forwarder: Forwarder;
  readonly guard: ClusterGuard;

  constructor(
    s: ClusterSettings,
    private readonly logger?: Logger,
  ) {
    this.connection = new RedisConnection({
      url: s.redisUrl,
      keyPrefix: s.keyPrefix,
      commandTimeoutMs: s.commandTimeoutMs,
      downAfterMs: s.downAfterMs,
      logger,
    });
    this.registry = new InstanceRegistry({
      connection: this.connection,
      instanceId: s.instanceId,
      advertiseUrl: s.advertiseUrl ?? defaultAdvertiseUrl(s.host, s.port),
      heartbeatIntervalMs: s.heartbeatIntervalMs,
      missedHeartbeats: s.missedHeartbeats,
      logger,
    });
    this.records = new SessionRecordStore({
      connection: this.connection,
      liveness: this.registry,
      tombstoneMs: s.tombstoneMs,
      maxSessionsPerPrincipal: s.maxSessionsPerPrincipal,
      transcriptRetentionMs: s.transcriptRetentionMs,
      maxTranscriptBytes: s.maxTranscriptBytes,
      maxTranscriptsPerPrincipal: s.maxTranscriptsPerPrincipal,
    });
    this.limits = new RedisLimitStore(this.connection);
    this.forwarder = new Forwarder({
      selfId: this.registry.id,
      secret: s.secret,
      peers: this.registry,
      responseTimeoutMs: s.forwardTimeoutMs,
      maxBodyBytes: s.maxForwardBodyBytes,
      logger,
    });
    this.guard = new ClusterGuard(s.secret, logger);
  }

  get id(): string {
    return this.registry.id;
  }

  /** Connects (waiting up to `waitMs` for Redis; the instance starts anyway and reports `down` on /ready) and registers. */
  async start(waitMs = 5000): Promise<void> {
    this.connection.start();
    if (!(await this.connection.waitUntilConnected(waitMs))) {
      this.logger?.warn({ component: 'cluster', redis: this.connection.safeUrl }, 'Redis not reachable at start; serving local sessions, retrying');
    }
    await this.registry.start();
  }

  /** Deregisters, closes forwarding sockets and the Redis connection. */
  async stop(): Promise<void> {
    await this.registry.stop();
    this.forwarder.close();
    await this.connection.close();
  }
}

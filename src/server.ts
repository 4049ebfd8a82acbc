import type http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { DestinationStream } from 'pino';
import type { AppConfig } from './config/config';
import type { GeminiLiveEmulator } from './emulator';
import { buildClusterNode } from './composition/cluster-node';
import { RedisKeyStore } from './cluster/redis-key-store';
import { buildConversations } from './composition/conversations';
import { buildDecoders } from './composition/decoders';
import { buildHttpApp } from './composition/http-app';
import { buildHttpServer } from './composition/http-server';
import { buildLimits } from './composition/limits';
import { buildLogger } from './composition/logger';
import { buildService } from './composition/session-service';
import { buildUpstreamProvider } from './composition/upstream-provider';
import type { ClusterNode } from './cluster/cluster-node';
import { ClusterSessions } from './cluster/cluster-sessions';
import { OrphanSweeper } from './cluster/orphan-sweeper';
import { sessionStartCharge } from './cluster/hand-over-budget';
import { OwnerCalls } from './cluster/owner-calls';
import { Metrics } from './observability/metrics';
import { trackHttpRequests, waitFor, waitForSessionsToEnd } from './observability/shutdown';
import type { FfmpegIdentity } from './services/audio/ffmpeg-path';
import type { DecoderProcessCounters } from './services/audio/session-audio-decoder';
import { createAuthenticator, ensureDevelopmentKey, type AuthService, type DevelopmentKey } from './services/auth';
import type { Limits } from './services/limits/limits';
import { wsRateLimitsFrom } from './services/limits/ws-rate-limits-adapter';
import { wsUpgradeBudgetFrom } from './services/limits/ws-upgrade-budget-adapter';
import type { DecoderFactory, LiveAudioService } from './services/live-audio-service';
import { createClientIpResolver } from './services/policy/client-ip';
import { SessionRegistry } from './services/session/session-registry';
import type { ResilienceOptions } from './services/upstream/resilient-upstream';
import type { UpstreamProvider } from './services/upstream/upstream-types';
import type { Logger } from './util/logger';
import { attachLiveAudioWebSocket, type LiveAudioWsEndpoint } from './websocket/attach-live-audio-ws';
import { ConnectionCounter } from './websocket/connection-counter';
import { DIALECT_CHUNK_ROUTES, dialectOpenApiPaths, dialectRouters, mountDialects } from './dialects';

export const EMULATED_NOTICE =
  'Offline demo mode: no GEMINI_API_KEY is set, so replies come from the built-in Gemini Live emulator, not from Gemini.';

/** How long shutdown lets queued session.ended deliveries go out. */
const WEBHOOK_FLUSH_MS = 5_000;

/** Test and embedding hooks; production uses none of them. */
export interface ServerOverrides {
  logger?: Logger;
  provider?: UpstreamProvider;
  decoders?: DecoderFactory;
  resilience?: Partial<ResilienceOptions>;
  /** Folder of the built browser page (default: dist/web, see `defaultWebRoot`). */
  webRoot?: string;
  /** Log lines go here (with the configured level and redaction) instead of stdout; ignored with `logger`. */
  logDestination?: DestinationStream;
}

export interface LiveAudioServer {
  readonly config: AppConfig;
  readonly app: Express;
  readonly httpServer: http.Server;
  /** The `/ws/live-audio` WebSocket endpoint on the same server. */
  readonly liveAudioWs: LiveAudioWsEndpoint;
  readonly service: LiveAudioService;
  readonly registry: SessionRegistry;
  readonly auth: AuthService;
  readonly logger: Logger;
  /** The in-process emulator in offline demo mode. */
  readonly emulator: GeminiLiveEmulator | undefined;
  /** The development key created on this start (print it once), if any. */
  readonly devKey: DevelopmentKey | null;
  listen(port?: number, host?: string): Promise<number>;
  /** Ends every session, closes sockets and child processes. */
  close(): Promise<void>;
  /** Prometheus metrics of this server (`/metrics`). */
  readonly metrics: Metrics;
  /** Per-user audio/WebSocket and per-IP limits shared by REST and WebSocket. */
  readonly limits: Limits;
  /** ffmpeg processes alive/spawned, when the decoders are the ffmpeg factory. */
  readonly decoderCounters: DecoderProcessCounters | undefined;
  /** The ffmpeg binary the decoders run (path, where it came from, version), when they are the ffmpeg factory. */
  readonly ffmpeg: FfmpegIdentity | undefined;
  /** Cluster mode (`REDIS_URL`): this instance's membership and its sessions' records; undefined otherwise. */
  readonly cluster: { node: ClusterNode; sessions: ClusterSessions } | undefined;
  /**
   * Graceful shutdown: `/ready` answers 503 at once and new sessions 503 `SERVER_SHUTTING_DOWN`; live sessions
   * may finish for up to `ms` (default `LIVE_AUDIO_DRAIN_MS`), then the rest end with `server_shutdown`;
   * then sockets, the http server, ffmpeg children and the emulator are closed. Idempotent.
   */
  drain(ms?: number): Promise<{ endedByShutdown: number; drainedMs: number }>;
}

/** The composition root: builds every service from the typed config (one builder per part) and wires them together. */
export async function createLiveAudioServer(config: AppConfig, o: ServerOverrides = {}): Promise<LiveAudioServer> {
  const logger = o.logger ?? buildLogger(config, o.logDestination);
  const metrics = new Metrics();
  const clusterNode = buildClusterNode(config, logger);
  const auth = createAuthenticator({
    apiKeys: config.auth.apiKeys,
    apiKeysFile: config.auth.apiKeysFile,
    jwtSecret: config.auth.jwtSecret,
    log: logger,
    // Cluster mode: the keys `npm run keys` wrote to Redis count on every instance, besides env and file keys.
    ...(clusterNode ? { shared: new RedisKeyStore(clusterNode.connection), sharedCacheMs: config.cluster?.keyCacheMs } : {}),
  });
  // (In cluster mode keys live in Redis: no development key is written to this instance's key file.)
  const devKey = auth.keyStore && !clusterNode ? ensureDevelopmentKey({ store: auth.keyStore, nodeEnv: config.nodeEnv, log: logger }) : null;
  const { provider, emulator } = await buildUpstreamProvider(config, logger, o.provider);
  if (emulator) metrics.observeEmulator(emulator);
  const { decoders, ffmpeg } = await buildDecoders(config, logger, o.decoders);

  const registry = new SessionRegistry(
    {
      maxPerUser: config.sessions.maxSessionsPerUser,
      maxGlobal: config.sessions.maxConcurrentSessions,
      tombstoneMs: config.sessions.tombstoneMs,
      maxTombstones: config.sessions.tombstoneMax,
    },
    logger,
  );
  metrics.observeRegistry(registry);
  const decoderCounters = decoders.counters;
  if (decoderCounters) metrics.observeDecoders(decoderCounters);
  if (decoders.starts) metrics.observeDecoderStarts(decoders.starts);
  const { limitStore, limits } = buildLimits(config, clusterNode, metrics, logger);
  const { usage, archive, planner, transcripts } = buildConversations(config, logger, metrics, clusterNode);
  metrics.observeRetention({
    tombstones: () => registry.tombstoneCount,
    tombstoneEvictions: () => registry.tombstoneEvictions(),
    transcripts: () => transcripts.stats(),
  });
  // (The cluster's sessions need the service to adopt sessions; the service needs them as its directory.)
  const late: { service?: LiveAudioService } = {};
  const clusterSessions = clusterNode
    ? new ClusterSessions({
        node: clusterNode,
        registry,
        service: () => late.service!,
        sessionMaxAgeMs: config.sessions.maxMs,
        logger,
        archive,
        owners: new OwnerCalls(clusterNode.forwarder),
        // A hand-over a client's resume asks of a live owner opens an upstream: it costs a session start.
        chargeHandOver: sessionStartCharge(limitStore, config.limits.maxSessionCreatesPerMinute),
      })
    : undefined;
  const service = buildService(config, { registry, directory: clusterSessions, decoders, provider, planner, usage, archive, limits, metrics, logger }, o);
  late.service = service;
  clusterSessions?.on('tookOver', (e) => {
    metrics.clusterSessionsTaken.inc({ kind: e.released ? 'handover' : 'takeover' });
    metrics.clusterLostAudioSeconds.inc(e.lostMs / 1000);
  });
  clusterSessions?.on('endedFromRecord', (e) => metrics.clusterLostAudioSeconds.inc(e.lostMs / 1000));
  // Sessions nobody comes back for (owner dead or handed over, client gone) end at their deadline all the same.
  const sweeper = clusterNode
    ? new OrphanSweeper({
        records: clusterNode.records,
        membership: {
          id: clusterNode.id,
          get registered() {
            return clusterNode.registry.registered;
          },
          isAlive: (id) => clusterNode.registry.isAlive(id),
          deadPeers: () => clusterNode.registry.deadPeers().map((d) => d.id),
        },
        idleTimeoutMs: config.sessions.idleTimeoutMs,
        periodMs: config.cluster!.sweepIntervalMs,
        archive,
        logger,
      })
    : undefined;

  let ready = false;
  const app = buildHttpApp(config, {
    service,
    auth,
    limits,
    limitStore,
    metrics,
    logger,
    registry,
    clusterNode,
    clusterSessions,
    emulatedNotice: provider.emulated ? EMULATED_NOTICE : undefined,
    isReady: () => ready && !registry.isDraining,
    webRoot: o.webRoot,
    openApiPaths: dialectOpenApiPaths,
    chunkRoutes: DIALECT_CHUNK_ROUTES,
    routers: (r) =>
      dialectRouters({
        service,
        guards: [...(r.guards.beforeAuth ?? []), r.requireAuth, ...(r.guards.afterAuth ?? [])],
        startGuards: r.guards.sessionStartLimit ?? [],
        audioBody: r.json(r.bodies.transcribe),
        budget: r.budget,
        maxAudioBytes: config.audio.maxChunkBytes,
        replyWaitMs: config.dialects.replyWaitMs,
        sessionDoor: r.guards.sessionDoor,
        onRead: r.onRead,
      }),
  });
  const httpServer = buildHttpServer(config, app, metrics);
  const httpRequests = trackHttpRequests(httpServer, () => registry.isDraining);
  const clientIp = createClientIpResolver(config.limits.trustProxy);
  // One per-user connection count for every WebSocket endpoint (ours and the dialects').
  const wsConnections = new ConnectionCounter(config.ws.maxConnectionsPerUser);
  // What every WebSocket endpoint (ours and the dialects') is built from.
  const wsEndpoint = {
    connections: wsConnections,
    httpServer,
    service,
    authenticator: auth,
    logger,
    config: config.ws,
    corsOrigins: config.cors.origins,
    allowLocalhost: !config.isProduction,
    rateLimits: wsRateLimitsFrom(limits),
    // Per-IP upgrades from strangers (same client address rules as Express's req.ip); valid credentials never count.
    upgradeBudget: wsUpgradeBudgetFrom(limits, clientIp),
  };
  const liveAudioWs = attachLiveAudioWebSocket({
    ...wsEndpoint,
    onPreAuthRefusal: (reason) => metrics.rateLimited.inc({ limit: `ws_preauth_${reason}` }),
  });
  const dialects = mountDialects(wsEndpoint);

  let closeEachConnection = false;
  httpServer.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (closeEachConnection) res.setHeader('Connection', 'close');
  });
  let drainRun: Promise<{ endedByShutdown: number; drainedMs: number }> | undefined;
  const server: LiveAudioServer = {
    config,
    app,
    httpServer,
    liveAudioWs,
    service,
    registry,
    auth,
    logger,
    emulator,
    devKey,
    async listen(port = config.port, host = config.host) {
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      // Cluster mode: join once this instance can be called (waits up to 5 s for Redis; serves local sessions meanwhile).
      await clusterNode?.start();
      sweeper?.start();
      ready = true;
      return (httpServer.address() as AddressInfo).port;
    },
    async close() {
      registry.startDraining();
      await sweeper?.stop();
      registry.endAll('server_shutdown', 'Server is shutting down');
      // WebSocket clients got session_ended above; now they get close 1001 (upgraded sockets keep httpServer.close waiting).
      await Promise.all([liveAudioWs.close(), dialects.close()]);
      await new Promise<void>((resolve) => {
        if (!httpServer.listening) {
          // (A draining cluster instance stopped listening already; what is still open is closed now.)
          httpServer.closeAllConnections();
          return resolve();
        }
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
      // Ended sessions' transcripts are stored and their session.ended deliveries get a last chance (bounded).
      await archive.close(WEBHOOK_FLUSH_MS);
      await emulator?.stop();
      if (clusterNode) {
        // The sessions' records were ended (or handed over) above; then this instance leaves the registry.
        await clusterSessions!.idle(2_000);
        clusterSessions!.close();
        await clusterNode.stop();
      }
      limits.close();
      limitStore.close();
      metrics.close();
      // (Sessions ended above; the warm pool stops with the last one, and here for good, its processes gone.)
      await decoders.close?.();
    },
    metrics,
    limits,
    decoderCounters,
    ffmpeg,
    cluster: clusterNode && clusterSessions ? { node: clusterNode, sessions: clusterSessions } : undefined,
    drain(ms = config.ops.drainMs) {
      drainRun ??= (async () => {
        const t0 = Date.now();
        registry.startDraining();
        // A draining instance ends nobody's sessions (the instances that stay do).
        await sweeper?.stop();
        if (clusterSessions && clusterNode!.registry.peers().length > 0) {
          // Rolling deploy: with another instance alive, every session is handed over instead of waiting or ending.
          const handedOver = await clusterSessions.handOver(Math.min(ms, 10_000));
          if (handedOver > 0) logger.info({ handedOver }, 'draining: sessions handed over to the other instances');
          // Then the load balancer is let go without a dropped call: no new connections (it tries another instance),
          // each kept-alive one answers its last request with `Connection: close` (calls for handed-over sessions
          // are forwarded to their new owner), and idle ones are left for the balancer to close (it never re-sends
          // a POST on a connection closed under it).
          closeEachConnection = true;
          net.Server.prototype.close.call(httpServer);
          await waitForConnections(httpServer, 0, Math.min(ms, 6_000));
        }
        const live = registry.size;
        logger.info({ liveSessions: live, drainMs: ms }, 'draining: refusing new sessions, waiting for live ones to finish');
        const emptied = await waitForSessionsToEnd(registry, ms);
        const endedByShutdown = registry.endAll('server_shutdown', 'Server is shutting down');
        // Requests waiting on the ended sessions answer 503 SERVER_SHUTTING_DOWN before the sockets close.
        await waitFor(() => httpRequests.inFlight === 0, 2_000);
        await server.close();
        if (decoderCounters) await waitFor(() => decoderCounters.processesAlive === 0, 3_000);
        const drainedMs = Date.now() - t0;
        logger.info(
          { drainedMs, endedByShutdown, emptiedByThemselves: emptied, ffmpegAlive: decoderCounters?.processesAlive ?? 0 },
          'drained: all sessions ended and sockets closed',
        );
        return { endedByShutdown, drainedMs };
      })();
      return drainRun;
    },
  };
  return server;
}

/** Resolves once `server` has at most `max` open connections, or after `ms`. */
async function waitForConnections(server: http.Server, max: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const n = await new Promise<number>((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count)));
    if (n <= max) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { createApp } from './app';
import { type AppConfig, usesEmbeddedEmulator } from './config/config';
import { DEMO_RETENTION, startGeminiLiveEmulator, type GeminiLiveEmulator } from './emulator';
import { requireAuth } from './middleware/require-auth';
import { createFfmpegDecoderFactory } from './services/audio/ffmpeg-session-decoder';
import { chooseFfmpeg, type FfmpegIdentity } from './services/audio/ffmpeg-path';
import { createAuthenticator, ensureDevelopmentKey, type AuthService, type DevelopmentKey } from './services/auth';
import { LiveAudioService, type DecoderFactory } from './services/live-audio-service';
import { SessionRegistry } from './services/session/session-registry';
import { GeminiLiveProvider } from './services/upstream/gemini-live-provider';
import { ConversationArchive, MemoryTranscriptStore } from './services/conversation';
import { LiveModelTable } from './services/models/live-model-table';
import { ProfileStore } from './services/profiles/profile-store';
import { DEFAULT_SERVER_SETUP } from './services/session-setup/resolve-session-setup';
import { SessionPlanner } from './services/session-setup/session-planner';
import { MemoryUsageStore, UsageMeter, UsageMetrics } from './services/usage';
import { WebhookSender } from './services/webhook/webhook-sender';
import type { ResilienceOptions } from './services/upstream/resilient-upstream';
import type { UpstreamProvider } from './services/upstream/upstream-types';
import { createLogger, type Logger } from './util/logger';
import { createWebPageRouter, defaultWebRoot } from './routes/web-routes';
import { attachLiveAudioWebSocket, type LiveAudioWebSocket } from './websocket/attach-live-audio-ws';
import type { DestinationStream } from 'pino';
import { answerClientErrorsAsJson } from './middleware/client-error';
import { createClientIpResolver, createTrustedProxyCheck } from './middleware/client-ip';
import { routeBodySpecs } from './middleware/body-limits';
import { capOpenConnectionsPerIp } from './middleware/connection-cap';
import { createHttpLimits } from './middleware/rate-limits';
import { Metrics } from './observability/metrics';
import type { DecoderProcessCounters } from './services/audio/session-audio-decoder';
import { trackHttpRequests, waitFor, waitForSessionsToEnd } from './observability/shutdown';
import { Limits } from './services/limits/limits';
import { MemoryLimitStore, type LimitStore } from './services/limits/limit-store';
import { wsRateLimitsFrom } from './services/limits/ws-rate-limits-adapter';
import { wsUpgradeBudgetFrom } from './services/limits/ws-upgrade-budget-adapter';
import { ClusterNode } from './cluster/cluster-node';
import { ClusterSessions } from './cluster/cluster-sessions';
import { createSessionDoor } from './cluster/session-door';
import { ReconciledLimitStore } from './cluster/reconciled-limit-store';
import { isForwarded } from './cluster/cluster-guard';
import type { RequestHandler } from 'express';

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
  readonly liveAudioWs: LiveAudioWebSocket;
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

/** The composition root: builds every service from the typed config and wires them together. */
export async function createLiveAudioServer(config: AppConfig, o: ServerOverrides = {}): Promise<LiveAudioServer> {
  const logger =
    o.logger ??
    createLogger({
      ...config.log,
      secrets: [config.gemini.apiKey, config.auth.jwtSecret, config.ops.metricsToken, config.conversations.webhook?.secret, config.cluster?.secret, redisPassword(config.cluster?.redisUrl)],
      destination: o.logDestination,
    });
  const metrics = new Metrics();
  const auth = createAuthenticator({
    apiKeys: config.auth.apiKeys,
    apiKeysFile: config.auth.apiKeysFile,
    jwtSecret: config.auth.jwtSecret,
    log: logger,
  });
  const devKey = auth.keyStore ? ensureDevelopmentKey({ store: auth.keyStore, nodeEnv: config.nodeEnv, log: logger }) : null;

  let emulator: GeminiLiveEmulator | undefined;
  let provider = o.provider;
  if (!provider) {
    if (usesEmbeddedEmulator(config)) {
      // A long-running process: the emulator keeps counters only (no PCM, bounded history), and sends like a busy
      // production server (a handle and usage in the same read as setupComplete).
      emulator = await startGeminiLiveEmulator({
        host: '127.0.0.1',
        port: 0,
        retention: DEMO_RETENTION,
        timing: 'eager',
        logger: logger.child({ component: 'emulator' }),
      });
      provider = new GeminiLiveProvider({
        apiKey: 'emulator',
        baseUrl: emulator.baseUrl,
        apiVersion: config.gemini.apiVersion,
        setupTimeoutMs: config.gemini.setupTimeoutMs,
        emulated: true,
        logger,
      });
    } else {
      provider = new GeminiLiveProvider({
        apiKey: config.gemini.apiKey,
        baseUrl: config.gemini.baseUrl,
        apiVersion: config.gemini.apiVersion,
        setupTimeoutMs: config.gemini.setupTimeoutMs,
        logger,
      });
    }
  }

  if (emulator) metrics.observeEmulator(emulator);

  // The system ffmpeg (FFMPEG_PATH, then PATH) is preferred; its path and version are logged once here.
  const ffmpeg = o.decoders ? undefined : await chooseFfmpeg({ explicitPath: config.audio.ffmpegPath, logger });
  const decoders =
    o.decoders ??
    createFfmpegDecoderFactory({
      ffmpegPath: ffmpeg!.path,
      logger,
      maxChunkBytes: config.audio.maxChunkBytes,
      reorderWaitMs: config.audio.reorderWaitMs,
      reorderMaxBytes: config.audio.reorderMaxBytes,
      stallMs: config.audio.decoderStallMs,
      restartsPerMinute: config.audio.decoderRestartsPerMinute,
      poolSize: config.audio.decoderPoolSize,
      poolMaxAgeMs: config.audio.decoderPoolMaxAgeMs,
    });

  const registry = new SessionRegistry(
    { maxPerUser: config.sessions.maxPerUser, maxGlobal: config.sessions.maxGlobal, tombstoneMs: config.sessions.tombstoneMs },
    logger,
  );
  metrics.observeRegistry(registry);
  const decoderCounters = decoders.counters;
  if (decoderCounters) metrics.observeDecoders(decoderCounters);
  // Cluster mode: the node (Redis, registry, records, forwarder, guard) and the sessions' records, wired below.
  const clusterNode = config.cluster
    ? new ClusterNode(
        {
          redisUrl: config.cluster.redisUrl,
          secret: config.cluster.secret,
          instanceId: config.cluster.instanceId,
          advertiseUrl: config.cluster.advertiseUrl,
          host: config.host,
          port: config.port,
          keyPrefix: config.cluster.keyPrefix,
          commandTimeoutMs: config.cluster.commandTimeoutMs,
          downAfterMs: config.cluster.downAfterMs,
          heartbeatIntervalMs: config.cluster.heartbeatIntervalMs,
          missedHeartbeats: config.cluster.missedHeartbeats,
          forwardTimeoutMs: config.cluster.forwardTimeoutMs,
          maxForwardBodyBytes: config.http.jsonLimitBytes,
          tombstoneMs: config.sessions.tombstoneMs,
          maxSessionsPerPrincipal: config.sessions.maxPerUser,
        },
        logger.child({ component: 'cluster' }),
      )
    : undefined;
  // Every budget (HTTP request counts, WebSocket messages, audio, per-IP) counts in this one store. Cluster mode:
  // one budget across the instances, counted locally and reconciled with the shared Redis counters every 200 ms.
  const limitStore: LimitStore = clusterNode ? new ReconciledLimitStore({ shared: clusterNode.limits, logger }) : new MemoryLimitStore();
  const limits = new Limits({
    store: limitStore,
    audioSecondsPerMinute: config.limits.audioSecondsPerMinute,
    audioBytesPerMinute: config.ws.maxAudioBytesPerMinute,
    wsMessagesPerMinute: config.ws.maxMessagesPerMinute,
    unauthenticatedPerIpPerMinute: config.limits.unauthenticatedPerIpPerMinute,
    wsConnectsPerIpPerMinute: config.limits.wsConnectsPerIpPerMinute,
    onRefused: (kind) => metrics.rateLimited.inc({ limit: kind }),
  });
  // Conversations (issue 14): the model table, profiles (the old server-wide instruction and voice are the
  // `default` profile's), usage per key and day with its budget, transcripts kept after the end, the webhook.
  const models = new LiveModelTable({ defaultModel: config.gemini.defaultModel, extra: config.gemini.extraModels });
  const profiles = new ProfileStore({
    filePath: config.conversations.profilesFile,
    server: { systemInstruction: config.gemini.systemInstruction, voice: config.gemini.voiceName },
    models,
    log: logger,
  });
  const usage = new UsageMeter({
    store: new MemoryUsageStore(),
    metrics: new UsageMetrics(metrics.registry),
    budget: { serverDailyTokens: config.conversations.maxTokensPerDay },
  });
  const hook = config.conversations.webhook;
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
  const archive = new ConversationArchive({
    store: new MemoryTranscriptStore({ retentionMs: config.conversations.transcriptRetentionMs }),
    webhook,
    logger,
  });
  // (The cluster's sessions need the service to adopt sessions; the service needs them as its directory.)
  const late: { service?: LiveAudioService } = {};
  const clusterSessions = clusterNode
    ? new ClusterSessions({ node: clusterNode, registry, service: () => late.service!, sessionMaxAgeMs: config.sessions.maxAgeMs, logger })
    : undefined;
  const service = new LiveAudioService({
    directory: clusterSessions,
    registry,
    decoders,
    provider,
    planner: new SessionPlanner({
      models,
      profiles,
      serverSetup: { ...DEFAULT_SERVER_SETUP },
      usage,
      logger,
    }),
    usage,
    archive,
    logger,
    sessionMaxAgeMs: config.sessions.maxAgeMs,
    idleTimeoutMs: config.sessions.idleTimeoutMs,
    transcribeWaitMs: config.sessions.transcribeWaitMs,
    maxChunkBytes: config.audio.maxChunkBytes,
    logTranscripts: config.log.transcripts,
    resilience: {
      backlogMs: config.upstream.backlogMs,
      reconnectBudgetMs: config.upstream.reconnectBudgetMs,
      backoffBaseMs: config.upstream.backoffBaseMs,
      backoffMaxMs: config.upstream.backoffMaxMs,
      quickFailureMs: config.upstream.quickFailureMs,
      quickFailureLimit: config.upstream.quickFailureLimit,
      replayMs: config.upstream.replayMs,
      ...o.resilience,
    },
    contextWindowCompression: config.upstream.contextCompression,
    onRelayLatency: (ms) => metrics.observeRelayLatency(ms),
    // Audio seconds are charged as sessions relay decoded PCM, whatever the transport; a stream is cut at the budget.
    audioBudgetFor: (owner) => ({ take: (seconds) => limits.takeAudioSeconds(owner.id, seconds) }),
    audioSecondsPerMinute: config.limits.audioSecondsPerMinute,
    admission: limits,
    pacing: {
      realtimeFactor: config.audio.maxRealtimeFactor,
      burstMs: config.audio.pacingBurstMs,
      maxBufferedBytes: config.audio.upstreamMaxBufferedBytes,
    },
  });
  late.service = service;
  const httpLimits = createHttpLimits({
    settings: config.limits,
    store: limitStore,
    logger,
    onRefused: (kind) => metrics.rateLimited.inc({ limit: kind }),
    // Cluster mode: a key's request counts are one budget across the instances; a forwarded call counted once.
    ...(clusterNode ? { storeFor: (kind: string) => clusterNode.requestCounterStore(kind), skip: isForwarded } : {}),
  });
  const door = clusterSessions
    ? createSessionDoor({
        sessions: clusterSessions,
        registry,
        logger,
        onForward: (ms, outcome) => metrics.clusterForwardSeconds.observe({ outcome }, ms / 1000),
      })
    : undefined;
  clusterSessions?.on('tookOver', (e) => {
    metrics.clusterSessionsTaken.inc({ kind: e.released ? 'handover' : 'takeover' });
    metrics.clusterLostAudioSeconds.inc(e.lostMs / 1000);
  });

  let ready = false;
  const app = createApp({
    service,
    requireAuth: requireAuth(auth, {
      log: logger,
      // Per-IP budget before authentication: only requests that fail to authenticate count.
      onFailure: async (req) => {
        const d = limits.consume(req.ip ?? 'unknown', 'unauthenticated_ip');
        return d.ok ? undefined : d.error;
      },
    }),
    logger,
    corsOrigins: config.cors.origins,
    allowLocalhostOrigins: !config.isProduction,
    bodies: routeBodySpecs({
      maxChunkBytes: config.audio.maxChunkBytes,
      jsonLimitBytes: config.http.jsonLimitBytes,
      controlJsonLimitBytes: config.http.controlJsonLimitBytes,
    }),
    bodyBudget: { perUser: config.http.bodyBytesInFlightPerUser, total: config.http.bodyBytesInFlight },
    emulatedNotice: provider.emulated ? EMULATED_NOTICE : undefined,
    isReady: () => ready && !registry.isDraining,
    mount: (a) => a.use(createWebPageRouter({ root: o.webRoot ?? defaultWebRoot(), logger })),
    trustProxy: config.limits.trustProxy,
    metrics,
    metricsToken: config.ops.metricsToken,
    routeGuards: door ? { ...httpLimits, sessionDoor: (route) => [door(route)] } : httpLimits,
    cluster:
      clusterNode && clusterSessions
        ? {
            guard: clusterNode.guard.middleware() as unknown as RequestHandler,
            readiness: () => ({
              instanceId: clusterNode.id,
              redis: clusterNode.connection.readiness(),
              registered: clusterNode.registry.registered,
              peers: clusterNode.registry.peers().length,
            }),
            listRemote: (principalId) => clusterSessions.listFor(principalId),
          }
        : undefined,
  });
  const httpServer = http.createServer(
    {
      // Slow clients cannot hold a request open: headers and the whole request have deadlines (408).
      headersTimeout: config.http.headersTimeoutMs,
      requestTimeout: config.http.requestTimeoutMs,
      // How often Node checks those deadlines (its default, 30 s, would let them overrun by that much).
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(config.http.headersTimeoutMs / 4))),
    },
    app,
  );
  // `Expect: 100-continue` is answered by the route's body parser after authentication, not by Node up front
  // (Node's default writes "100 Continue" at once, then emits 'request').
  httpServer.on('checkContinue', (req, res) => httpServer.emit('request', req, res));
  capOpenConnectionsPerIp(httpServer, {
    maxPerIp: config.http.maxOpenConnectionsPerIp,
    exempt: createTrustedProxyCheck(config.limits.trustProxy),
    onRefused: () => metrics.rateLimited.inc({ limit: 'open_connections_ip' }),
  });
  const httpRequests = trackHttpRequests(httpServer, () => registry.isDraining);
  const clientIp = createClientIpResolver(config.limits.trustProxy);
  answerClientErrorsAsJson(httpServer);
  const liveAudioWs = attachLiveAudioWebSocket({
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
    onPreAuthRefusal: (reason) => metrics.rateLimited.inc({ limit: `ws_preauth_${reason}` }),
  });

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
      ready = true;
      return (httpServer.address() as AddressInfo).port;
    },
    async close() {
      registry.startDraining();
      registry.endAll('server_shutdown', 'Server is shutting down');
      // WebSocket clients got session_ended above; now they get close 1001 (upgraded sockets keep httpServer.close waiting).
      await liveAudioWs.close();
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

/** The password in a Redis URL (kept out of logs), if any. */
function redisPassword(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const p = decodeURIComponent(new URL(url).password);
    return p || undefined;
  } catch {
    return undefined;
  }
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

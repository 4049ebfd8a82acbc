import type { Express, RequestHandler } from 'express';
import { createApp, type AppDeps } from '../app';
import type { AppConfig } from '../config/config';
import { isForwarded } from '../cluster/cluster-guard';
import type { ClusterNode } from '../cluster/cluster-node';
import type { ClusterSessions } from '../cluster/cluster-sessions';
import { createSessionDoor } from '../cluster/session-door';
import { createOwnerCallRouter } from '../cluster/owner-calls';
import { routeBodySpecs } from '../middleware/body-limits';
import { createHttpLimits } from '../middleware/rate-limits';
import { requireAuth } from '../middleware/require-auth';
import type { Metrics } from '../observability/metrics';
import { createWebPageRouter, defaultWebRoot } from '../routes/web-routes';
import type { AuthService } from '../services/auth';
import type { LimitStore } from '../services/limits/limit-store';
import type { Limits } from '../services/limits/limits';
import type { LiveAudioService } from '../services/live-audio-service';
import type { SessionRegistry } from '../services/session/session-registry';
import type { Logger } from '../util/logger';

export interface HttpAppParts {
  service: LiveAudioService;
  auth: AuthService;
  limits: Limits;
  limitStore: LimitStore;
  metrics: Metrics;
  logger: Logger;
  registry: SessionRegistry;
  clusterNode: ClusterNode | undefined;
  clusterSessions: ClusterSessions | undefined;
  emulatedNotice: string | undefined;
  isReady: () => boolean;
  /** Folder of the built browser page (default: dist/web). */
  webRoot: string | undefined;
  /** More HTTP routes behind the same guards (the client dialects), and their OpenAPI paths. */
  routers?: AppDeps['routers'];
  openApiPaths?: AppDeps['openApiPaths'];
  chunkRoutes?: AppDeps['chunkRoutes'];
}

/** The REST door: the Express app with auth, request limits, body caps, the page and (cluster mode) forwarding. */
export function buildHttpApp(config: AppConfig, p: HttpAppParts): Express {
  const { limits, metrics, logger, clusterNode, clusterSessions } = p;
  const httpLimits = createHttpLimits({
    settings: config.limits,
    store: p.limitStore,
    logger,
    onRefused: (kind) => metrics.rateLimited.inc({ limit: kind }),
    // Cluster mode: a key's request counts are one budget across the instances (they count in the reconciled
    // limit store, `limitStore`); a forwarded call is counted once, where it arrived.
    ...(clusterNode ? { skip: isForwarded } : {}),
  });
  const door = clusterSessions
    ? createSessionDoor({
        sessions: clusterSessions,
        service: p.service,
        logger,
        onForward: (ms, outcome) => metrics.clusterForwardSeconds.observe({ outcome }, ms / 1000),
      })
    : undefined;
  return createApp({
    service: p.service,
    requireAuth: requireAuth(p.auth, {
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
      jsonLimitBytes: config.http.jsonLimit,
      controlJsonLimitBytes: config.http.controlJsonLimit,
    }),
    bodyBudget: { perUser: config.http.maxBodyBytesInFlightPerUser, total: config.http.maxBodyBytesInFlight },
    emulatedNotice: p.emulatedNotice,
    routers: p.routers,
    openApiPaths: p.openApiPaths,
    chunkRoutes: p.chunkRoutes,
    isReady: p.isReady,
    mount: (a) => a.use(createWebPageRouter({ root: p.webRoot ?? defaultWebRoot(), logger })),
    trustProxy: config.limits.trustProxy,
    metrics,
    metricsToken: config.ops.metricsToken,
    routeGuards: door ? { ...httpLimits, sessionDoor: (route, where) => [door(route, where)] } : httpLimits,
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
            // Peers' calls to the live owner of a session (hand-over on a resume elsewhere, WebSocket end/reads).
            routes: (json) => createOwnerCallRouter({ sessions: clusterSessions, service: p.service, body: json }),
          }
        : undefined,
  });
}

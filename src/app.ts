import type { ServerResponse } from 'node:http';
import express, { type Express, type RequestHandler, type Router } from 'express';
import helmet from 'helmet';
import { createLiveAudioController } from './controllers/live-audio-controller';
import { corsPolicy } from './middleware/cors-policy';
import type { TrustProxy } from './services/policy/client-ip';
import { errorHandler, notFoundHandler } from './middleware/error-handler';
import { CHUNK_ROUTE, httpLogger } from './middleware/http-logger';
import { requestId } from './middleware/request-id';
import { BodyBudget, type BodyBudgetLimits } from './middleware/body-budget';
import { jsonBody } from './middleware/body-json';
import type { BodySpec, RouteBodySpecs } from './middleware/body-limits';
import { createUnreadBodyGuard, DEFAULT_UNREAD_BODY_POLICY, type UnreadBodyPolicy } from './middleware/body-unread';
import { createLiveAudioRouter, type LiveAudioRouteGuards } from './routes/live-audio-routes';
import { createOpsRouter } from './routes/ops-routes';
import { createContractRouter } from './routes/contract-routes';
import type { Metrics } from './observability/metrics';
import type { LiveAudioService } from './services/live-audio-service';
import type { Logger } from './util/logger';

export interface AppDeps {
  service: LiveAudioService;
  requireAuth: RequestHandler;
  logger: Logger;
  corsOrigins: string[];
  allowLocalhostOrigins: boolean;
  /** Body caps per route (`routeBodySpecs`). */
  bodies: RouteBodySpecs;
  /** Request body bytes in flight per user and in total. */
  bodyBudget: BodyBudgetLimits;
  /** What happens to connections whose request body was not read (default `DEFAULT_UNREAD_BODY_POLICY`). */
  unreadBody?: UnreadBodyPolicy;
  /** Shown in `/sessions` answers while replies come from the built-in emulator. */
  emulatedNotice?: string;
  /** Readiness: false before start-up completes and while draining. */
  isReady: () => boolean;
  /**
   * More authenticated APIs (the dialects' HTTP routes, src/dialects), given our auth, route guards and body parsers;
   * mounted after the live-audio API.
   */
  routers?: (ctx: {
    requireAuth: RequestHandler;
    guards: LiveAudioRouteGuards;
    json: (spec: BodySpec) => RequestHandler;
    bodies: RouteBodySpecs;
    budget: BodyBudget;
    onRead: (res: ServerResponse) => void;
  }) => Array<{ path: string; router: Router }>;
  /** More documented routes for `/openapi.json` (the dialects' HTTP routes). */
  openApiPaths?: () => Record<string, unknown>;
  /** More POST routes carrying audio chunks (the dialects'): their successful requests are logged at debug, as `/transcribe`'s. */
  chunkRoutes?: readonly string[];
  /** Extra routers mounted before the 404 handler (health, metrics, static page). */
  mount?: (app: Express) => void;
  /** Proxies trusted to set X-Forwarded-For (`TRUST_PROXY`); default none. */
  trustProxy?: TrustProxy;
  /** Prometheus metrics: HTTP counters, `/transcribe` latency and the `/metrics` route. */
  metrics?: Metrics;
  /** Bearer token `/metrics` requires, when set. */
  metricsToken?: string;
  /** Rate limits of the live-audio router (see `createHttpLimits`). */
  routeGuards?: LiveAudioRouteGuards;
  /**
   * Cluster mode: the guard of instance-to-instance calls (runs first: a request claiming to come from a peer
   * without the right secret is refused with 403 before anything else), and what `/ready` reports about Redis.
   */
  cluster?: {
    guard: RequestHandler;
    readiness: () => Record<string, unknown>;
    /** The caller's sessions on other instances, for `GET /sessions`. */
    listRemote: (principalId: string) => Promise<Array<{ sessionId: string } & Record<string, unknown>>>;
    /** Internal routes only peers may call (given the control routes' JSON body parser). */
    routes?: (controlBody: RequestHandler) => Router;
  };
}

/**
 * Builds the Express application (no listening, no side effects): tests run it in-process.
 * No body is read before its route has authenticated the caller: there is no global body parser; each route
 * parses its own body with its own caps (`jsonBody`), and bodies nobody read do not keep connections busy.
 */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag computed (a SHA-1 of the body) for every API answer: nothing revalidates them, and it was 0.5 % of the
  // main thread under REST load (/transcribe). The web page sets its own (src/routes/web-routes.ts).
  app.set('etag', false);
  app.set('trust proxy', deps.trustProxy ?? false);
  const unread = createUnreadBodyGuard(deps.unreadBody ?? DEFAULT_UNREAD_BODY_POLICY);
  app.use(unread.middleware);
  if (deps.cluster) app.use(deps.cluster.guard);
  app.use(requestId);
  if (deps.metrics) app.use(deps.metrics.httpMiddleware());
  app.use(httpLogger(deps.logger, { chunkRoutes: [CHUNK_ROUTE, ...(deps.chunkRoutes ?? [])] }));
  app.use(helmet());
  app.use(corsPolicy({ origins: deps.corsOrigins, allowLocalhost: deps.allowLocalhostOrigins }));

  app.get('/health', (_req, res) => {
    res.json({ success: true, status: 'ok', uptimeSec: Math.round(process.uptime()) });
  });
  app.get('/ready', (_req, res) => {
    const cluster = deps.cluster ? { cluster: deps.cluster.readiness() } : {};
    if (deps.isReady()) res.json({ success: true, status: 'ready', ...cluster });
    else res.status(503).json({ success: false, error: 'Server is not ready', code: 'NOT_READY', ...cluster });
  });

  app.use(createContractRouter({ openApiPaths: deps.openApiPaths }));

  const controller = createLiveAudioController({ service: deps.service, emulatedNotice: deps.emulatedNotice, listRemote: deps.cluster?.listRemote });
  const budget = new BodyBudget(deps.bodyBudget);
  const parserDeps = { budget, onRead: unread.markRead };
  if (deps.cluster?.routes) app.use(deps.cluster.routes(jsonBody(deps.bodies.control, parserDeps)));
  app.use(
    '/api/v1/live-audio',
    createLiveAudioRouter(controller, deps.requireAuth, deps.routeGuards ?? {}, {
      transcribe: jsonBody(deps.bodies.transcribe, parserDeps),
      control: jsonBody(deps.bodies.control, parserDeps),
    }),
  );
  for (const { path, router } of deps.routers?.({
    requireAuth: deps.requireAuth,
    guards: deps.routeGuards ?? {},
    json: (spec) => jsonBody(spec, parserDeps),
    bodies: deps.bodies,
    budget,
    onRead: unread.markRead,
  }) ?? []) {
    app.use(path, router);
  }
  if (deps.metrics) app.use(createOpsRouter({ metrics: deps.metrics, metricsToken: deps.metricsToken }));
  deps.mount?.(app);
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return app;
}

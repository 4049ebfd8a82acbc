import http from 'node:http';
import type { Express } from 'express';
import type { AppConfig } from '../config/config';
import { answerClientErrorsAsJson } from '../middleware/client-error';
import { capOpenConnectionsPerIp } from '../services/policy/connection-cap';
import type { Metrics } from '../observability/metrics';
import { createTrustedProxyCheck } from '../services/policy/client-ip';

/** The Node HTTP server around the app: request deadlines, the per-address connection cap, JSON client errors. */
export function buildHttpServer(config: AppConfig, app: Express, metrics: Metrics): http.Server {
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
  answerClientErrorsAsJson(httpServer);
  return httpServer;
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { Router } from 'express';
import type { Metrics } from '../observability/metrics';

export interface OpsRoutesOptions {
  metrics: Metrics;
  /** When set, `/metrics` requires `Authorization: Bearer <token>`. */
  metricsToken?: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** `GET /metrics`: Prometheus text (liveness and readiness live in app.ts). */
export function createOpsRouter(o: OpsRoutesOptions): Router {
  const r = Router();
  const expected = o.metricsToken ? digest(o.metricsToken) : undefined;
  r.get('/metrics', async (req, res) => {
    if (expected) {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      if (!m || !timingSafeEqual(digest(m[1]), expected)) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
        res.status(401).json({ success: false, error: 'Metrics require a valid bearer token', code: 'METRICS_AUTH_REQUIRED' });
        return;
      }
    }
    const body = await o.metrics.text();
    res.setHeader('Content-Type', o.metrics.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.send(body);
  });
  return r;
}

import { Router } from 'express';
import { buildOpenApiDocument, buildWsSchemaDocument } from '../contracts/published';

export const OPENAPI_PATH = '/openapi.json';
export const WS_SCHEMA_PATH = '/schemas/ws.json';

/** The published contract: `GET /openapi.json` (REST, OpenAPI 3.1) and `GET /schemas/ws.json` (WebSocket messages). */
export function createContractRouter(extra: { openApiPaths?: () => Record<string, unknown> } = {}): Router {
  const r = Router();
  // Built once, on the first request (nothing happens at import time).
  let openapi: string | undefined;
  let ws: string | undefined;
  r.get(OPENAPI_PATH, (_req, res) => {
    openapi ??= JSON.stringify(buildOpenApiDocument(extra.openApiPaths?.()));
    res.type('application/json').send(openapi);
  });
  r.get(WS_SCHEMA_PATH, (_req, res) => {
    ws ??= JSON.stringify(buildWsSchemaDocument());
    res.type('application/schema+json').send(ws);
  });
  return r;
}

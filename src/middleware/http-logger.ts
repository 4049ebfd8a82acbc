import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../util/logger';
import { redactText } from '../util/logger';

/** Request headers that may appear in logs; everything else (credentials, cookies) never does. */
export const LOGGED_HEADERS = ['user-agent', 'content-type', 'content-length', 'origin', 'x-request-id'] as const;

interface SerializedReq {
  id?: unknown;
  method?: string;
  url?: string;
  headers?: Record<string, unknown>;
  remoteAddress?: string;
}

/** Longest URL an access-log line carries (a request line may be 16 KiB of anything); longer ones are cut. */
export const MAX_LOGGED_URL = 1024;

/** Serializer of the request in access logs: redacted URL (cut at `MAX_LOGGED_URL`), allowlisted headers. */
export function serializeRequest(req: SerializedReq): Record<string, unknown> {
  const headers: Record<string, unknown> = {};
  for (const h of LOGGED_HEADERS) if (req.headers?.[h] !== undefined) headers[h] = req.headers[h];
  // Redacted before it is cut, so a credential cannot be split into a fragment the patterns miss.
  const url = redactText(String(req.url ?? ''));
  return {
    id: req.id,
    method: req.method,
    url: url.length > MAX_LOGGED_URL ? `${url.slice(0, MAX_LOGGED_URL)}…[${url.length - MAX_LOGGED_URL} more]` : url,
    headers,
    remoteAddress: req.remoteAddress,
  };
}

const QUIET = new Set(['/health', '/ready', '/metrics']);

/**
 * One JSON access-log line per request (pino-http): the request id from `requestId` (so the line, the
 * `X-Request-Id` header and every `req.log` line agree), the principal once authenticated, status and time.
 * Probes and scrapes are logged at debug only.
 */
export function httpLogger(logger: Logger): RequestHandler {
  const mw = pinoHttp({
    logger,
    genReqId: (req: IncomingMessage) => (req as IncomingMessage & { id?: string }).id ?? 'unknown',
    wrapSerializers: true,
    serializers: {
      req: serializeRequest,
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
    customProps: (req: IncomingMessage) => {
      const p = (req as IncomingMessage & { principal?: { id: string } }).principal;
      return p ? { principal: p.id } : {};
    },
    customLogLevel: (req: IncomingMessage, res: ServerResponse, err?: Error) => {
      if (err || res.statusCode >= 500) return 'error';
      if (QUIET.has((req.url ?? '').split('?')[0])) return 'debug';
      return 'info';
    },
    quietReqLogger: true,
  });
  return mw as unknown as RequestHandler;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
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

/** Probes and scrapes: logged at debug only. */
const QUIET = new Set(['/health', '/ready', '/metrics']);

/** The audio chunk POST of the live-audio API (the frontend posts one per second per session). */
export const CHUNK_ROUTE = '/api/v1/live-audio/transcribe';

export interface HttpLoggerOptions {
  /**
   * POST routes that carry audio chunks: a successful one (status < 400) is logged at debug, not info (one line per
   * second per session says nothing the session's own lines do not). Their refusals and failures are logged as
   * any other request's. Default: `CHUNK_ROUTE`.
   */
  chunkRoutes?: readonly string[];
}

type Level = 'debug' | 'info' | 'error';

/** The level of a request's access line: failures at error, probes and successful chunk posts at debug, else info. */
export function accessLogLevel(req: Pick<IncomingMessage, 'method' | 'url'>, status: number, chunkRoutes: ReadonlySet<string>): Level {
  if (status >= 500) return 'error';
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (QUIET.has(path)) return 'debug';
  if (status < 400 && req.method === 'POST' && chunkRoutes.has(path)) return 'debug';
  return 'info';
}

type LoggedRequest = IncomingMessage & { id?: string; originalUrl?: string; principal?: { id: string } };

/**
 * One JSON access-log line per request, written when the response is done (or the connection closed before it
 * was): the request id from `requestId` (so the line and the `X-Request-Id` header agree), the principal once
 * authenticated, the redacted request, the status and the time. Nothing is built for a line whose level is off: a
 * request whose line is not written costs one listener and a level check (pino-http built two child loggers and
 * serialized the request for every request, written or not: ~6 % of the main thread under REST load).
 */
export function httpLogger(logger: Logger, opts: HttpLoggerOptions = {}): RequestHandler {
  const chunkRoutes: ReadonlySet<string> = new Set(opts.chunkRoutes ?? [CHUNK_ROUTE]);
  return (req, res, next) => {
    const start = Date.now();
    res.once('close', () => logAccess(logger, req as LoggedRequest, res, start, chunkRoutes));
    next();
  };
}

function logAccess(logger: Logger, req: LoggedRequest, res: ServerResponse, start: number, chunkRoutes: ReadonlySet<string>): void {
  const finished = res.writableFinished;
  // A connection closed before the answer was sent is a failure of that request, whatever status was set.
  const level: Level = finished ? accessLogLevel({ method: req.method, url: req.originalUrl ?? req.url }, res.statusCode, chunkRoutes) : 'info';
  if (!logger.isLevelEnabled(level)) return;
  const line: Record<string, unknown> = {
    reqId: req.id,
    req: serializeRequest({ id: req.id, method: req.method, url: req.originalUrl ?? req.url, headers: req.headers, remoteAddress: req.socket?.remoteAddress }),
    res: { statusCode: res.statusCode },
    responseTime: Date.now() - start,
  };
  if (req.principal) line.principal = req.principal.id;
  if (!finished) {
    line.aborted = true;
    logger[level](line, 'request aborted before its answer was sent');
  } else if (res.statusCode >= 500) {
    logger[level](line, 'request errored');
  } else {
    logger[level](line, 'request completed');
  }
}

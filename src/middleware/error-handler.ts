import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isAppError } from '../util/app-error';
import { redactText, type Logger } from '../util/logger';

interface BodyParserError {
  type?: string;
  status?: number;
  statusCode?: number;
  expose?: boolean;
  limit?: number;
}

/** Longest part of a client's path echoed in a 404 (a URL may be 16 KiB of anything). */
export const MAX_ECHOED_PATH = 200;

/** 404 for unknown routes, in the common error shape. */
export const notFoundHandler: RequestHandler = (req, res) => {
  const p = req.path.length > MAX_ECHOED_PATH ? `${req.path.slice(0, MAX_ECHOED_PATH)}…` : req.path;
  res.status(404).json({ success: false, error: `Not found: ${req.method} ${p}`, code: 'NOT_FOUND' });
};

/**
 * The one error shape everywhere: `{ success:false, error, code }` (+ `retryAfter` and a `Retry-After`
 * header on 429/503). Unknown errors become a generic 500 with no internal message or stack.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (isAppError(err)) {
      // AppError messages are written for clients; redaction is a safety net against echoed credentials.
      const body: Record<string, unknown> = { success: false, error: redactText(err.message), code: err.code };
      if (err.extra.fields) body.fields = err.extra.fields;
      if (err.extra.retryAfterSec !== undefined) {
        body.retryAfter = err.extra.retryAfterSec;
        res.setHeader('Retry-After', String(err.extra.retryAfterSec));
      }
      if (err.status >= 500) log.warn({ code: err.code, path: req.path }, err.message);
      res.status(err.status).json(body);
      return;
    }
    const e = (err ?? {}) as BodyParserError;
    switch (e.type) {
      case 'entity.too.large':
        res.status(413).json({ success: false, error: 'Request body too large', code: 'PAYLOAD_TOO_LARGE' });
        return;
      case 'entity.parse.failed':
        res.status(400).json({ success: false, error: 'Malformed JSON in request body', code: 'INVALID_JSON' });
        return;
      case 'encoding.unsupported':
      case 'charset.unsupported':
        res.status(415).json({ success: false, error: 'Unsupported request body encoding', code: 'UNSUPPORTED_ENCODING' });
        return;
      case 'request.aborted':
        res.status(400).json({ success: false, error: 'Request aborted', code: 'REQUEST_ABORTED' });
        return;
      default:
        break;
    }
    const status = e.status ?? e.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      res.status(status).json({ success: false, error: 'Bad request', code: 'BAD_REQUEST' });
      return;
    }
    log.error({ err, path: req.path }, 'unhandled error');
    res.status(500).json({ success: false, error: 'Internal server error', code: 'INTERNAL_ERROR' });
  };
}

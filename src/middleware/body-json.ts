import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { AppError } from '../util/app-error';
import type { BodyBudget } from './body-budget';
import { JsonShapeScanner } from './body-json-shape';
import { declaredBodyLength, readBody } from './body-reader';
import type { BodySpec } from './body-limits';

export const JsonBodyErrors = {
  malformed: () => new AppError(400, 'INVALID_JSON', 'Malformed JSON in request body'),
  tooDeep: (maxDepth: number) => new AppError(400, 'JSON_TOO_DEEP', `JSON nesting too deep (at most ${maxDepth} levels)`),
  tooComplex: (maxElements: number) =>
    new AppError(400, 'JSON_TOO_COMPLEX', `JSON body has too many values (at most ${maxElements})`),
  unsupportedEncoding: () => new AppError(415, 'UNSUPPORTED_ENCODING', 'Unsupported request body encoding'),
} as const;

export interface JsonBodyDeps {
  /** Body bytes in flight per user and in total. */
  budget: BodyBudget;
  /** Called once the whole body was read (the connection may stay alive). */
  onRead?: (res: ServerResponse) => void;
}

const isJson = (contentType: string | undefined): boolean =>
  (contentType ?? '').split(';', 1)[0].trim().toLowerCase() === 'application/json';

/** `charset` of a Content-Type, lowercased; undefined when absent. */
function charsetOf(contentType: string): string | undefined {
  for (const part of contentType.split(';').slice(1)) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim().toLowerCase() === 'charset') {
      return part.slice(eq + 1).trim().replace(/^"|"$/g, '').toLowerCase();
    }
  }
  return undefined;
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Parses a JSON request body for one route, after authentication: `application/json` only (other bodies are
 * left unread and `req.body` undefined, as before), UTF-8 only, no content encodings (415), at most
 * `spec.maxBytes` (413, refused from `Content-Length` before reading), and — checked by a linear scan as the bytes
 * arrive, before `JSON.parse` — at most `spec.maxDepth` levels and `spec.maxElements` values (400). Objects and arrays only at
 * the top (400 `INVALID_JSON` otherwise); an empty body is `{}`. The bytes are reserved in the body budget
 * until the response is done.
 */
export function jsonBody(spec: BodySpec, deps: JsonBodyDeps): RequestHandler {
  return async (req, res, next) => {
    const declared = declaredBodyLength(req);
    const contentType = req.headers['content-type'];
    if (declared === null || !isJson(contentType)) return next();
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    const charset = charsetOf(contentType!);
    if (encoding !== 'identity' || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
      return next(JsonBodyErrors.unsupportedEncoding());
    }
    if (declared !== undefined && declared > spec.maxBytes) return next(new AppError(413, 'PAYLOAD_TOO_LARGE', 'Request body too large'));

    const reservation = deps.budget.reserve(req.principal?.id ?? `ip:${req.ip ?? 'unknown'}`, declared ?? spec.maxBytes);
    if (reservation instanceof AppError) return next(reservation);
    res.once('close', () => reservation.release());

    // The client may wait for this before sending the body (Expect: 100-continue): only now, after the checks.
    if (String(req.headers.expect ?? '').toLowerCase() === '100-continue' && !res.headersSent) res.writeContinue();

    // Depth and values are checked as the bytes arrive: a hostile body is refused at its first bad byte.
    const scanner = new JsonShapeScanner(spec);
    let bytes: Buffer;
    try {
      bytes = await readBody(req, spec.maxBytes, (chunk) => {
        const shape = scanner.feed(chunk);
        if (shape.ok) return undefined;
        return shape.reason === 'depth' ? JsonBodyErrors.tooDeep(spec.maxDepth) : JsonBodyErrors.tooComplex(spec.maxElements);
      });
    } catch (err) {
      return next(err);
    }
    deps.onRead?.(res);

    let start = 0;
    if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3; // UTF-8 BOM
    while (start < bytes.length && WHITESPACE.has(bytes[start])) start++;
    if (start === bytes.length) {
      req.body = {};
      return next();
    }
    if (bytes[start] !== 0x7b && bytes[start] !== 0x5b) return next(JsonBodyErrors.malformed());
    try {
      req.body = JSON.parse(bytes.toString('utf8', start)) as unknown;
    } catch {
      return next(JsonBodyErrors.malformed());
    }
    next();
  };
}

import type { IncomingMessage } from 'node:http';
import { AppError } from '../util/app-error';

/**
 * The body a request announces: `null` when it has none, `undefined` when its length is unknown (chunked),
 * else the `Content-Length`.
 */
export function declaredBodyLength(req: IncomingMessage): number | null | undefined {
  if (req.headers['transfer-encoding'] !== undefined) return undefined;
  const raw = req.headers['content-length'];
  if (raw === undefined) return null;
  const n = Number(raw);
  // Node's parser already refused malformed lengths; 0 is no body.
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

export const BodyErrors = {
  tooLarge: () => new AppError(413, 'PAYLOAD_TOO_LARGE', 'Request body too large'),
  aborted: () => new AppError(400, 'REQUEST_ABORTED', 'Request aborted'),
} as const;

/**
 * Reads the whole body into one buffer, refusing (413) as soon as it is known to pass `maxBytes`: up front from
 * `Content-Length`, or while a chunked body arrives. `inspect` sees every chunk as it arrives and may refuse the
 * body by returning an error. A refusal stops reading at once (the caller's response closes the connection);
 * a client that goes away mid-body rejects with 400 `REQUEST_ABORTED`.
 */
export function readBody(req: IncomingMessage, maxBytes: number, inspect?: (chunk: Buffer) => AppError | undefined): Promise<Buffer> {
  const declared = declaredBodyLength(req);
  if (declared !== null && declared !== undefined && declared > maxBytes) return Promise.reject(BodyErrors.tooLarge());
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (err: AppError | null) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
      if (err) {
        chunks.length = 0;
        reject(err);
      } else {
        resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.pause();
        settle(BodyErrors.tooLarge());
        return;
      }
      const refused = inspect?.(chunk);
      if (refused) {
        req.pause();
        settle(refused);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => settle(null);
    const onClose = () => settle(BodyErrors.aborted());
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
    req.once('error', onClose);
  });
}

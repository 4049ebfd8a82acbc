import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestHandler } from 'express';
import { declaredBodyLength } from './body-reader';

export interface UnreadBodyPolicy {
  /**
   * A body up to this size that was not read (a 401, a 404, a refusal) is drained so the keep-alive connection
   * can carry the next request; a larger or chunked one is never read: the answer says `Connection: close`.
   */
  drainBytes: number;
  /**
   * After such an answer the connection is kept this long at most (the FIN is sent at once, so the client reads
   * the answer instead of a reset), then destroyed, whatever the client still sends.
   */
  lingerMs: number;
}

export const DEFAULT_UNREAD_BODY_POLICY: UnreadBodyPolicy = { drainBytes: 64 * 1024, lingerMs: 500 };

export interface UnreadBodyGuard {
  /** Mounted first: decides, per request with a body, how the connection ends if the body is not read. */
  readonly middleware: RequestHandler;
  /** Called by a body parser once it has read the whole body: the connection may be kept alive again. */
  markRead(res: ServerResponse): void;
}

/**
 * Answers to requests whose body nobody read (strangers refused on their headers, unknown routes, limits) must
 * not keep the connection busy receiving that body. Large or chunked bodies are answered with
 * `Connection: close` unless a parser read them; once such an answer is sent, the connection is half-closed at
 * once and destroyed after `lingerMs`. Small bodies are drained (bounded by the same `lingerMs`) so honest
 * clients keep their connection.
 */
export function createUnreadBodyGuard(policy: UnreadBodyPolicy = DEFAULT_UNREAD_BODY_POLICY): UnreadBodyGuard {
  const closeUnlessRead = new WeakSet<ServerResponse>();

  const settleAfterAnswer = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket as Socket | null;
    if (!socket || socket.destroyed || req.complete) return;
    const closing = res.getHeader('connection') === 'close' || !res.shouldKeepAlive;
    if (closing) {
      // Node ended the socket (FIN sent) and would destroy it as soon as the write side finishes, which resets
      // the connection while the client is still sending: it may then lose the answer. Keep it for `lingerMs`
      // instead (like Go's and nginx's lingering close), but stop reading from it: the rest of the body stays in
      // the client's send buffer and costs us nothing. (Node's HTTP parser reads the socket's handle directly,
      // so `socket.pause()` would not stop it.)
      socket.removeListener('finish', socket.destroy);
      // After the ticks in which Node's `req._dump()` restarts reading (to discard the body; it resumes the
      // request, which resumes the socket, each a tick later).
      setImmediate(() => (socket as Socket & { _handle?: { readStop?: () => number } | null })._handle?.readStop?.());
    }
    const timer = setTimeout(() => {
      if (closing || !req.complete) socket.destroy();
    }, policy.lingerMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    if (closing) socket.once('end', () => socket.destroy());
  };

  return {
    middleware: (req, res, next) => {
      const declared = declaredBodyLength(req);
      if (declared === null) return next();
      if (declared === undefined || declared > policy.drainBytes) {
        res.setHeader('Connection', 'close');
        closeUnlessRead.add(res);
      }
      res.once('finish', () => settleAfterAnswer(req, res));
      next();
    },
    markRead(res) {
      if (closeUnlessRead.delete(res) && !res.headersSent) res.removeHeader('Connection');
    },
  };
}

import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** How long a connection refused by the parser may linger after its answer (so the client reads it) before it is destroyed. */
export const CLIENT_ERROR_LINGER_MS = 500;

/**
 * Requests Node's HTTP parser refuses before Express sees them (headers over 16 KiB, malformed request
 * lines, header and request timeouts) get the common JSON error shape too, instead of an empty body; the
 * connection is then closed (at the latest after `CLIENT_ERROR_LINGER_MS`), whatever the client still sends.
 */
export function answerClientErrorsAsJson(server: Server, lingerMs = CLIENT_ERROR_LINGER_MS): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Node keeps the response being written on the socket (`_httpMessage`): never write a second status line into it.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, code, error] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', 'Request headers too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'REQUEST_TIMEOUT', 'Request timeout']
          : [400, 'BAD_REQUEST', 'Bad request'];
    const body = JSON.stringify({ success: false, error, code });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), lingerMs).unref();
  });
}

import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionCapOptions {
  /** Open connections (HTTP keep-alive and WebSocket alike) allowed per client address; 0 = no cap. */
  maxPerIp: number;
  /** Addresses never capped (trusted proxies). */
  exempt?: (address: string) => boolean;
  /** How long a refused connection may linger after its 429 before it is destroyed. */
  lingerMs?: number;
  onRefused?: (address: string) => void;
}

export interface ConnectionCap {
  /** Open connections of `address` (as counted). */
  openFor(address: string): number;
}

const RETRY_AFTER_SEC = 1;
const BODY = JSON.stringify({
  success: false,
  error: 'Too many open connections from this address',
  code: 'TOO_MANY_CONNECTIONS',
  retryAfter: RETRY_AFTER_SEC,
});
const REFUSAL =
  'HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\n' +
  `Retry-After: ${RETRY_AFTER_SEC}\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\nConnection: close\r\n\r\n${BODY}`;

/** `::ffff:1.2.3.4` and `1.2.3.4` are one client. */
const normalize = (address: string): string => (address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address);

/**
 * Caps the TCP connections one client address holds open on `server`. A connection over the cap never reaches
 * the HTTP parser: it gets a fixed 429 in the common JSON shape and is closed. Installed by taking over the
 * server's `connection` listeners (Node's HTTP connection handler among them) and calling them only for
 * admitted sockets.
 */
export function capOpenConnectionsPerIp(server: Server, o: ConnectionCapOptions): ConnectionCap {
  const open = new Map<string, number>();
  const openFor = (address: string) => open.get(normalize(address)) ?? 0;
  if (!(o.maxPerIp > 0)) return { openFor };
  const handlers = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const admit = (socket: Socket) => {
    for (const h of handlers) h.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    const raw = socket.remoteAddress;
    if (!raw) return admit(socket);
    const address = normalize(raw);
    if (o.exempt?.(address)) return admit(socket);
    const n = open.get(address) ?? 0;
    if (n >= o.maxPerIp) {
      o.onRefused?.(address);
      socket.on('error', () => undefined);
      socket.end(REFUSAL);
      setTimeout(() => socket.destroy(), o.lingerMs ?? 500).unref();
      return;
    }
    open.set(address, n + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
    admit(socket);
  });
  return { openFor };
}

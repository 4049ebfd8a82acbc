import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Handles one upgrade request whose path it claimed. It owns the socket from then on (answer or destroy it).
 */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => void;

interface Route {
  path: string;
  handler: UpgradeHandler;
}

/**
 * Routes the http server's `upgrade` requests by exact pathname (a query string is allowed), so several
 * WebSocket endpoints can share one server. A request no route claims is answered 404 — but only when this
 * router is the server's sole `upgrade` listener; otherwise it is left to the other listeners.
 */
export class UpgradeRouter {
  private readonly routes: Route[] = [];
  private readonly listener = (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head);

  constructor(private readonly server: Server) {
    server.on('upgrade', this.listener);
  }

  /** Adds a route; returns a function removing it. */
  add(path: string, handler: UpgradeHandler): () => void {
    if (this.routes.some((r) => r.path === path)) throw new Error(`upgrade route ${path} is already taken`);
    const route = { path, handler };
    this.routes.push(route);
    return () => {
      const i = this.routes.indexOf(route);
      if (i >= 0) this.routes.splice(i, 1);
    };
  }

  /**
   * Adds a route whose handler is async: when it fails, `onCrash` hears why and the client gets a 500 (if its socket
   * is still open). Returns a function removing the route.
   */
  addAsync(path: string, handler: (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => Promise<void>, onCrash: (err: unknown) => void): () => void {
    return this.add(path, (req, socket, head, url) => {
      handler(req, socket, head, url).catch((err: unknown) => {
        onCrash(err);
        if (!socket.destroyed) rejectUpgrade(socket, 500, { success: false, error: 'Internal server error', code: 'INTERNAL_ERROR' });
      });
    });
  }

  get size(): number {
    return this.routes.length;
  }

  /** Stops listening (the server keeps any other `upgrade` listeners). */
  detach(): void {
    this.server.off('upgrade', this.listener);
    routers.delete(this.server);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://upgrade.invalid');
    } catch {
      if (this.server.listenerCount('upgrade') === 1) rejectUpgrade(socket, 400, { success: false, error: 'Bad request', code: 'BAD_REQUEST' });
      return;
    }
    const route = this.routes.find((r) => r.path === url.pathname);
    if (route) {
      route.handler(req, socket, head, url);
      return;
    }
    if (this.server.listenerCount('upgrade') === 1) {
      rejectUpgrade(socket, 404, { success: false, error: `Not found: ${url.pathname}`, code: 'NOT_FOUND' });
    }
  }
}

const routers = new WeakMap<Server, UpgradeRouter>();

/** The server's upgrade router (created on first use), shared by every WebSocket endpoint on it. */
export function upgradeRouterFor(server: Server): UpgradeRouter {
  let r = routers.get(server);
  if (!r) {
    r = new UpgradeRouter(server);
    routers.set(server, r);
  }
  return r;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answers an upgrade request with a plain HTTP error and a JSON body (the REST error shape), then closes. */
export function rejectUpgrade(socket: Duplex, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const json = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(json)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.once('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`);
}

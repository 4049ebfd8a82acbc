import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { makeOriginCheck } from '../services/policy/origin-policy';
import type { Principal } from '../services/auth/principal';
import type { LiveAudioService } from '../services/live-audio-service';
import type { LiveSession } from '../services/session/live-session';
import { AppError } from '../util/app-error';
import type { Logger } from '../util/logger';
import { redactText, redactUrl } from '../util/logger';
import type { ConnectionCounter } from '../websocket/connection-counter';
import { Heartbeat } from '../websocket/heartbeat';
import { InboundQueue } from '../websocket/inbound-queue';
import { jsonNestingExceeds } from '../websocket/json-depth';
import { CloseCodes } from '../websocket/server-messages';
import { SocketSender, type MessageClass } from '../websocket/socket-sender';
import { rejectUpgrade, upgradeRouterFor } from '../websocket/upgrade-router';
import { upgradeCredential, verifyCredential } from '../websocket/ws-auth';
import type { WsEndpointDeps } from '../websocket/attach-live-audio-ws';

/**
 * What every dialect's WebSocket shares with ours (README "Dialects"): the server's upgrade router, credentials on
 * the upgrade (`?token=` API key or JWT, `X-API-Key`, `Authorization: Bearer`; a dialect has no auth message, so an
 * upgrade without credentials is refused 401), the origin allowlist, the per-address budget of failed upgrades, the
 * per-user connection cap (one counter with `/ws/live-audio`), the per-user message budget, `maxPayload`, JSON
 * nesting depth, outbound backpressure, heartbeat, inactivity timeout, and in-order handling with inbound flow
 * control. The dialect module only maps messages onto the session door.
 */

/** No dialect message nests deeper than this. */
export const DIALECT_MAX_DEPTH = 8;

export interface DialectDeps extends WsEndpointDeps {
  /** Shared with `/ws/live-audio`: a dialect connection is an ordinary connection. */
  connections: ConnectionCounter;
}

/** One authenticated dialect connection, as its dialect sees it. */
export interface DialectConnection {
  readonly principal: Principal;
  readonly service: LiveAudioService;
  readonly log: Logger;
  /** Sends one JSON message; `droppable` ones (reply audio) are dropped while the client does not read. */
  send(message: object | (() => object), cls?: MessageClass, payloadBytes?: number): void;
  close(code: number, reason: string): void;
  /** The connection's session: ended (`socket_closed`) when the socket closes, unless released before. */
  hold(session: LiveSession): void;
  release(session: LiveSession): void;
  /** Runs work after the handler returned (audio to the decoder) and counts it as inbound load. */
  track(start: () => Promise<unknown>): void;
}

/** A frame as the dialect receives it: parsed JSON (depth-checked), a text frame that is not JSON, or binary that is not JSON. */
export type DialectFrame = { kind: 'json'; value: unknown } | { kind: 'text'; text: string } | { kind: 'binary'; data: Buffer };

/** A refusal the dialect turns into its own error message. */
export interface FrameProblem {
  code: 'INVALID_JSON' | 'INVALID_MESSAGE' | 'MESSAGE_RATE_LIMITED';
  message: string;
  retryAfterSec?: number;
}

export interface DialectHandler {
  onFrame(frame: DialectFrame): Promise<void> | void;
  /** A frame refused before the dialect saw it (rate, depth, bad JSON in a text frame). */
  onProblem(problem: FrameProblem): void;
  /** A handler threw: an AppError (client problem) or anything else (internal). */
  onError(err: unknown): void;
  onClose?(): void;
}

export interface DialectEndpoint {
  readonly path: string;
  readonly connections: number;
  close(graceMs?: number): Promise<void>;
}

/** Mounts one dialect's WebSocket path; `create` makes the handler of each authenticated connection. */
export function mountDialectSocket(d: DialectDeps, path: string, create: (conn: DialectConnection) => DialectHandler): DialectEndpoint {
  const log = d.logger.child({ component: 'dialect', path });
  const cfg = d.config;
  const wss = new WebSocketServer({ noServer: true, maxPayload: cfg.maxPayloadBytes, perMessageDeflate: false, clientTracking: false });
  const originAllowed = makeOriginCheck({ origins: d.corsOrigins, allowLocalhost: d.allowLocalhost });
  const open = new Set<{ ws: WebSocket; end(): void }>();
  let closing = false;

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => {
    socket.on('error', () => undefined);
    if (closing) return rejectUpgrade(socket, 503, { success: false, error: 'Server is shutting down; try again shortly', code: 'SERVER_SHUTTING_DOWN' });
    const cred = upgradeCredential(req, url);
    const outcome = cred ? await verifyCredential(d.authenticator, cred.credential) : undefined;
    if (socket.destroyed) return;
    if (!outcome?.ok) {
      const limited = d.upgradeBudget?.take(req);
      if (limited) {
        const body = { success: false, error: limited.message, code: limited.code, retryAfter: limited.retryAfterSec };
        return rejectUpgrade(socket, limited.status, body, { 'Retry-After': String(limited.retryAfterSec) });
      }
      const err = outcome && !outcome.ok ? outcome.error : new AppError(401, 'AUTH_REQUIRED', 'Authentication required: ?token=<API key or JWT>, X-API-Key or Authorization: Bearer');
      log.info({ code: err.code }, 'dialect websocket refused: credentials');
      return rejectUpgrade(socket, 401, { success: false, error: err.message, code: err.code });
    }
    const origin = req.headers.origin;
    if (origin && !originAllowed(origin, req.headers.host)) {
      return rejectUpgrade(socket, 403, { success: false, error: 'Origin not allowed', code: 'CORS_ORIGIN_DENIED' });
    }
    const principal = outcome.principal;
    if (!d.connections.tryAcquire(principal.id)) {
      const max = d.connections.limit;
      return rejectUpgrade(socket, 429, { success: false, error: `Maximum ${max} connections per user exceeded`, code: 'CONNECTION_LIMIT' });
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, principal, redactUrl(req.url ?? '')));
  };

  const accept = (ws: WebSocket, principal: Principal, shownUrl: string) => {
    const clog = log.child({ owner: principal.id });
    let state: 'open' | 'closing' | 'closed' = 'open';
    const sessions = new Set<LiveSession>();
    const sender = new SocketSender(ws, {
      maxBufferedBytes: cfg.sendBufferBytes,
      stallMs: cfg.sendStallMs,
      onStall: () => close(CloseCodes.tryAgainLater, 'Client is not reading fast enough'),
    });
    const heartbeat = new Heartbeat(ws, { intervalMs: cfg.pingIntervalMs, maxMissed: cfg.maxMissedPongs, onDead: () => ws.terminate() });
    let inactivity: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(inactivity);
      inactivity = setTimeout(() => close(CloseCodes.normal, 'Inactivity timeout'), cfg.inactivityTimeoutMs);
    };
    const close = (code: number, reason: string) => {
      if (state !== 'open') return;
      state = 'closing';
      clearTimeout(inactivity);
      sender.stop();
      try {
        ws.close(code, reason);
      } catch {
        ws.terminate();
      }
      grace = setTimeout(() => ws.terminate(), 5000);
      grace.unref?.();
    };
    const inbound = new InboundQueue({
      socket: ws,
      isAccepting: () => state === 'open',
      isClosed: () => state === 'closed',
      onError: (err) => handler.onError(err),
    });
    const conn: DialectConnection = {
      principal,
      service: d.service,
      log: clog,
      send: (m, cls, bytes) => void sender.send(m, cls, bytes),
      close,
      // A session that finished starting after its socket closed ends at once (it would otherwise live until idle).
      hold: (s) => {
        if (state === 'closed') d.service.endLiveSession(s, 'socket_closed', 'The client closed the connection');
        else sessions.add(s);
      },
      release: (s) => void sessions.delete(s),
      track: (start) => inbound.track(start),
    };
    const handler = create(conn);
    const entry = {
      ws,
      end: () => {
        for (const s of sessions) d.service.endLiveSession(s, 'server_shutdown', 'Server is shutting down');
        close(CloseCodes.goingAway, 'Server shutting down');
      },
    };
    open.add(entry);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (state !== 'open') return;
      heartbeat.alive();
      touch();
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      inbound.enqueue(async () => {
        const rate = d.rateLimits.consumeMessage(principal.id);
        if (!rate.ok) return handler.onProblem({ code: 'MESSAGE_RATE_LIMITED', message: 'Message rate limit exceeded. Please slow down.', retryAfterSec: rate.retryAfterSec });
        const frame = toFrame(buf, isBinary);
        if ('code' in frame) return handler.onProblem(frame);
        await handler.onFrame(frame);
      });
    });
    ws.on('error', (err) => clog.debug({ err: redactText(err.message) }, 'dialect websocket error'));
    ws.on('close', () => {
      state = 'closed';
      clearTimeout(inactivity);
      clearTimeout(grace);
      heartbeat.stop();
      sender.stop();
      d.connections.release(principal.id);
      for (const s of sessions) d.service.endLiveSession(s, 'socket_closed', 'The client closed the connection');
      sessions.clear();
      open.delete(entry);
      handler.onClose?.();
    });
    clog.info({ url: shownUrl }, 'dialect websocket connected');
    touch();
  };

  const router = upgradeRouterFor(d.httpServer);
  const remove = router.addAsync(path, onUpgrade, (err) =>
    log.error({ err: redactText(String((err as Error)?.stack ?? err)) }, 'dialect upgrade failed'),
  );

  return {
    path,
    get connections() {
      return open.size;
    },
    async close(graceMs = 2000) {
      if (closing) return;
      closing = true;
      const all = [...open];
      for (const e of all) e.end();
      const deadline = Date.now() + graceMs;
      while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const e of open) e.ws.terminate();
      remove();
      if (router.size === 0) router.detach();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

/**
 * A frame that starts like a JSON object or array must be valid JSON of bounded depth; any other frame is handed
 * over as it is (text or binary), for the dialects that take raw or base64 audio frames.
 */
function toFrame(buf: Buffer, isBinary: boolean): DialectFrame | FrameProblem {
  const first = buf.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
  const looksJson = first === 0x7b || first === 0x5b;
  if (!looksJson) return isBinary ? { kind: 'binary', data: buf } : { kind: 'text', text: buf.toString('utf8') };
  if (jsonNestingExceeds(buf, DIALECT_MAX_DEPTH)) return { code: 'INVALID_MESSAGE', message: `Message nested deeper than ${DIALECT_MAX_DEPTH} levels` };
  try {
    return { kind: 'json', value: JSON.parse(buf.toString('utf8')) };
  } catch {
    return isBinary ? { kind: 'binary', data: buf } : { code: 'INVALID_JSON', message: 'Invalid message: not valid JSON' };
  }
}

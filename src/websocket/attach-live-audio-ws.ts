import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { makeOriginCheck } from '../services/policy/origin-policy';
import type { Authenticator } from '../services/auth/principal';
import type { LiveAudioService } from '../services/live-audio-service';
import type { Logger } from '../util/logger';
import { redactText, redactUrl } from '../util/logger';
import { ConnectionCounter } from './connection-counter';
import { LiveAudioConnection, type PreAuth, type WsConfig } from './live-audio-connection';
import type { PreAuthRefusal } from './preauth-gate';
import type { RelaySlot } from './relay-slot';
import { SessionRelays } from './session-relays';
import type { UpgradeBudget } from './upgrade-budget';
import { rejectUpgrade, upgradeRouterFor } from './upgrade-router';
import { upgradeCredential, verifyCredential } from './ws-auth';
import type { WsRateLimits } from '../services/limits/ws-rate-limits-adapter';

export const LIVE_AUDIO_WS_PATH = '/ws/live-audio';

/** What every WebSocket endpoint on the server is built from (ours and the dialects'). */
export interface WsEndpointDeps {
  httpServer: Server;
  service: LiveAudioService;
  authenticator: Authenticator;
  logger: Logger;
  config: WsConfig;
  /** Browser origins allowed to open the socket (same allowlist as CORS). */
  corsOrigins: string[];
  /** Outside production: localhost origins are allowed too. */
  allowLocalhost: boolean;
  /** Per-user message budget and the budgets shown in status messages (`wsRateLimitsFrom(limits)`). */
  rateLimits: WsRateLimits;
  /** Per-address budget of upgrades from strangers (see `UpgradeBudget`); none: unlimited. */
  upgradeBudget?: UpgradeBudget;
}

export interface AttachLiveAudioWsOptions extends WsEndpointDeps {
  /** Default `/ws/live-audio`. */
  path?: string;
  /** A connection was refused before authentication (metrics). */
  onPreAuthRefusal?: (reason: PreAuthRefusal) => void;
  /** The per-user connection count (default: one of its own); shared with other WebSocket endpoints (the dialects). */
  connections?: ConnectionCounter;
  /** How long `close()` waits for clients to answer the 1001 close before dropping them. Default 2000 ms. */
  closeGraceMs?: number;
}

export interface LiveAudioWsEndpoint {
  /** Refuses new connections (503), ends every relayed session, closes every socket with 1001. */
  close(): Promise<void>;
  /** Open connections (authenticated or not). */
  readonly connections: number;
}

/**
 * Serves the `/ws/live-audio` WebSocket on the REST server's port. Origin and header/query credentials are
 * checked before the upgrade completes (refusals use the REST error bodies); frames over `maxPayload` are refused
 * by `ws` before any parsing; before authentication the pre-auth gate bounds what a connection may send.
 * Upgrades whose credentials check out never count toward the per-address budget; anonymous ones count until
 * their auth message checks out.
 */
export function attachLiveAudioWebSocket(o: AttachLiveAudioWsOptions): LiveAudioWsEndpoint {
  const log = o.logger.child({ component: 'ws' });
  const path = o.path ?? LIVE_AUDIO_WS_PATH;
  const cfg = o.config;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: cfg.maxPayloadBytes,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const originAllowed = makeOriginCheck({ origins: o.corsOrigins, allowLocalhost: o.allowLocalhost });
  const sockets = new Set<LiveAudioConnection>();
  const connections = o.connections ?? new ConnectionCounter(cfg.maxConnectionsPerUser);
  const rateLimits = o.rateLimits;
  const relays = new SessionRelays<RelaySlot>();
  let closing = false;

  const accept = (req: IncomingMessage, socket: Duplex, head: Buffer, preAuth: PreAuth | null, counted: boolean) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (closing) {
        ws.close(1001, 'Server shutting down');
        return;
      }
      const s = new LiveAudioConnection(
        ws,
        {
          service: o.service,
          authenticator: o.authenticator,
          connections,
          rateLimits,
          relays,
          config: cfg,
          logger: o.logger,
          onClosed: (x) => sockets.delete(x),
          onPreAuthRefusal: o.onPreAuthRefusal,
        },
        {
          remoteAddress: req.socket.remoteAddress,
          url: redactUrl(req.url ?? ''),
          transport: socket,
          // Its credentials checked out: this upgrade no longer counts against the address.
          onAuthenticatedByMessage: counted ? () => o.upgradeBudget?.giveBack(req) : undefined,
        },
        preAuth,
      );
      if (!s.isClosed) sockets.add(s);
    });
  };

  const shuttingDown = { success: false, error: 'Server is shutting down; try again shortly', code: 'SERVER_SHUTTING_DOWN' };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => {
    const onError = (err: Error) => log.debug({ err: redactText(err.message) }, 'socket error during upgrade');
    socket.on('error', onError);
    try {
      if (closing) return rejectUpgrade(socket, 503, shuttingDown);
      // Credentials on the upgrade are checked first: valid ones never touch the per-address budget.
      const cred = upgradeCredential(req, url);
      const outcome = cred ? await verifyCredential(o.authenticator, cred.credential) : undefined;
      if (socket.destroyed) return;
      const trusted = outcome?.ok === true;
      if (!trusted) {
        const limited = o.upgradeBudget?.take(req);
        if (limited) {
          const body = { success: false, error: limited.message, code: limited.code, retryAfter: limited.retryAfterSec };
          return rejectUpgrade(socket, limited.status, body, { 'Retry-After': String(limited.retryAfterSec) });
        }
      }
      const origin = req.headers.origin;
      if (origin && !originAllowed(origin, req.headers.host)) {
        log.info({ origin }, 'websocket refused: origin not allowed');
        return rejectUpgrade(socket, 403, { success: false, error: 'Origin not allowed', code: 'CORS_ORIGIN_DENIED' });
      }
      let preAuth: PreAuth | null = null;
      if (cred && outcome) {
        if (!outcome.ok) {
          log.info({ source: cred.source, code: outcome.error.code }, 'websocket refused: invalid credential');
          return rejectUpgrade(socket, 401, { success: false, error: outcome.error.message, code: outcome.error.code });
        }
        preAuth = { principal: outcome.principal, source: cred.source };
      }
      if (closing) return rejectUpgrade(socket, 503, shuttingDown);
      accept(req, socket, head, preAuth, !trusted);
    } finally {
      socket.off('error', onError);
    }
  };

  const router = upgradeRouterFor(o.httpServer);
  const removeRoute = router.addAsync(path, onUpgrade, (err) =>
    log.error({ err: redactText(String((err as Error)?.stack ?? err)) }, 'websocket upgrade failed'),
  );

  return {
    get connections() {
      return sockets.size;
    },
    async close() {
      if (closing) return;
      closing = true;
      const grace = o.closeGraceMs ?? 2000;
      const all = [...sockets];
      for (const s of all) s.shutdown(grace);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(all.map((s) => s.closed)),
        new Promise<void>((r) => (timer = setTimeout(r, grace + 500))),
      ]);
      clearTimeout(timer);
      for (const s of sockets) s.terminate();
      await Promise.all([...sockets].map((s) => s.closed));
      removeRoute();
      if (router.size === 0) router.detach();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

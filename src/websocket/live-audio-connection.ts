import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { AppConfig } from '../config/config';
import type { Authenticator, Principal } from '../services/auth/principal';
import type { LiveAudioService } from '../services/live-audio-service';
import { AppError } from '../util/app-error';
import type { Logger } from '../util/logger';
import { redactText } from '../util/logger';
import { ConnectionAuth, type PreAuth } from './connection-auth';
import type { ConnectionCounter } from './connection-counter';
import type { ConnectionStats, MessageContext } from './handlers/message-context';
import { Heartbeat } from './heartbeat';
import { InboundQueue } from './inbound-queue';
import { MessageDispatcher } from './message-dispatcher';
import { PreAuthFrameFilter } from './preauth-frame-filter';
import { PREAUTH_CLOSE_REASONS, PREAUTH_MAX_UNREAD_BYTES, PreAuthGate, type PreAuthRefusal } from './preauth-gate';
import { CloseCodes, ServerMessages } from './server-messages';
import type { SessionRelays } from './session-relays';
import { RelaySlot } from './relay-slot';
import { SocketSender } from './socket-sender';
import type { WsRateLimits } from '../services/limits/ws-rate-limits-adapter';

export type { PreAuth } from './connection-auth';

export type WsConfig = AppConfig['ws'];

export interface LiveAudioConnectionDeps {
  service: LiveAudioService;
  authenticator: Authenticator;
  connections: ConnectionCounter;
  rateLimits: WsRateLimits;
  relays: SessionRelays<RelaySlot>;
  config: WsConfig;
  logger: Logger;
  /** Called once when the socket has closed. */
  onClosed: (s: LiveAudioConnection) => void;
  /** A connection was refused before authentication (metrics). */
  onPreAuthRefusal?: (reason: PreAuthRefusal) => void;
}

/** Connection facts from the upgrade request. */
export interface LiveAudioConnectionMeta {
  remoteAddress: string | undefined;
  /** The request URL with credentials redacted. */
  url: string;
  /** Gives back the per-address upgrade count once an auth message checks out (anonymous upgrades only). */
  onAuthenticatedByMessage?: () => void;
  /** The TCP socket under `ws` (the pre-auth frame filter reads frame headers on it). */
  transport: Duplex;
}

/** How long a socket closed for a stalled send buffer may take to finish the close handshake. */
const STALL_CLOSE_GRACE_MS = 5000;
/** A connection refused before authentication (or for unread replies) gets this long to read our close. */
const REFUSAL_CLOSE_GRACE_MS = 1000;

type State = 'awaiting_auth' | 'open' | 'closing' | 'closed';

let connectionSeq = 0;

/**
 * One `/ws/live-audio` connection (README "WebSocket API"): wires the socket to its parts and owns its
 * lifecycle (state, inactivity timer, closing). The parts: the auth phase (connection-auth.ts), message handling
 * strictly in arrival order with inbound flow control (inbound-queue.ts), routing by message type
 * (message-dispatcher.ts, handlers/), the relayed session (relay-slot.ts, session-relay.ts), outbound
 * backpressure (socket-sender.ts) and the heartbeat (heartbeat.ts).
 */
export class LiveAudioConnection {
  readonly id = `ws${++connectionSeq}`;
  private state: State = 'awaiting_auth';
  private readonly sender: SocketSender;
  private readonly heartbeat: Heartbeat;
  private readonly auth: ConnectionAuth;
  private readonly slot: RelaySlot;
  private readonly inbound: InboundQueue;
  private readonly dispatcher: MessageDispatcher;
  private readonly preAuthGate: PreAuthGate;
  /** Until authenticated: sees every frame header before `ws` does (see preauth-frame-filter.ts). */
  private readonly frameFilter: PreAuthFrameFilter | undefined;
  private inactivityTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: LiveAudioConnectionDeps,
    meta: LiveAudioConnectionMeta,
    preAuth: PreAuth | null,
  ) {
    this.log = deps.logger.child({ component: 'ws', conn: this.id });
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    const cfg = deps.config;
    this.preAuthGate = new PreAuthGate({
      maxFrames: cfg.preauthMaxFrames,
      maxFrameBytes: cfg.preauthMaxBytes,
      maxUnreadBytes: PREAUTH_MAX_UNREAD_BYTES,
    });
    this.sender = new SocketSender(ws, {
      maxBufferedBytes: cfg.sendBufferBytes,
      stallMs: cfg.sendStallMs,
      onStall: (buffered) => this.onSendStall(buffered),
    });
    this.heartbeat = new Heartbeat(ws, {
      intervalMs: cfg.pingIntervalMs,
      maxMissed: cfg.maxMissedPongs,
      onDead: (missed) => {
        this.log.info({ missed }, 'no pong from the client: terminating the connection');
        this.ws.terminate();
      },
    });
    this.auth = new ConnectionAuth({
      authenticator: deps.authenticator,
      connections: deps.connections,
      authTimeoutMs: cfg.authTimeoutMs,
      sender: this.sender,
      log: this.log,
      isAwaitingAuth: () => this.state === 'awaiting_auth',
      onAuthenticated: (source) => {
        this.state = 'open';
        this.frameFilter?.release();
        this.touchInactivity();
        if (source === 'message') meta.onAuthenticatedByMessage?.();
      },
      close: (code, reason) => this.closeWith(code, reason),
    });
    this.slot = new RelaySlot({
      relays: deps.relays,
      service: deps.service,
      out: { sender: this.sender, reportError: (err, sessionId) => this.reportError(err, sessionId) },
      log: this.log,
    });
    this.inbound = new InboundQueue({
      socket: ws,
      isAccepting: () => this.isAccepting,
      isClosed: () => this.state === 'closed',
      onError: (err) => this.reportError(err),
    });
    this.dispatcher = new MessageDispatcher({
      auth: this.auth,
      context: this.messageContext(),
      onActivity: () => this.touchInactivity(),
      refuseUnauthenticated: () => this.refuseBeforeAuth('not_auth'),
      refuse: (reply) => this.refuseFrame(reply),
    });
    if (!preAuth) {
      // Every frame of a stranger is counted and sized from its header, before `ws` buffers or parses it.
      this.frameFilter = new PreAuthFrameFilter(
        meta.transport,
        (payloadBytes) => this.preAuthGate.admit(payloadBytes, this.sender.bufferedAmount),
        (reason) => this.refuseBeforeAuth(reason),
      );
      this.frameFilter.attach();
    }
    ws.on('message', (data) => this.onFrame(data));
    ws.on('close', (code, reason) => this.onClose(code, reason.toString('utf8')));
    // `ws` reports protocol errors (e.g. a frame over maxPayload) here and closes the socket itself.
    ws.on('error', (err) => this.log.debug({ err: redactText(err.message) }, 'websocket error'));
    this.log.info({ remote: meta.remoteAddress, url: meta.url, preAuth: preAuth?.source ?? null }, 'websocket connected');

    this.sender.send(ServerMessages.connected(!!preAuth));
    this.auth.begin(preAuth);
  }

  /** Resolves once the socket has closed and its cleanup ran. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  get user(): Principal | undefined {
    return this.auth.principal;
  }

  // ------------------------------------------------------------------ inbound

  /** False once the connection is closing: nothing more is read or handled. */
  private get isAccepting(): boolean {
    return this.state !== 'closing' && this.state !== 'closed';
  }

  private onFrame(data: RawData): void {
    if (!this.isAccepting) return;
    this.heartbeat.alive();
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    // (Before authentication the frame filter has already counted and sized it.) Parsed when its turn comes, so
    // replies keep the order of the messages they answer.
    this.inbound.enqueue(() => this.dispatcher.dispatchFrame(buf));
  }

  /**
   * Closes an unauthenticated connection that broke the pre-auth rules: 1008, no reply built, reading stopped
   * (nothing more it sends is looked at), dropped if it does not take our close within a second.
   */
  private refuseBeforeAuth(reason: PreAuthRefusal): void {
    if (!this.isAccepting) return;
    this.log.info({ reason, frames: this.preAuthGate.framesSeen }, 'websocket refused before authentication');
    this.deps.onPreAuthRefusal?.(reason);
    // Nothing it sends from now on reaches `ws` (what its paused socket still buffers is dropped at the close).
    this.frameFilter?.block();
    this.closeWith(CloseCodes.policyViolation, PREAUTH_CLOSE_REASONS[reason], REFUSAL_CLOSE_GRACE_MS);
    try {
      this.ws.pause();
    } catch {
      /* already closed */
    }
  }

  /**
   * An authenticated client's frame was refused: it gets its reply, unless it leaves our replies unread beyond
   * the send buffer cap; then the connection is closed (1008) instead of piling up more replies.
   */
  private refuseFrame(reply: () => object): void {
    if (this.sender.bufferedAmount < this.deps.config.sendBufferBytes) {
      this.sender.send(reply);
      return;
    }
    this.log.info({ buffered: this.sender.bufferedAmount }, 'websocket refused frames while its replies are unread: closing');
    this.closeWith(CloseCodes.policyViolation, PREAUTH_CLOSE_REASONS.replies_unread, REFUSAL_CLOSE_GRACE_MS);
  }

  private messageContext(): MessageContext {
    return {
      service: this.deps.service,
      rateLimits: this.deps.rateLimits,
      sender: this.sender,
      log: this.log,
      slot: this.slot,
      reportError: (err, sessionId) => this.reportError(err, sessionId),
      isOpen: () => this.state === 'open',
      track: (start) => this.inbound.track(start),
      connectionStats: () => this.connectionStats(),
    };
  }

  private reportError(err: unknown, sessionId?: string | null): void {
    if (!(err instanceof AppError)) {
      this.log.error({ err: redactText(String((err as Error)?.stack ?? err)) }, 'websocket handler failed');
    }
    this.sender.send(ServerMessages.error(err, sessionId));
  }

  private touchInactivity(): void {
    clearTimeout(this.inactivityTimer);
    this.inactivityTimer = setTimeout(() => {
      if (this.state !== 'open') return;
      this.log.info('websocket inactive: closing');
      this.sender.send(ServerMessages.inactivityTimeout());
      this.closeWith(CloseCodes.normal, 'Inactivity timeout');
    }, this.deps.config.inactivityTimeoutMs);
  }

  private connectionStats(): ConnectionStats {
    const s = this.sender.stats;
    return {
      id: this.id,
      bufferedAmount: this.sender.bufferedAmount,
      sentMessages: s.sentMessages,
      droppedAudioMessages: s.droppedMessages,
      droppedAudioBytes: s.droppedBytes,
      maxBufferedAmount: s.maxBufferedAmount,
      keepAliveOnClose: this.slot.current?.keepAliveOnClose ?? false,
    };
  }

  // ------------------------------------------------------------------ closing

  private onSendStall(buffered: number): void {
    this.log.warn({ buffered, cap: this.deps.config.sendBufferBytes }, 'client is not reading: closing with 1013');
    this.closeWith(CloseCodes.tryAgainLater, 'Client is not reading fast enough', STALL_CLOSE_GRACE_MS);
  }

  /**
   * Starts the close handshake; nothing more is sent or handled. If the peer does not complete it within
   * `graceMs` (a client that stopped reading cannot), the TCP connection is dropped.
   */
  closeWith(code: number, reason: string, graceMs = 10_000): void {
    if (!this.isAccepting) return;
    this.state = 'closing';
    this.auth.stopTimer();
    clearTimeout(this.inactivityTimer);
    this.sender.stop();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    this.graceTimer = setTimeout(() => this.ws.terminate(), graceMs);
    this.graceTimer.unref?.();
  }

  /** Server shutdown: ends the relayed session (the client gets session_ended), then closes with 1001. */
  shutdown(graceMs: number): void {
    if (this.state !== 'closed') this.slot.endForShutdown();
    this.closeWith(CloseCodes.goingAway, 'Server shutting down', graceMs);
  }

  terminate(): void {
    this.ws.terminate();
  }

  private onClose(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.frameFilter?.release();
    this.auth.stopTimer();
    clearTimeout(this.inactivityTimer);
    clearTimeout(this.graceTimer);
    this.heartbeat.stop();
    this.sender.stop();
    this.auth.release();
    this.slot.releaseOnClose();
    this.log.info({ code, reason: redactText(reason) }, 'websocket closed');
    this.deps.onClosed(this);
    this.resolveClosed();
  }
}

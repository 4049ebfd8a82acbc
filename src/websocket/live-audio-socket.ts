import type { RawData, WebSocket } from 'ws';
import type { AppConfig } from '../config/config';
import type { Authenticator, Principal } from '../services/auth/principal';
import { toClientAudioError, type LiveAudioService } from '../services/live-audio-service';
import type { LiveSession, SessionEndInfo } from '../services/session/live-session';
import { SessionRegistry } from '../services/session/session-registry';
import { sessionEndedView } from '../services/session/session-views';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { AppError } from '../util/app-error';
import { decodeBase64Strict, base64DecodedLength } from '../util/base64';
import type { Logger } from '../util/logger';
import { redactText } from '../util/logger';
import { AUTH_MESSAGE_TYPES, parseClientFrame, type ClientMessage, type ClientMessageOf } from './client-messages';
import type { ConnectionCounter } from './connection-counter';
import { Heartbeat } from './heartbeat';
import { CloseCodes, ServerMessages } from './server-messages';
import type { SessionHolder, SessionHolders } from './session-holders';
import { SocketSender } from './socket-sender';
import { messageCredential, verifyCredential, type AuthSource } from './ws-auth';
import type { WsRateLimits } from './ws-rate-limiter';

export type WsConfig = AppConfig['ws'];

export interface LiveAudioSocketDeps {
  service: LiveAudioService;
  authenticator: Authenticator;
  connections: ConnectionCounter;
  rateLimits: WsRateLimits;
  holders: SessionHolders<LiveAudioSocket>;
  config: WsConfig;
  logger: Logger;
  /** Called once when the socket has closed. */
  onClosed: (s: LiveAudioSocket) => void;
}

export interface PreAuth {
  principal: Principal;
  source: 'header' | 'query';
}

/** Inbound flow control: stop reading the socket while this much work is queued, resume below the low mark. */
const PENDING_HIGH = 64;
const PENDING_LOW = 16;
/** How long a socket closed for a stalled send buffer may take to finish the close handshake. */
const STALL_CLOSE_GRACE_MS = 5000;

/** A session this socket relays, with its event handlers (removed on unbind). */
class Binding {
  active = true;
  /** Version of the last turn state sent, so one change is never sent twice. */
  lastVersion = -1;
  readonly off: Array<() => void> = [];

  constructor(
    readonly session: LiveSession,
    readonly keepAliveOnClose: boolean,
  ) {}
}

type State = 'awaiting_auth' | 'open' | 'closing' | 'closed';

let connectionSeq = 0;

/**
 * One `/ws/live-audio` connection: authentication, message dispatch (strictly in arrival order), the session it
 * relays, timers (auth, inactivity, heartbeat) and outbound backpressure. See contract.md §2 and the README.
 */
export class LiveAudioSocket implements SessionHolder {
  readonly id = `ws${++connectionSeq}`;
  private state: State = 'awaiting_auth';
  private principal: Principal | undefined;
  private counted = false;
  private readonly sender: SocketSender;
  private readonly heartbeat: Heartbeat;
  private authTimer: NodeJS.Timeout | undefined;
  private inactivityTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private binding: Binding | undefined;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private inflightAudio = 0;
  private readingPaused = false;
  private readonly log: Logger;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: LiveAudioSocketDeps,
    meta: { remoteAddress: string | undefined; url: string },
    preAuth: PreAuth | null,
  ) {
    this.log = deps.logger.child({ component: 'ws', conn: this.id });
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    const cfg = deps.config;
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
    ws.on('message', (data) => this.onFrame(data));
    ws.on('close', (code, reason) => this.onClose(code, reason.toString('utf8')));
    // `ws` reports protocol errors (e.g. a frame over maxPayload) here and closes the socket itself.
    ws.on('error', (err) => this.log.debug({ err: redactText(err.message) }, 'websocket error'));
    this.log.info({ remote: meta.remoteAddress, url: meta.url, preAuth: preAuth?.source ?? null }, 'websocket connected');

    this.sender.send(ServerMessages.connected(!!preAuth));
    if (preAuth) {
      this.completeAuth(preAuth.principal, preAuth.source);
    } else {
      this.authTimer = setTimeout(() => this.onAuthTimeout(), cfg.authTimeoutMs);
    }
  }

  /** Resolves once the socket has closed and its cleanup ran. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  get user(): Principal | undefined {
    return this.principal;
  }

  // ------------------------------------------------------------------ auth

  private onAuthTimeout(): void {
    if (this.principal || this.state !== 'awaiting_auth') return;
    this.sender.send(ServerMessages.authTimeout(this.deps.config.authTimeoutMs));
    this.closeWith(CloseCodes.policyViolation, 'Authentication timeout');
  }

  private async handleAuthMessage(msg: ClientMessageOf<'auth'> | ClientMessageOf<'api_key'> | ClientMessageOf<'bearer'>) {
    if (this.principal) {
      // Exactly one auth_success per socket, and never a second connection count.
      this.sender.send(ServerMessages.error(new AppError(400, 'ALREADY_AUTHENTICATED', 'Already authenticated; auth message ignored')));
      return;
    }
    const outcome = await verifyCredential(this.deps.authenticator, messageCredential(msg));
    if (this.state !== 'awaiting_auth') return;
    if (!outcome.ok) {
      this.log.info({ source: 'message', code: outcome.error.code }, 'websocket authentication failed');
      this.sender.send(ServerMessages.authFailed('Invalid authentication credentials', outcome.error.code));
      this.closeWith(CloseCodes.policyViolation, 'Authentication failed');
      return;
    }
    this.completeAuth(outcome.principal, 'message');
  }

  private completeAuth(principal: Principal, source: AuthSource): void {
    const max = this.deps.connections.limit;
    if (!this.deps.connections.tryAcquire(principal.id)) {
      this.log.info({ owner: principal.id, max }, 'websocket refused: connection limit');
      this.sender.send(ServerMessages.authFailed(`Maximum ${max} connections per user exceeded`, 'CONNECTION_LIMIT'));
      this.closeWith(CloseCodes.policyViolation, 'Connection limit exceeded');
      return;
    }
    this.counted = true;
    this.principal = principal;
    this.state = 'open';
    clearTimeout(this.authTimer);
    this.authTimer = undefined;
    this.touchInactivity();
    this.log.info({ owner: principal.id, authMethod: principal.authMethod, source }, 'websocket authenticated');
    this.sender.send(ServerMessages.authSuccess(principal));
  }

  // ------------------------------------------------------------------ inbound

  private onFrame(data: RawData): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.heartbeat.alive();
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const parsed = parseClientFrame(buf);
    // Refusals go through the queue too, so replies keep the order of the messages they answer.
    if (!parsed.ok) this.enqueue(() => this.sender.send(ServerMessages.error(parsed.problem)));
    else this.enqueue(() => this.dispatch(parsed.message));
  }

  /** Runs message handlers one at a time in arrival order; a handler's failure becomes an `error` message. */
  private enqueue(fn: () => unknown): void {
    this.pending++;
    this.updateFlow();
    this.chain = this.chain.then(async () => {
      try {
        if (this.state === 'closing' || this.state === 'closed') return;
        await fn();
      } catch (err) {
        this.reportError(err);
      } finally {
        this.pending--;
        this.updateFlow();
      }
    });
  }

  /** Stops reading from the client while too much inbound work is queued (audio waiting for the decoder). */
  private updateFlow(): void {
    const load = this.pending + this.inflightAudio;
    if (!this.readingPaused && load > PENDING_HIGH && this.state !== 'closed') {
      this.readingPaused = true;
      this.ws.pause();
    } else if (this.readingPaused && load <= PENDING_LOW) {
      this.readingPaused = false;
      if (this.state !== 'closed') this.ws.resume();
    }
  }

  private async dispatch(msg: ClientMessage): Promise<void> {
    if (AUTH_MESSAGE_TYPES.includes(msg.type)) {
      return this.handleAuthMessage(msg as ClientMessageOf<'auth'>);
    }
    const owner = this.principal;
    if (!owner) {
      this.sender.send(ServerMessages.authRequired());
      return;
    }
    const rate = this.deps.rateLimits.consumeMessage(owner.id);
    if (!rate.ok) {
      this.sender.send(ServerMessages.rateLimited('messages', rate.retryAfterSec));
      return;
    }
    this.touchInactivity();
    switch (msg.type) {
      case 'start_session':
        return this.startSession(owner, msg);
      case 'audio_chunk':
        return this.audioChunk(owner, msg);
      case 'end_session':
        return this.endSession(owner, msg);
      case 'get_status':
        return this.getStatus(owner, msg);
      case 'get_rate_limits':
        this.sender.send(ServerMessages.rateLimitStatus(this.deps.rateLimits.status(owner.id)));
        return;
      case 'text':
        return this.text(msg);
      case 'image':
        return this.image(msg);
      case 'interrupt':
        return this.interrupt();
      case 'ping':
        this.sender.send(ServerMessages.pong());
        return;
      default:
        return;
    }
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

  // ------------------------------------------------------------------ session messages

  private get mode(): string {
    return this.deps.service.emulated ? 'emulated' : 'gemini';
  }

  private async startSession(owner: Principal, msg: ClientMessageOf<'start_session'>): Promise<void> {
    const keepAlive = msg.keep_alive_on_close === true;
    const sessionId = msg.session_id || defaultSessionId(owner);
    const registry = this.deps.service.registry;
    SessionRegistry.validateId(sessionId);

    const current = this.binding;
    if (msg.resume && current && current.session.id === sessionId) {
      // Already relaying it: just confirm (and update the keep-alive choice).
      this.unbind(current);
      this.bind(current.session, keepAlive);
      this.sender.send(ServerMessages.sessionStarted(current.session, { mode: this.mode, resumed: true, keepAliveOnClose: keepAlive }));
      return;
    }
    // One live session per socket: a second start_session ends the first cleanly (session_ended is sent).
    if (current) registry.endSession(current.session, 'replaced', 'Replaced by a new session on this connection');

    if (msg.resume) {
      const l = registry.lookup(owner, sessionId);
      if (l.kind === 'live') {
        this.bind(l.session, keepAlive);
        this.log.info({ sessionId }, 'session resumed on this connection');
        this.sender.send(ServerMessages.sessionStarted(l.session, { mode: this.mode, resumed: true, keepAliveOnClose: keepAlive }));
        return;
      }
    }

    let session: LiveSession;
    try {
      session = await this.deps.service.startSession(
        owner,
        {
          sessionId,
          model: msg.model ?? undefined,
          responseModality: msg.response_modality ?? undefined,
          inputTranscription: msg.input_transcription ?? undefined,
          outputTranscription: msg.output_transcription ?? undefined,
        },
        'ws',
      );
    } catch (err) {
      this.reportError(err, sessionId);
      return;
    }
    if (this.state !== 'open') {
      // The socket went away while the upstream connected.
      if (!keepAlive) registry.endSession(session, 'socket_closed', 'WebSocket closed before the session started');
      return;
    }
    this.bind(session, keepAlive);
    this.sender.send(ServerMessages.sessionStarted(session, { mode: this.mode, resumed: false, keepAliveOnClose: keepAlive }));
  }

  private audioChunk(owner: Principal, msg: ClientMessageOf<'audio_chunk'>): void {
    const b = this.binding;
    if (!b) {
      this.sender.send(ServerMessages.error(new AppError(400, 'NO_ACTIVE_SESSION', 'No active session. Please start a session first.')));
      return;
    }
    const rate = this.deps.rateLimits.consumeAudio(owner.id, base64DecodedLength(msg.audio_data));
    if (!rate.ok) {
      this.sender.send(ServerMessages.rateLimited('audio', rate.retryAfterSec));
      return;
    }
    const service = this.deps.service;
    const { chunk, desc } = (() => {
      try {
        return service.parseAudio({ audioData: msg.audio_data, format: msg.format, sampleRate: msg.sample_rate, channels: msg.channels });
      } catch (err) {
        this.reportError(err, b.session.id);
        return { chunk: undefined, desc: undefined };
      }
    })();
    if (!chunk || !desc) return;
    // Called synchronously in message order: LiveSession queues chunks in call order, so the decoder sees the
    // stream in arrival order while the next messages (e.g. interrupt) are handled at once.
    this.inflightAudio++;
    this.updateFlow();
    service
      .pushAudio(b.session, chunk, desc)
      .catch((err) => {
        if (b.active) this.reportError(err, b.session.id);
      })
      .finally(() => {
        this.inflightAudio--;
        this.updateFlow();
      });
  }

  private endSession(owner: Principal, msg: ClientMessageOf<'end_session'>): void {
    const b = this.binding;
    const target = msg.session_id ?? undefined;
    if (target === undefined || (b && target === b.session.id)) {
      if (!b) {
        this.sender.send(ServerMessages.sessionNotFound(null, 'No active session'));
        return;
      }
      // The session's `ended` event sends session_ended and unbinds.
      this.deps.service.registry.endSession(b.session, 'client_end', 'Ended by the client');
      return;
    }
    const sessionId = SessionRegistry.validateId(target);
    const r = this.deps.service.registry.end(owner, sessionId, 'client_end');
    if (r.kind === 'live') this.sender.send(ServerMessages.sessionEnded(sessionId, r.session.endedInfo!));
    else if (r.kind === 'ended') this.sender.send(ServerMessages.sessionEnded(sessionId, r.tombstone.info, { alreadyEnded: true }));
    else this.sender.send(ServerMessages.sessionNotFound(sessionId));
  }

  private getStatus(owner: Principal, msg: ClientMessageOf<'get_status'>): void {
    const rateLimits = this.deps.rateLimits.status(owner.id);
    const connection = this.connectionStats();
    const target = msg.session_id ?? this.binding?.session.id;
    if (target === undefined) {
      this.sender.send(ServerMessages.sessionStatus(null, { status: 'not_found', message: 'No active session', rateLimits, connection }));
      return;
    }
    const sessionId = SessionRegistry.validateId(target);
    const l = this.deps.service.registry.lookup(owner, sessionId);
    if (l.kind === 'live') {
      this.sender.send(ServerMessages.sessionStatus(sessionId, { ...l.session.status(), rateLimits, connection }));
    } else if (l.kind === 'ended') {
      const t = l.tombstone;
      this.sender.send(
        ServerMessages.sessionStatus(sessionId, {
          ...sessionEndedView(sessionId, t.info),
          startTime: t.startTime,
          model: t.model,
          responseModality: t.responseModality,
          rateLimits,
          connection,
        }),
      );
    } else {
      this.sender.send(
        ServerMessages.sessionStatus(sessionId, { sessionId, status: 'not_found', message: 'Session not found or expired', rateLimits, connection }),
      );
    }
  }

  private requireBinding(): Binding {
    const b = this.binding;
    if (!b) throw new AppError(400, 'NO_ACTIVE_SESSION', 'No active session. Please start a session first.');
    return b;
  }

  private text(msg: ClientMessageOf<'text'>): void {
    this.requireBinding().session.sendText(msg.text);
  }

  private image(msg: ClientMessageOf<'image'>): void {
    const b = this.requireBinding();
    const bytes = decodeBase64Strict(msg.image_data, 'image_data');
    const sniffed = sniffImage(bytes);
    if (!sniffed) throw new AppError(415, 'IMAGE_UNSUPPORTED_FORMAT', 'Unsupported image: send a JPEG or PNG frame');
    if (msg.mime_type && msg.mime_type !== sniffed) {
      throw new AppError(400, 'INVALID_FIELD', `Invalid field mime_type: the image is ${sniffed}`);
    }
    b.session.sendImage(bytes, sniffed);
  }

  private interrupt(): void {
    const b = this.requireBinding();
    const snap = b.session.interrupt();
    this.sender.send(ServerMessages.interrupted(b.session.id, snap.turnId, 'client'));
  }

  private connectionStats() {
    const s = this.sender.stats;
    return {
      id: this.id,
      bufferedAmount: this.sender.bufferedAmount,
      sentMessages: s.sentMessages,
      droppedAudioMessages: s.droppedMessages,
      droppedAudioBytes: s.droppedBytes,
      maxBufferedAmount: s.maxBufferedAmount,
      keepAliveOnClose: this.binding?.keepAliveOnClose ?? false,
    };
  }

  // ------------------------------------------------------------------ session events

  private bind(session: LiveSession, keepAliveOnClose: boolean): void {
    const b = new Binding(session, keepAliveOnClose);
    const send = (m: object) => {
      if (b.active) this.sender.send(m);
    };
    const onUpdate = (snap: TurnSnapshot) => {
      if (snap.version <= b.lastVersion) return;
      b.lastVersion = snap.version;
      send(ServerMessages.transcription(session, snap));
    };
    const onReplyAudio = (pcm: Buffer, rate: number) => {
      // Built (base64) only when it is actually sent.
      if (b.active) this.sender.send(() => ServerMessages.audioOutput(session.id, pcm, rate), 'droppable', pcm.length);
    };
    const onTurnComplete = (snap: TurnSnapshot) => {
      // The final words first, then the event (the session's own `update` for this state is then skipped).
      onUpdate(snap);
      send(ServerMessages.turnComplete(session, snap));
    };
    const onInterrupted = (snap: TurnSnapshot) => send(ServerMessages.interrupted(session.id, snap.turnId, 'upstream'));
    const onDecodeError = (err: unknown) => {
      if (b.active) this.reportError(toClientAudioError(err), session.id);
    };
    const onEnded = (info: SessionEndInfo) => {
      send(ServerMessages.sessionEnded(session.id, info));
      this.unbind(b);
    };
    session.on('update', onUpdate);
    session.on('replyAudio', onReplyAudio);
    session.on('turnComplete', onTurnComplete);
    session.on('interrupted', onInterrupted);
    session.on('decodeError', onDecodeError);
    session.on('ended', onEnded);
    b.off.push(
      () => session.off('update', onUpdate),
      () => session.off('replyAudio', onReplyAudio),
      () => session.off('turnComplete', onTurnComplete),
      () => session.off('interrupted', onInterrupted),
      () => session.off('decodeError', onDecodeError),
      () => session.off('ended', onEnded),
    );
    b.lastVersion = session.snapshot().version;
    this.binding = b;
    this.deps.holders.take(session, this);
    if (session.ended) onEnded(session.endedInfo!);
  }

  /** Stops relaying the binding's session (no more messages for it on this socket). Idempotent. */
  private unbind(b: Binding): void {
    if (!b.active) return;
    b.active = false;
    for (const off of b.off) off();
    b.off.length = 0;
    this.deps.holders.release(b.session, this);
    if (this.binding === b) this.binding = undefined;
  }

  /** Another connection resumed this session. */
  detachSession(session: LiveSession): void {
    const b = this.binding;
    if (!b || b.session !== session) return;
    this.unbind(b);
    this.sender.send(ServerMessages.sessionDetached(session.id));
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
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    clearTimeout(this.authTimer);
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
    const b = this.binding;
    if (b && this.state !== 'closed') this.deps.service.registry.endSession(b.session, 'server_shutdown', 'Server is shutting down');
    this.closeWith(CloseCodes.goingAway, 'Server shutting down', graceMs);
  }

  terminate(): void {
    this.ws.terminate();
  }

  private onClose(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.authTimer);
    clearTimeout(this.inactivityTimer);
    clearTimeout(this.graceTimer);
    this.heartbeat.stop();
    this.sender.stop();
    if (this.counted && this.principal) this.deps.connections.release(this.principal.id);
    this.counted = false;
    const b = this.binding;
    if (b) {
      this.unbind(b);
      if (b.keepAliveOnClose && !b.session.ended) {
        this.log.info({ sessionId: b.session.id }, 'socket closed; session kept for reconnection');
      } else {
        this.deps.service.registry.endSession(b.session, 'socket_closed', 'WebSocket closed');
      }
    }
    this.log.info({ code, reason: redactText(reason) }, 'websocket closed');
    this.deps.onClosed(this);
    this.resolveClosed();
  }
}

/** `ws_<user>_<ms>_<rand>`: a valid session id for clients that send none. */
function defaultSessionId(owner: Principal): string {
  const user = String(owner.userId).replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return `ws_${user}_${Date.now()}_${Math.random().toString(36).slice(2, 8)}`;
}

/** The image type from its magic bytes. */
export function sniffImage(b: Buffer): 'image/jpeg' | 'image/png' | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  return null;
}

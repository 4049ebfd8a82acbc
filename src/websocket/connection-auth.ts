import type { Authenticator, Principal } from '../services/auth/principal';
import { AppError } from '../util/app-error';
import type { Logger } from '../util/logger';
import type { ClientMessageOf } from '../contracts/ws-client-messages';
import type { ConnectionCounter } from './connection-counter';
import { CloseCodes, ServerMessages } from './server-messages';
import type { SocketSender } from './socket-sender';
import { messageCredential, verifyCredential, type AuthSource } from './ws-auth';

/** A credential verified on the upgrade request, before the socket existed. */
export interface PreAuth {
  principal: Principal;
  source: 'header' | 'query';
}

export type AuthMessage = ClientMessageOf<'auth'> | ClientMessageOf<'api_key'> | ClientMessageOf<'bearer'>;

export interface ConnectionAuthOptions {
  authenticator: Authenticator;
  connections: ConnectionCounter;
  authTimeoutMs: number;
  sender: Pick<SocketSender, 'send'>;
  log: Logger;
  /** True while the connection waits for credentials (false once it is open, closing or closed). */
  isAwaitingAuth(): boolean;
  /** The principal was accepted: the connection opens. Called before `auth_success` is sent. */
  onAuthenticated(source: AuthSource): void;
  /** Closes the connection after a refusal (the refusal message was already sent). */
  close(code: number, reason: string): void;
}

/**
 * The authentication phase of one connection (README "WebSocket API"): a credential from the upgrade request, or an
 * auth message within `authTimeoutMs`; the per-user connection count; `auth_success` exactly once.
 */
export class ConnectionAuth {
  private current: Principal | undefined;
  /** Whether this connection holds a place in the per-user connection count. */
  private counted = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ConnectionAuthOptions) {}

  /** The authenticated user, once there is one. */
  get principal(): Principal | undefined {
    return this.current;
  }

  /** Accepts the upgrade's credential, or starts waiting for an auth message. */
  begin(preAuth: PreAuth | null): void {
    if (preAuth) {
      this.complete(preAuth.principal, preAuth.source);
    } else {
      this.timer = setTimeout(() => this.onTimeout(), this.o.authTimeoutMs);
    }
  }

  async handleMessage(msg: AuthMessage): Promise<void> {
    if (this.current) {
      // Exactly one auth_success per socket, and never a second connection count.
      this.o.sender.send(ServerMessages.error(new AppError(400, 'ALREADY_AUTHENTICATED', 'Already authenticated; auth message ignored')));
      return;
    }
    const outcome = await verifyCredential(this.o.authenticator, messageCredential(msg));
    if (!this.o.isAwaitingAuth()) return;
    if (!outcome.ok) {
      this.o.log.info({ source: 'message', code: outcome.error.code }, 'websocket authentication failed');
      this.o.sender.send(ServerMessages.authFailed('Invalid authentication credentials', outcome.error.code));
      this.o.close(CloseCodes.policyViolation, 'Authentication failed');
      return;
    }
    this.complete(outcome.principal, 'message');
  }

  /** Stops waiting for an auth message (the connection is closing). */
  stopTimer(): void {
    clearTimeout(this.timer);
  }

  /** Gives back this connection's place in the per-user connection count. Idempotent. */
  release(): void {
    if (this.counted && this.current) this.o.connections.release(this.current.id);
    this.counted = false;
  }

  private onTimeout(): void {
    if (this.current || !this.o.isAwaitingAuth()) return;
    this.o.sender.send(ServerMessages.authTimeout(this.o.authTimeoutMs));
    this.o.close(CloseCodes.policyViolation, 'Authentication timeout');
  }

  private complete(principal: Principal, source: AuthSource): void {
    const max = this.o.connections.limit;
    if (!this.o.connections.tryAcquire(principal.id)) {
      this.o.log.info({ owner: principal.id, max }, 'websocket refused: connection limit');
      this.o.sender.send(ServerMessages.authFailed(`Maximum ${max} connections per user exceeded`, 'CONNECTION_LIMIT'));
      this.o.close(CloseCodes.policyViolation, 'Connection limit exceeded');
      return;
    }
    this.counted = true;
    this.current = principal;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.o.onAuthenticated(source);
    this.o.log.info({ owner: principal.id, authMethod: principal.authMethod, source }, 'websocket authenticated');
    this.o.sender.send(ServerMessages.authSuccess(principal));
  }
}

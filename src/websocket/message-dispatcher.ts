import { AUTH_MESSAGE_TYPES, parseClientFrame, type ClientMessage } from '../contracts/ws-client-messages';
import type { AuthMessage, ConnectionAuth } from './connection-auth';
import { handleMessage } from './handlers/message-handlers';
import type { MessageContext } from './handlers/message-context';
import { ServerMessages } from './server-messages';

export interface MessageDispatcherOptions {
  auth: ConnectionAuth;
  context: MessageContext;
  /** A message passed the auth and rate checks (restarts the inactivity timer). */
  onActivity(): void;
  /** Before authentication, a frame other than an auth message: close 1008, no reply. */
  refuseUnauthenticated(): void;
  /**
   * An authenticated client's frame was refused (rate limit, bad JSON or fields): the reply is built by `reply`
   * only if it is sent (the connection closes instead when the client leaves its replies unread).
   */
  refuse(reply: () => object): void;
}

/**
 * Routes one raw client frame, in arrival order:
 * - before authentication only an auth message is parsed and handled (the pre-auth gate already bounded the
 *   frame's size and count); anything else closes the connection;
 * - once authenticated, every frame counts toward the owner's message budget before it is parsed, refused or
 *   not (the auth frame that opened the connection too); then it goes to the handler for its type
 *   (handlers/message-handlers.ts).
 */
export class MessageDispatcher {
  constructor(private readonly o: MessageDispatcherOptions) {}

  async dispatchFrame(frame: Buffer): Promise<void> {
    const ctx = this.o.context;
    const owner = this.o.auth.principal;
    if (!owner) {
      const parsed = parseClientFrame(frame);
      if (!parsed.ok || !isAuthMessage(parsed.message)) return this.o.refuseUnauthenticated();
      await this.o.auth.handleMessage(parsed.message);
      const now = this.o.auth.principal;
      // The auth frame counts toward the budget of the user it authenticated (nothing to refuse any more).
      if (now) ctx.rateLimits.consumeMessage(now.id);
      return;
    }
    const rate = ctx.rateLimits.consumeMessage(owner.id);
    if (!rate.ok) return this.o.refuse(() => ServerMessages.rateLimited('messages', rate.retryAfterSec));
    const parsed = parseClientFrame(frame);
    if (!parsed.ok) {
      const problem = parsed.problem;
      return this.o.refuse(() => ServerMessages.error(problem));
    }
    const msg = parsed.message;
    if (isAuthMessage(msg)) return this.o.auth.handleMessage(msg);
    this.o.onActivity();
    return handleMessage(ctx, owner, msg);
  }
}

function isAuthMessage(msg: ClientMessage): msg is AuthMessage {
  return AUTH_MESSAGE_TYPES.includes(msg.type);
}

import { AUTH_MESSAGE_TYPES, type ClientMessage } from './client-messages';
import type { AuthMessage, ConnectionAuth } from './connection-auth';
import { handleMessage } from './handlers/message-handlers';
import type { MessageContext } from './handlers/message-context';
import { ServerMessages } from './server-messages';

export interface MessageDispatcherOptions {
  auth: ConnectionAuth;
  context: MessageContext;
  /** A message passed the auth and rate checks (restarts the inactivity timer). */
  onActivity(): void;
}

/**
 * Routes one parsed client message: auth messages to the auth phase; anything else only once authenticated and
 * within the owner's message rate, to the handler for its type (handlers/message-handlers.ts).
 */
export class MessageDispatcher {
  constructor(private readonly o: MessageDispatcherOptions) {}

  async dispatch(msg: ClientMessage): Promise<void> {
    if (isAuthMessage(msg)) return this.o.auth.handleMessage(msg);
    const ctx = this.o.context;
    const owner = this.o.auth.principal;
    if (!owner) {
      ctx.sender.send(ServerMessages.authRequired());
      return;
    }
    const rate = ctx.rateLimits.consumeMessage(owner.id);
    if (!rate.ok) {
      ctx.sender.send(ServerMessages.rateLimited('messages', rate.retryAfterSec));
      return;
    }
    this.o.onActivity();
    return handleMessage(ctx, owner, msg);
  }
}

function isAuthMessage(msg: ClientMessage): msg is AuthMessage {
  return AUTH_MESSAGE_TYPES.includes(msg.type);
}

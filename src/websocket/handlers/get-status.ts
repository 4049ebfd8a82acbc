import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/**
 * `get_status`: the relayed (or named) session's status, with this owner's rate limits and the connection's numbers.
 * (Cluster mode: a session another live instance serves answers with that owner's status.)
 */
export const getStatus: MessageHandler<'get_status'> = async (ctx, owner, msg) => {
  const rateLimits = ctx.rateLimits.status(owner.id);
  const connection = ctx.connectionStats();
  const target = msg.session_id ?? ctx.slot.current?.session.id;
  if (target === undefined) {
    ctx.sender.send(ServerMessages.sessionStatus(null, { status: 'not_found', message: 'No active session', rateLimits, connection }));
    return;
  }
  const status = ctx.slot.current?.session.id === target ? ctx.service.sessionStatus(owner, target) : await ctx.service.statusAnywhere(owner, target);
  if (!ctx.isOpen()) return;
  ctx.sender.send(ServerMessages.sessionStatus(status.sessionId, { ...status, rateLimits, connection }));
};

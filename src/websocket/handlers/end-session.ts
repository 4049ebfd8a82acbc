import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/** `end_session`: ends the relayed session, or another of the owner's sessions by id. */
export const endSession: MessageHandler<'end_session'> = async (ctx, owner, msg) => {
  const b = ctx.slot.current;
  const target = msg.session_id ?? undefined;
  if (target === undefined || (b && target === b.session.id)) {
    if (!b) {
      ctx.sender.send(ServerMessages.sessionNotFound(null, 'No active session'));
      return;
    }
    // The session's `ended` event sends session_ended and unbinds.
    ctx.service.endLiveSession(b.session, 'client_end', 'Ended by the client');
    return;
  }
  // (Cluster mode: a session whose owner died is ended from its record, on whichever instance this socket is.)
  const r = await ctx.service.endSessionAnywhere(owner, target);
  if (!ctx.isOpen()) return;
  if (r.kind === 'not_found') ctx.sender.send(ServerMessages.sessionNotFound(r.sessionId));
  else ctx.sender.send(ServerMessages.sessionEnded(r.sessionId, r.info, r.alreadyEnded ? { alreadyEnded: true } : undefined));
};

import { SessionRegistry } from '../../services/session/session-registry';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/** `end_session`: ends the relayed session, or another of the owner's sessions by id. */
export const endSession: MessageHandler<'end_session'> = (ctx, owner, msg) => {
  const b = ctx.slot.current;
  const registry = ctx.service.registry;
  const target = msg.session_id ?? undefined;
  if (target === undefined || (b && target === b.session.id)) {
    if (!b) {
      ctx.sender.send(ServerMessages.sessionNotFound(null, 'No active session'));
      return;
    }
    // The session's `ended` event sends session_ended and unbinds.
    registry.endSession(b.session, 'client_end', 'Ended by the client');
    return;
  }
  const sessionId = SessionRegistry.validateId(target);
  const r = registry.end(owner, sessionId, 'client_end');
  if (r.kind === 'live') ctx.sender.send(ServerMessages.sessionEnded(sessionId, r.session.endedInfo!));
  else if (r.kind === 'ended') ctx.sender.send(ServerMessages.sessionEnded(sessionId, r.tombstone.info, { alreadyEnded: true }));
  else ctx.sender.send(ServerMessages.sessionNotFound(sessionId));
};

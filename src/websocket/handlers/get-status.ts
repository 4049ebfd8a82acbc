import { SessionRegistry } from '../../services/session/session-registry';
import { sessionEndedView } from '../../services/session/session-views';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/** `get_status`: the relayed (or named) session's status, with this owner's rate limits and the connection's numbers. */
export const getStatus: MessageHandler<'get_status'> = (ctx, owner, msg) => {
  const rateLimits = ctx.rateLimits.status(owner.id);
  const connection = ctx.connectionStats();
  const target = msg.session_id ?? ctx.slot.current?.session.id;
  if (target === undefined) {
    ctx.sender.send(ServerMessages.sessionStatus(null, { status: 'not_found', message: 'No active session', rateLimits, connection }));
    return;
  }
  const sessionId = SessionRegistry.validateId(target);
  const l = ctx.service.registry.lookup(owner, sessionId);
  if (l.kind === 'live') {
    ctx.sender.send(ServerMessages.sessionStatus(sessionId, { ...l.session.status(), rateLimits, connection }));
  } else if (l.kind === 'ended') {
    const t = l.tombstone;
    ctx.sender.send(
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
    ctx.sender.send(
      ServerMessages.sessionStatus(sessionId, { sessionId, status: 'not_found', message: 'Session not found or expired', rateLimits, connection }),
    );
  }
};

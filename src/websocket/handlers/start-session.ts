import type { Principal } from '../../services/auth/principal';
import type { PreparedSession } from '../../services/session-setup/session-planner';
import type { LiveSession } from '../../services/session/live-session';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/**
 * `start_session`: starts a session (or, with `resume`, attaches to the owner's live session of that id) and
 * relays it on this connection.
 */
export const startSession: MessageHandler<'start_session'> = async (ctx, owner, msg) => {
  const keepAlive = msg.keep_alive_on_close === true;
  const sessionId = msg.session_id || defaultSessionId(owner);
  const service = ctx.service;
  service.findLiveSession(owner, sessionId); // validates the id (400) before anything else happens
  const announce = (session: LiveSession, resumed: boolean) => {
    const mode = service.emulated ? 'emulated' : 'gemini';
    ctx.sender.send(ServerMessages.sessionStarted(session, { mode, resumed, keepAliveOnClose: keepAlive }));
  };

  const current = ctx.slot.current;
  if (msg.resume && current && current.session.id === sessionId) {
    // Already relaying it: just confirm (and update the keep-alive choice).
    ctx.slot.unbind(current);
    ctx.slot.bind(current.session, keepAlive);
    announce(current.session, true);
    ctx.slot.current?.catchUpToolCalls();
    return;
  }
  if (msg.resume) {
    // Here, or (cluster mode) taken over from an instance that died or handed it over in a rolling deploy, or
    // handed over by the live instance serving it (the client's socket there died, or it opened this one: the
    // newest socket wins, as on one instance).
    let found: LiveSession | undefined;
    try {
      found = await service.locate(owner, sessionId, { fromLiveOwner: true });
    } catch (err) {
      ctx.reportError(err, sessionId);
      return;
    }
    if (found && !found.ended) {
      // One live session per socket: the one relayed so far ends cleanly (session_ended is sent).
      if (current && current.session !== found) service.endLiveSession(current.session, 'replaced', 'Replaced by a new session on this connection');
      ctx.slot.bind(found, keepAlive);
      ctx.log.info({ sessionId }, 'session resumed on this connection');
      announce(found, true);
      ctx.slot.current?.catchUpToolCalls();
      return;
    }
  }

  // Checked before the running session is replaced: a refused start (bad options, budget) leaves it running.
  const { type: _type, session_id: _id, keep_alive_on_close: _keep, resume: _resume, ...options } = msg;
  let prepared: PreparedSession;
  try {
    prepared = await service.prepareSession(owner, { sessionId, options }, 'ws');
  } catch (err) {
    ctx.reportError(err, sessionId);
    return;
  }
  // One live session per socket, replaced atomically: the running one ends (session_ended is sent) only once the
  // new one has started; if the start fails (a cap, the upstream), it goes on and the client gets the error.
  const running = ctx.slot.current;
  let session: LiveSession;
  try {
    session = await service.startPrepared(prepared, { replacing: running?.session });
  } catch (err) {
    ctx.reportError(err, sessionId);
    return;
  }
  if (!ctx.isOpen()) {
    // The socket went away while the upstream connected.
    if (!keepAlive) service.endLiveSession(session, 'socket_closed', 'WebSocket closed before the session started');
    return;
  }
  ctx.slot.bind(session, keepAlive);
  announce(session, false);
  // The model may have spoken with the setup already (the session heard it; this socket was not bound yet).
  ctx.slot.current?.catchUpTurn();
};

/** `ws_<user>_<ms>_<rand>`: a valid session id for clients that send none. */
function defaultSessionId(owner: Principal): string {
  const user = String(owner.userId).replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return `ws_${user}_${Date.now()}_${Math.random().toString(36).slice(2, 8)}`;
}

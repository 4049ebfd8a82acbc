import type { Principal } from '../../services/auth/principal';
import type { ClientMessageOf } from '../../contracts/ws-client-messages';
import { ServerMessages } from '../server-messages';
import { audioChunk } from './audio-chunk';
import { getTranscript, getUsage } from './conversation-reads';
import { endSession } from './end-session';
import { getStatus } from './get-status';
import type { MessageContext, MessageHandler, SessionMessageType } from './message-context';
import { activityEnd, activityStart, interrupt, sendImage, sendText, toolResponse } from './model-input';
import { startSession } from './start-session';

/** One handler per message type of an authenticated connection; the compiler checks that none is missing. */
export const messageHandlers: { [T in SessionMessageType]: MessageHandler<T> } = {
  start_session: startSession,
  audio_chunk: audioChunk,
  end_session: endSession,
  get_status: getStatus,
  get_transcript: getTranscript,
  get_usage: getUsage,
  get_rate_limits: (ctx, owner) => {
    ctx.sender.send(ServerMessages.rateLimitStatus(ctx.rateLimits.status(owner.id)));
  },
  text: sendText,
  image: sendImage,
  interrupt,
  tool_response: toolResponse,
  activity_start: activityStart,
  activity_end: activityEnd,
  ping: (ctx) => {
    ctx.sender.send(ServerMessages.pong());
  },
};

/** Runs the handler for `msg.type`. */
export function handleMessage(ctx: MessageContext, owner: Principal, msg: ClientMessageOf<SessionMessageType>): void | Promise<void> {
  // TypeScript cannot relate `messageHandlers[msg.type]` to `msg` through the union, hence the cast.
  const handler = messageHandlers[msg.type] as MessageHandler<SessionMessageType>;
  return handler(ctx, owner, msg);
}

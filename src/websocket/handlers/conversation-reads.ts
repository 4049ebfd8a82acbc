import { Errors } from '../../util/app-error';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/**
 * `get_transcript`: the relayed (or named) session's transcript; another owner's id answers like an unknown one.
 * (Cluster mode: a session another live instance serves is read from that owner, fresh.)
 */
export const getTranscript: MessageHandler<'get_transcript'> = async (ctx, owner, msg) => {
  const target = msg.session_id ?? ctx.slot.current?.session.id;
  if (target === undefined) throw Errors.sessionNotFound();
  const data = await ctx.service.transcriptAnywhere(owner, target);
  if (ctx.isOpen()) ctx.sender.send(ServerMessages.transcript(data.sessionId, data));
};

/** `get_usage`: the caller's own usage and daily budget. */
export const getUsage: MessageHandler<'get_usage'> = async (ctx, owner) => {
  const data = await ctx.service.usageOf(owner);
  if (ctx.isOpen()) ctx.sender.send(ServerMessages.usage(data));
};

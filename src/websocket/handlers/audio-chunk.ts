import type { AdmittedAudio } from '../../services/live-audio-service';
import { AUDIO_RATE_LIMITED } from '../../services/limits/limit-errors';
import { isAppError } from '../../util/app-error';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/**
 * `audio_chunk`: the service validates the chunk and admits it (the same rule as REST `/transcribe`), then feeds it
 * to the relayed session. A refusal answers `rate_limit_exceeded`; bad input answers `error`.
 */
export const audioChunk: MessageHandler<'audio_chunk'> = (ctx, owner, msg) => {
  const b = ctx.slot.require();
  const service = ctx.service;
  let admitted: AdmittedAudio;
  try {
    admitted = service.admitAudio(owner, { audioData: msg.audio_data, format: msg.format, sampleRate: msg.sample_rate, channels: msg.channels });
  } catch (err) {
    if (isAppError(err) && err.code === AUDIO_RATE_LIMITED) ctx.sender.send(ServerMessages.rateLimited('audio', err.extra.retryAfterSec ?? 1));
    else ctx.reportError(err, b.session.id);
    return;
  }
  // Called synchronously in message order: LiveSession queues chunks in call order, so the decoder sees the
  // stream in arrival order while the next messages (e.g. interrupt) are handled at once.
  ctx.track(() =>
    service.pushAudio(b.session, admitted.chunk, admitted.desc).catch((err) => {
      if (b.active) ctx.reportError(err, b.session.id);
    }),
  );
};

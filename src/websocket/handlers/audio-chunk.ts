import type { ChunkDescriptor } from '../../services/audio/audio-types';
import { base64DecodedLength } from '../../util/base64';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/** `audio_chunk`: checks the audio rate limit, validates the chunk and feeds it to the relayed session. */
export const audioChunk: MessageHandler<'audio_chunk'> = (ctx, owner, msg) => {
  const b = ctx.slot.require();
  const rate = ctx.rateLimits.consumeAudio(owner.id, base64DecodedLength(msg.audio_data));
  if (!rate.ok) {
    ctx.sender.send(ServerMessages.rateLimited('audio', rate.retryAfterSec));
    return;
  }
  const service = ctx.service;
  let parsed: { chunk: Buffer; desc: ChunkDescriptor };
  try {
    parsed = service.parseAudio({ audioData: msg.audio_data, format: msg.format, sampleRate: msg.sample_rate, channels: msg.channels });
  } catch (err) {
    ctx.reportError(err, b.session.id);
    return;
  }
  // Called synchronously in message order: LiveSession queues chunks in call order, so the decoder sees the
  // stream in arrival order while the next messages (e.g. interrupt) are handled at once.
  ctx.track(() =>
    service.pushAudio(b.session, parsed.chunk, parsed.desc).catch((err) => {
      if (b.active) ctx.reportError(err, b.session.id);
    }),
  );
};

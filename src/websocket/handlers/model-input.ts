import { AppError } from '../../util/app-error';
import { decodeBase64Strict } from '../../util/strict-base64';
import { ServerMessages } from '../server-messages';
import type { MessageHandler } from './message-context';

/** Input for the relayed session's model: typed text, camera/screen frames, and barge-in. */

/** `text`: typed user input. */
export const sendText: MessageHandler<'text'> = (ctx, _owner, msg) => {
  ctx.service.sendText(ctx.slot.require().session, msg.text);
};

/** `image`: a JPEG or PNG frame; its type is read from its bytes, and a `mime_type` that says otherwise is refused. */
export const sendImage: MessageHandler<'image'> = (ctx, _owner, msg) => {
  const b = ctx.slot.require();
  const bytes = decodeBase64Strict(msg.image_data, 'image_data');
  const sniffed = sniffImage(bytes);
  if (!sniffed) throw new AppError(415, 'IMAGE_UNSUPPORTED_FORMAT', 'Unsupported image: send a JPEG or PNG frame');
  if (msg.mime_type && msg.mime_type !== sniffed) {
    throw new AppError(400, 'INVALID_FIELD', `Invalid field mime_type: the image is ${sniffed}`);
  }
  ctx.service.sendImage(b.session, bytes, sniffed);
};

/** `interrupt`: stops the current reply at once and confirms with `interrupted`. */
export const interrupt: MessageHandler<'interrupt'> = (ctx) => {
  const b = ctx.slot.require();
  const snap = ctx.service.interrupt(b.session);
  ctx.sender.send(ServerMessages.interrupted(b.session.id, snap.turnId, 'client'));
};

/**
 * `activity_start` / `activity_end` (manual activity detection): relayed upstream after the audio chunks sent before
 * it, nothing answered; refused (`error` 409 `MANUAL_ACTIVITY_DISABLED`, `ACTIVITY_NOT_STARTED`,
 * `ACTIVITY_ALREADY_STARTED`, 429 `ACTIVITY_BACKLOG_FULL`) without reaching the model. Handled in message order, like
 * `audio_chunk`, so the marker's place in the audio is the order the client sent them in.
 */
export const activityStart: MessageHandler<'activity_start'> = (ctx) => {
  ctx.service.activity(ctx.slot.require().session, 'start');
};

export const activityEnd: MessageHandler<'activity_end'> = (ctx) => {
  ctx.service.activity(ctx.slot.require().session, 'end');
};

/** The image type from its magic bytes. */
export function sniffImage(b: Buffer): 'image/jpeg' | 'image/png' | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  return null;
}

/**
 * `tool_response`: answers to the model's function calls. Checked by the session's ledger (409 unknown / not
 * pending, 413 too large; an error message then, nothing sent); confirmed with `tool_response_accepted`.
 */
export const toolResponse: MessageHandler<'tool_response'> = (ctx, _owner, msg) => {
  const b = ctx.slot.require();
  const answered = ctx.service.answerToolCalls(b.session, msg.responses);
  ctx.sender.send(ServerMessages.toolResponseAccepted(b.session.id, answered));
};

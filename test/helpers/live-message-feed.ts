import type { LiveServerMessage } from '@google/genai';
import type { Transcript } from '../../src/services/conversation/transcript';

/** The events a conversation record listens to (what `Transcript` implements). */
export type ConversationSink = Pick<Transcript, 'userText' | 'replyText' | 'interrupted' | 'turnComplete' | 'usage'>;

/**
 * Feeds one Gemini Live server message into a conversation sink, in the order its parts mean: interruption,
 * the user's words, the reply (transcription or text parts), the turn's end, then its usage (which arrives with
 * `turnComplete`, or alone: a connection's setup).
 */
export function feedServerMessage(msg: LiveServerMessage, sink: ConversationSink): void {
  const sc = msg.serverContent;
  if (sc) {
    if (sc.interrupted) sink.interrupted();
    if (sc.inputTranscription?.text) sink.userText(sc.inputTranscription.text);
    for (const part of sc.modelTurn?.parts ?? []) {
      if (typeof part.text === 'string' && !part.thought) sink.replyText(part.text);
    }
    if (sc.outputTranscription?.text) sink.replyText(sc.outputTranscription.text);
    if (sc.turnComplete) sink.turnComplete();
  }
  if (msg.usageMetadata) sink.usage(msg.usageMetadata);
}

import { pcmToWav } from '../audio/wav-writer';
import { REPLY_SAMPLE_RATE } from '../audio/audio-types';
import type { LiveSession, SessionEndInfo } from './live-session';
import type { TurnSnapshot } from './turn-tracker';

/**
 * The JSON shapes clients read (contract.md §1, §2.3), built in one place for REST and WebSocket.
 */

export function sessionStartedView(s: LiveSession) {
  return {
    sessionId: s.id,
    status: 'active' as const,
    startTime: s.startTime.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    model: s.params.model,
    requestedModel: s.params.requestedModel ?? null,
    responseModality: s.params.responseModality,
    inputTranscription: s.params.inputTranscription,
    outputTranscription: s.params.outputTranscription,
    /** The effective setup (what was sent upstream, where each value came from; no secrets). */
    setup: s.conversation?.echo ?? null,
  };
}

export function sessionListItemView(s: LiveSession) {
  return {
    sessionId: s.id,
    status: 'active' as const,
    startTime: s.startTime.toISOString(),
    lastActivity: s.lastActivity.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    model: s.params.model,
    responseModality: s.params.responseModality,
    transport: s.params.transport,
    userId: s.params.owner.userId,
  };
}

export interface TranscriptionData {
  success: true;
  sessionId: string;
  /** The user's words of the current or last turn (same as inputTranscription). */
  transcript: string;
  inputTranscription: string;
  outputTranscription: string;
  /** The model's reply text of that turn. */
  response: string;
  turnComplete: boolean;
  interrupted: boolean;
  turnId: number;
  audioBuffer: string | null;
  confidence: null;
  timestamp: string;
  model: string;
  responseModality: 'text' | 'audio';
}

export function transcriptionView(s: LiveSession, snap: TurnSnapshot = s.snapshot(), withAudio = true): TranscriptionData {
  let audioBuffer: string | null = null;
  if (withAudio && s.params.responseModality === 'audio' && snap.replyAudioBytes > 0) {
    audioBuffer = pcmToWav(s.replyAudio(), REPLY_SAMPLE_RATE, 1).toString('base64');
  }
  return {
    success: true,
    sessionId: s.id,
    transcript: snap.userText,
    inputTranscription: snap.userText,
    outputTranscription: snap.outputTranscription,
    response: snap.replyText,
    turnComplete: snap.turnComplete,
    interrupted: snap.interrupted,
    turnId: snap.turnId,
    audioBuffer,
    confidence: null,
    timestamp: new Date().toISOString(),
    model: s.params.model,
    responseModality: s.params.responseModality,
  };
}

export function sessionEndedView(sessionId: string, info: SessionEndInfo) {
  return {
    sessionId,
    status: info.reason === 'expired' ? ('expired' as const) : ('ended' as const),
    reason: info.reason,
    message: info.message,
    endTime: info.endTime,
    duration: info.durationMs,
  };
}

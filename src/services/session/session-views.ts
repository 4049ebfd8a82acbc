import type { GroundingInfo } from '../tools/tool-types';
import { pcmToWav } from '../audio/wav-writer';
import { REPLY_SAMPLE_RATE } from '../audio/audio-types';
import type { LiveSession, LiveSessionStatus, SessionEndInfo } from './live-session';
import type { Tombstone } from './session-registry';
import type { TurnSnapshot } from './turn-tracker';
import { SESSION_NOT_FOUND_MESSAGE } from '../../util/app-error';

/**
 * The JSON shapes clients read (README "API"; published at /openapi.json), built in one place for REST and WebSocket.
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
  /** Function calls waiting for the client's answer (`POST /session/tool-response`), in the model's order. */
  toolCalls: { id: string; name: string; args: Record<string, unknown> }[];
  /** Google Search grounding of this turn's reply (sessions with `google_search`), else null. */
  grounding: GroundingInfo | null;
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
    toolCalls: s.tools.pending().map(({ id, name, args }) => ({ id, name, args })),
    grounding: s.grounding,
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


/** A session id the caller does not own, never had, or whose tombstone has lapsed. */
export interface SessionNotFoundView {
  sessionId: string;
  status: 'not_found';
  message: string;
}

export function sessionNotFoundView(sessionId: string): SessionNotFoundView {
  return { sessionId, status: 'not_found', message: SESSION_NOT_FOUND_MESSAGE };
}

/** The status of a session that ended recently (its tombstone). */
export type EndedSessionStatus = ReturnType<typeof sessionEndedView> &
  Pick<Tombstone, 'startTime' | 'model' | 'responseModality' | 'transport' | 'setup' | 'usage'> & {
    endReason: string;
  };

/** An ended session's status: the live status's identity, `setup` and `usage` (as they were at the end), and how it ended. */
export function endedSessionStatusView(sessionId: string, t: Tombstone): EndedSessionStatus {
  return {
    ...sessionEndedView(sessionId, t.info),
    startTime: t.startTime,
    model: t.model,
    responseModality: t.responseModality,
    transport: t.transport,
    endReason: t.info.reason,
    setup: t.setup,
    usage: t.usage,
  };
}

/** What a status request answers: a live session's status, a tombstone, or not found. */
export type SessionStatus = LiveSessionStatus | EndedSessionStatus | SessionNotFoundView;

/** What ending a session by id did. */
export type EndSessionOutcome =
  | { kind: 'ended'; sessionId: string; info: SessionEndInfo; alreadyEnded: boolean }
  | { kind: 'not_found'; sessionId: string };

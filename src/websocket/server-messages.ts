import type { GroundingInfo, ToolCallRequest } from '../services/tools/tool-types';
import type { Principal } from '../services/auth/principal';
import type { LiveSession, SessionEndInfo } from '../services/session/live-session';
import { sessionEndedView, sessionStartedView, transcriptionView } from '../services/session/session-views';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { isAppError, SESSION_NOT_FOUND_MESSAGE } from '../util/app-error';
import type { MessageProblem } from '../contracts/ws-client-messages';
import type { WsRateLimitStatus } from '../services/limits/ws-rate-limits-adapter';

/**
 * Every message the server sends on `/ws/live-audio`, built in one place (README "WebSocket API", plus the streaming
 * events `audio_output`, `turn_complete`, `interrupted`, `session_detached` and `pong`).
 */

/** Close codes used by the server (RFC 6455 §7.4.1). 1009 (frame too large) is sent by `ws` itself. */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;

export const ServerMessages = {
  connected: (authenticated: boolean) => ({
    type: 'connected' as const,
    message: authenticated
      ? 'WebSocket connection established. Authenticated by the connection request.'
      : 'WebSocket connection established. Send auth message to authenticate.',
    required_auth: true as const,
    authenticated,
  }),

  authSuccess: (p: Principal) => ({
    type: 'auth_success' as const,
    message: 'Authentication successful',
    user: { id: p.userId, username: p.username },
  }),

  authFailed: (error: string, code: string) => ({ type: 'auth_failed' as const, error, code }),

  authTimeout: (ms: number) => ({
    type: 'auth_timeout' as const,
    error: `Authentication required within ${Math.round(ms / 100) / 10} seconds`,
    code: 'AUTH_TIMEOUT',
  }),

  inactivityTimeout: () => ({
    type: 'inactivity_timeout' as const,
    error: 'Connection closed due to inactivity',
    code: 'INACTIVITY_TIMEOUT',
  }),

  rateLimited: (what: 'messages' | 'audio', retryAfterSec: number) => ({
    type: 'rate_limit_exceeded' as const,
    error:
      what === 'messages'
        ? 'Message rate limit exceeded. Please slow down.'
        : 'Audio data rate limit exceeded. Please reduce audio frequency.',
    code: what === 'messages' ? 'MESSAGE_RATE_LIMITED' : 'AUDIO_RATE_LIMITED',
    retryAfter: retryAfterSec,
  }),

  sessionStarted: (s: LiveSession, o: { mode: string; resumed: boolean; keepAliveOnClose: boolean }) => ({
    type: 'session_started' as const,
    session_id: s.id,
    data: { ...sessionStartedView(s), mode: o.mode, resumed: o.resumed, keepAliveOnClose: o.keepAliveOnClose },
  }),

  /** The turn's cumulative state; `is_final`: the user's words of this turn will not change any more. */
  transcription: (s: LiveSession, snap: TurnSnapshot) => ({
    type: 'transcription_result' as const,
    session_id: s.id,
    is_final: snap.userFinal,
    data: transcriptionView(s, snap, false),
  }),

  /** A new piece of the reply text, sent before the `transcription_result` carrying the whole reply so far. */
  replyDelta: (sessionId: string, turnId: number, text: string) => ({
    type: 'reply_delta' as const,
    session_id: sessionId,
    data: { turnId, text },
  }),

  audioOutput: (sessionId: string, pcm: Buffer, sampleRate: number) => ({
    type: 'audio_output' as const,
    session_id: sessionId,
    data: pcm.toString('base64'),
    sample_rate: sampleRate,
  }),

  turnComplete: (s: LiveSession, snap: TurnSnapshot) => ({
    type: 'turn_complete' as const,
    session_id: s.id,
    data: transcriptionView(s, snap, false),
  }),

  interrupted: (sessionId: string, turnId: number, by: 'client' | 'upstream') => ({
    type: 'interrupted' as const,
    session_id: sessionId,
    data: { turnId, by },
  }),

  toolCall: (sessionId: string, turnId: number, calls: ToolCallRequest[]) => ({
    type: 'tool_call' as const,
    session_id: sessionId,
    turn_id: turnId,
    calls: calls.map(({ id, name, args }) => ({ id, name, args })),
  }),

  toolCallCancelled: (sessionId: string, ids: string[], reason: 'cancelled' | 'dropped') => ({
    type: 'tool_call_cancelled' as const,
    session_id: sessionId,
    ids,
    reason,
  }),

  toolCallTimedOut: (sessionId: string, ids: string[], timeoutMs: number) => ({
    type: 'tool_call_timed_out' as const,
    session_id: sessionId,
    ids,
    timeout_ms: timeoutMs,
  }),

  toolResponseDropped: (sessionId: string, ids: string[]) => ({ type: 'tool_response_dropped' as const, session_id: sessionId, ids }),

  toolResponseAccepted: (sessionId: string, answered: { id: string; name: string; delivery: 'sent' | 'held' }[]) => ({
    type: 'tool_response_accepted' as const,
    session_id: sessionId,
    answered,
  }),

  grounding: (sessionId: string, turnId: number, data: GroundingInfo) => ({ type: 'grounding' as const, session_id: sessionId, turn_id: turnId, data }),

  sessionEnded: (sessionId: string, info: SessionEndInfo, extra: Record<string, unknown> = {}) => ({
    type: 'session_ended' as const,
    session_id: sessionId,
    data: { ...sessionEndedView(sessionId, info), ...extra },
  }),

  sessionNotFound: (sessionId: string | null, message = SESSION_NOT_FOUND_MESSAGE) => ({
    type: 'session_ended' as const,
    session_id: sessionId,
    data: { sessionId, status: 'not_found' as const, message },
  }),

  /**
   * Cluster mode, rolling deploy: this instance is going away and handed the session over; reconnect (to any
   * instance) and send `start_session` with `resume: true` and the same `session_id`.
   */
  reconnect: (sessionId: string) => ({
    type: 'reconnect' as const,
    session_id: sessionId,
    data: { sessionId, action: 'reconnect and resume' },
  }),

  /** Another connection of the same owner resumed this session; this socket gets nothing more for it. */
  sessionDetached: (sessionId: string) => ({
    type: 'session_detached' as const,
    session_id: sessionId,
    data: { sessionId, reason: 'resumed_by_another_connection' },
  }),

  sessionStatus: (sessionId: string | null, data: Record<string, unknown>) => ({
    type: 'session_status' as const,
    session_id: sessionId,
    data,
  }),

  /** `get_transcript`'s answer: the same `data` as REST `GET /session/:id/transcript`. */
  transcript: (sessionId: string, data: object) => ({ type: 'transcript' as const, session_id: sessionId, data }),

  /** `get_usage`'s answer: the same `data` as REST `GET /usage`. */
  usage: (data: object) => ({ type: 'usage' as const, data }),

  rateLimitStatus: (status: WsRateLimitStatus) => ({ type: 'rate_limit_status' as const, data: status }),

  pong: () => ({ type: 'pong' as const, timestamp: new Date().toISOString() }),

  /** A client problem: an AppError (code, message, retryAfter) or a refused frame. */
  error: (err: unknown, sessionId?: string | null) => {
    const base: Record<string, unknown> = { type: 'error' };
    if (isAppError(err)) {
      base.error = err.message;
      base.code = err.code;
      if (err.extra.fields) base.fields = err.extra.fields;
      if (err.extra.retryAfterSec !== undefined) base.retryAfter = err.extra.retryAfterSec;
    } else if (isProblem(err)) {
      base.error = err.error;
      base.code = err.code;
      if (err.messageType) base.message_type = err.messageType;
      if (err.fields) base.fields = err.fields;
    } else {
      base.error = 'Failed to process WebSocket message';
      base.code = 'INTERNAL_ERROR';
    }
    if (sessionId !== undefined) base.session_id = sessionId;
    return base;
  },
};

function isProblem(e: unknown): e is MessageProblem {
  return typeof e === 'object' && e !== null && typeof (e as MessageProblem).code === 'string' && typeof (e as MessageProblem).error === 'string';
}

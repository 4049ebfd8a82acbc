import { AppError } from '../../util/app-error';

/** Every limit that can refuse a client, with its code and message (the same on REST and WebSocket). */
export type LimitKind =
  | 'requests'
  | 'transcriptions'
  | 'session_starts'
  | 'audio_seconds'
  | 'audio_bytes'
  | 'ws_messages'
  | 'unauthenticated_ip'
  | 'ws_connects_ip';

/** The code of a refused audio chunk or a stream cut at the audio budget (seconds or bytes). */
export const AUDIO_RATE_LIMITED = 'AUDIO_RATE_LIMITED';

const TEXT: Record<LimitKind, { code: string; message: (limit: number) => string }> = {
  requests: { code: 'RATE_LIMITED', message: () => 'Too many requests to Live Audio API. Please try again later.' },
  transcriptions: { code: 'TRANSCRIBE_RATE_LIMITED', message: () => 'Too many transcription requests. Please try again later.' },
  session_starts: { code: 'SESSION_START_RATE_LIMITED', message: () => 'Too many session creation requests. Please try again later.' },
  audio_seconds: {
    code: AUDIO_RATE_LIMITED,
    message: (n) => `Audio rate limit exceeded (${n} seconds of audio per minute). Please reduce audio frequency.`,
  },
  audio_bytes: { code: AUDIO_RATE_LIMITED, message: () => 'Audio data rate limit exceeded. Please reduce audio frequency.' },
  ws_messages: { code: 'MESSAGE_RATE_LIMITED', message: () => 'Message rate limit exceeded. Please slow down.' },
  unauthenticated_ip: {
    code: 'IP_RATE_LIMITED',
    message: () => 'Too many unauthenticated requests from this address. Please try again later.',
  },
  ws_connects_ip: { code: 'CONNECTION_RATE_LIMITED', message: () => 'Too many connection attempts from this IP. Please try again later.' },
};

/** 429 `{success:false, error, code, retryAfter}` + `Retry-After` (via the error handler). */
export function rateLimitError(kind: LimitKind, limit: number, retryAfterSec: number): AppError {
  const t = TEXT[kind];
  return new AppError(429, t.code, t.message(limit), { retryAfterSec: Math.max(1, Math.ceil(retryAfterSec)) });
}

import { ApiError, NetworkError } from './api-client';
import type { PlainError } from './types';

/**
 * Turns whatever went wrong into a sentence a person can act on. The server's own message is kept when it is
 * already plain; its code is shown beside it.
 */

const KEY_HELP = 'Paste the API key the server printed when it started (it begins with ak_).';

const BY_CODE: Record<string, (serverMsg: string) => string> = {
  AUTH_REQUIRED: () => `No API key was sent. ${KEY_HELP}`,
  INVALID_API_KEY: () => `The server did not accept this API key. ${KEY_HELP}`,
  INVALID_TOKEN: () => `The server did not accept this token. ${KEY_HELP}`,
  SESSION_NOT_FOUND: () => 'The session no longer exists on the server (it expired or was ended). Press Start to begin a new one.',
  SESSION_EXPIRED: () => 'The session has ended on the server (time limit, idle timeout or Stop). Press Start to begin a new one.',
  TOO_MANY_USER_SESSIONS: (m) => `${m} Stop other tabs that use this key, or wait a minute.`,
  TOO_MANY_SESSIONS: (m) => m,
  RATE_LIMITED: (m) => `The server asks to slow down: ${m}`,
  UPSTREAM_UNAVAILABLE: (m) => `The server could not reach Gemini Live. ${m}`,
  UPSTREAM_FAILED: (m) => `The connection between the server and Gemini Live failed. ${m}`,
  AUDIO_UNSUPPORTED_FORMAT: (m) => `The server cannot use this audio format. ${m}`,
  AUDIO_INVALID: (m) => `The server could not decode the microphone audio. ${m}`,
  AUDIO_DECODE_FAILED: (m) => `The server could not decode the microphone audio. ${m}`,
  AUDIO_STREAM_NO_HEADER: (m) => `The server missed the start of the recording, so it cannot decode it. Press Stop, then Start. ${m}`,
  AUDIO_DECODER_CRASHED: (m) => `The server's audio decoder stopped. Press Stop, then Start. ${m}`,
  PAYLOAD_TOO_LARGE: (m) => `An audio chunk was too large for the server. ${m}`,
  SERVER_SHUTTING_DOWN: () => 'The server is restarting or shutting down. Try again in a moment.',
};

export function fromApiError(err: unknown, doing: string): PlainError {
  if (err instanceof NetworkError) {
    return { message: `Could not reach the server while trying to ${doing}. Is it still running?`, code: 'NETWORK' };
  }
  if (err instanceof ApiError) {
    const byCode = err.code ? BY_CODE[err.code] : undefined;
    if (byCode) return { message: byCode(err.message), code: err.code };
    if (err.status === 401) return { message: `The server did not accept this API key (${err.message}). ${KEY_HELP}`, code: err.code };
    if (err.status === 429) return { message: `Too many requests: ${err.message}`, code: err.code };
    if (err.status >= 500) return { message: `The server failed to ${doing}: ${err.message}`, code: err.code ?? `HTTP_${err.status}` };
    return { message: `Could not ${doing}: ${err.message}`, code: err.code ?? `HTTP_${err.status}` };
  }
  return fromUnknown(err, doing);
}

/** getUserMedia / MediaRecorder / AudioContext failures. */
export function fromMicError(err: unknown): PlainError {
  const name = err instanceof DOMException || err instanceof Error ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return {
        message: 'Microphone access was blocked. Allow the microphone for this page (the icon in the address bar) and press Start again.',
        code: name,
      };
    case 'NotFoundError':
      return { message: 'No microphone was found. Connect one and press Start again.', code: name };
    case 'NotReadableError':
    case 'AbortError':
      return { message: 'The microphone could not be opened; another application may be using it.', code: name };
    case 'OverconstrainedError':
      return { message: 'The selected microphone is not available any more. Pick another one in the list.', code: name };
    case 'NotSupportedError':
      return { message: 'This browser cannot record audio in the format this mode needs. Try the other transport.', code: name };
    default:
      return fromUnknown(err, 'use the microphone');
  }
}

/** Server → client WebSocket messages that carry an error. */
export function fromSocketMessage(type: string, error: string | undefined, code: string | undefined): PlainError {
  const msg = error ?? 'unknown error';
  switch (type) {
    case 'auth_failed':
      return { message: `The server did not accept this API key (${msg}). ${KEY_HELP}`, code: code ?? 'AUTH_FAILED' };
    case 'auth_required':
      return { message: `The server asked for authentication first (${msg}).`, code: code ?? 'AUTH_REQUIRED' };
    case 'auth_timeout':
      return { message: 'The server closed the connection because authentication took too long.', code: code ?? 'AUTH_TIMEOUT' };
    case 'rate_limit_exceeded':
      return { message: `The server asks to slow down: ${msg}`, code: code ?? 'RATE_LIMITED' };
    case 'inactivity_timeout':
      return { message: 'The server closed the connection after a long silence.', code: code ?? 'INACTIVITY_TIMEOUT' };
    default: {
      const byCode = code ? BY_CODE[code] : undefined;
      return { message: byCode ? byCode(msg) : msg, code };
    }
  }
}

/** A WebSocket closed without the session having ended normally. */
export function fromSocketClose(code: number, reason: string): PlainError {
  const why = reason ? ` (${reason})` : '';
  switch (code) {
    case 1006:
      return { message: 'The connection to the server was lost. Is the server still running?', code: 'WS_1006' };
    case 1008:
      return { message: `The server refused the connection${why}. Check the API key.`, code: 'WS_1008' };
    case 1009:
      return { message: `A message was too large for the server${why}.`, code: 'WS_1009' };
    case 1011:
      return { message: `The server hit an internal error${why}.`, code: 'WS_1011' };
    case 1012:
    case 1001:
      return { message: `The server is restarting or going away${why}. Press Start again in a moment.`, code: `WS_${code}` };
    default:
      return { message: `The connection to the server closed (code ${code})${why}.`, code: `WS_${code}` };
  }
}

export function fromUnknown(err: unknown, doing: string): PlainError {
  const detail = err instanceof Error ? err.message : String(err);
  return { message: `Something went wrong while trying to ${doing}: ${detail}` };
}

/** An Error that carries the PlainError to show (thrown by `Conversation.start`). */
export class PlainFailure extends Error {
  constructor(readonly plain: PlainError) {
    super(plain.message);
    this.name = 'PlainFailure';
  }
}

export function toPlain(err: unknown, doing: string): PlainError {
  if (err instanceof PlainFailure) return err.plain;
  if (err instanceof ApiError || err instanceof NetworkError) return fromApiError(err, doing);
  return fromUnknown(err, doing);
}

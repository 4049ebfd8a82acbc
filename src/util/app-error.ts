/**
 * The one error type that reaches HTTP and WebSocket clients. Everything else is an internal error and is
 * reported as a generic 500 without its message.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** `fields`: the offending request fields, named in the error body (e.g. unknown or unsupported options). */
    readonly extra: { retryAfterSec?: number; details?: unknown; fields?: string[] } = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** The one text of every "no such session" answer (404 bodies, `not_found` views, WebSocket messages). */
export const SESSION_NOT_FOUND_MESSAGE = 'Session not found or expired';

/** Common client errors, so that codes and wording stay identical across REST and WebSocket. */
export const Errors = {
  missingField: (field: string) => new AppError(400, 'MISSING_FIELD', `Missing required field: ${field}`),
  invalidField: (field: string, why: string) => new AppError(400, 'INVALID_FIELD', `Invalid field ${field}: ${why}`),
  invalidSessionId: () => new AppError(400, 'INVALID_SESSION_ID', 'Invalid session_id: use 1-128 characters from A-Z, a-z, 0-9, _ and -'),
  sessionNotFound: () => new AppError(404, 'SESSION_NOT_FOUND', SESSION_NOT_FOUND_MESSAGE),
  sessionExpired: () => new AppError(404, 'SESSION_EXPIRED', SESSION_NOT_FOUND_MESSAGE),
  tooLarge: (what: string, maxBytes: number) =>
    new AppError(413, 'PAYLOAD_TOO_LARGE', `${what} too large (max ${Math.round(maxBytes / 1024 / 1024)}MB)`),
  tooManySessions: (scope: 'user' | 'global', retryAfterSec: number) =>
    new AppError(
      429,
      scope === 'user' ? 'TOO_MANY_USER_SESSIONS' : 'TOO_MANY_SESSIONS',
      scope === 'user'
        ? 'Too many live sessions for this user. End one or try again later.'
        : 'Too many concurrent sessions. Please try again later.',
      { retryAfterSec },
    ),
  shuttingDown: () => new AppError(503, 'SERVER_SHUTTING_DOWN', 'Server is shutting down; try again shortly'),
} as const;

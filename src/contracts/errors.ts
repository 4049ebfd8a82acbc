import { z } from 'zod';

/**
 * Every `code` a client can receive in an error (REST bodies and WebSocket `error`/refusal messages). The published
 * schemas list them; test/contracts/published-schemas.test.ts validates real answers against that list.
 */
export const ERROR_CODES = [
  // Input
  'BAD_REQUEST',
  'INVALID_BODY',
  'INVALID_JSON',
  'INVALID_MESSAGE',
  'INVALID_FIELD',
  'MISSING_FIELD',
  'INVALID_SESSION_ID',
  /** audio_data / image_data that is not base64 (or a data: URL that is not). */
  'INVALID_BASE64',
  'INVALID_PATH',
  'JSON_TOO_DEEP',
  'JSON_TOO_COMPLEX',
  'UNSUPPORTED_ENCODING',
  /** A dialect's batch route got neither multipart/form-data nor an audio/* body. */
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'HEADERS_TOO_LARGE',
  'UNKNOWN_MESSAGE_TYPE',
  'NOT_FOUND',
  'REQUEST_TIMEOUT',
  'REQUEST_ABORTED',
  // Authentication and origin
  'AUTH_REQUIRED',
  'AUTH_FAILED',
  'AUTH_TIMEOUT',
  'INVALID_API_KEY',
  'INVALID_TOKEN',
  'ALREADY_AUTHENTICATED',
  'CORS_ORIGIN_DENIED',
  'METRICS_AUTH_REQUIRED',
  // Sessions
  'SESSION_NOT_FOUND',
  'SESSION_EXPIRED',
  'NO_ACTIVE_SESSION',
  'TOO_MANY_SESSIONS',
  'TOO_MANY_USER_SESSIONS',
  'TOO_MANY_CONNECTIONS',
  'CONNECTION_LIMIT',
  'INACTIVITY_TIMEOUT',
  // Conversations: setup, profiles, budgets, model caps
  'UNSUPPORTED_FOR_MODEL',
  'PROFILE_LOCKED',
  'UNKNOWN_PROFILE',
  'TOKEN_BUDGET_EXHAUSTED',
  'SESSION_AUDIO_LIMIT_REACHED',
  // Function calls (tools)
  'TOOL_CALL_UNKNOWN',
  'TOOL_CALL_NOT_PENDING',
  'TOOL_RESPONSE_TOO_LARGE',
  // Manual activity detection (vad: {manual: true})
  'MANUAL_ACTIVITY_DISABLED',
  'ACTIVITY_NOT_STARTED',
  'ACTIVITY_ALREADY_STARTED',
  'ACTIVITY_BACKLOG_FULL',
  // Audio and images
  'AUDIO_INVALID',
  'AUDIO_STREAM_NO_HEADER',
  'AUDIO_DECODE_FAILED',
  'AUDIO_DECODER_CRASHED',
  'AUDIO_DECODER_STALLED',
  'AUDIO_DECODER_RESTART_LIMITED',
  'AUDIO_UNSUPPORTED_FORMAT',
  'AUDIO_UNSUPPORTED_CODEC',
  'AUDIO_BACKLOG_FULL',
  'IMAGE_UNSUPPORTED_FORMAT',
  /** A dialect's request-response route got no reply within LIVE_AUDIO_DIALECT_REPLY_WAIT_MS. */
  'UPSTREAM_TIMEOUT',
  /** Dialect WebSockets: a second start on a connection that has a live session; the session ended (timers, upstream). */
  'SESSION_ACTIVE',
  'SESSION_ENDED',
  // Limits
  'RATE_LIMITED',
  'TRANSCRIBE_RATE_LIMITED',
  'SESSION_START_RATE_LIMITED',
  'AUDIO_RATE_LIMITED',
  'MESSAGE_RATE_LIMITED',
  'IP_RATE_LIMITED',
  'CONNECTION_RATE_LIMITED',
  'UPLOADS_IN_FLIGHT_LIMITED',
  'SERVER_BUSY',
  // Upstream and server
  'UPSTREAM_UNAVAILABLE',
  'UPSTREAM_FAILED',
  'SERVER_SHUTTING_DOWN',
  'NOT_READY',
  'INTERNAL_ERROR',
  // Cluster mode (several instances, REDIS_URL)
  'CLUSTER_UNAVAILABLE',
  'CLUSTER_FORBIDDEN',
  'CLUSTER_AUTH_REQUIRED',
  'SESSION_BUSY',
  'FORWARD_LOOP',
] as const;

export const errorCode = z.enum(ERROR_CODES).describe('What went wrong, for programs (the `error` text is for people)');

/** The REST error envelope: every 4xx/5xx JSON body (with `Retry-After` on 429/503 where a wait helps). */
export const errorEnvelope = z
  .object({
    success: z.literal(false),
    error: z.string().describe('What went wrong, in plain language'),
    code: errorCode,
    retryAfter: z.number().int().min(1).optional().describe('Seconds to wait before trying again (also the Retry-After header)'),
    fields: z.array(z.string()).optional().describe('The offending request fields (unknown or refused options)'),
  })
  .describe('Error');

import { z } from 'zod';
import { errorCode } from './errors';
import { grounding, sessionEnded, sessionNotFound, sessionStarted, sessionStatus, transcript, transcription, usageReport } from './rest';

const callIds = z.array(z.string());

/** Every message the server sends on `/ws/live-audio` (README "WebSocket API"), one schema per `type`. */

const sessionIdField = z.string().nullable();
const budget = (count: string) =>
  z.object({ [count]: z.number(), limit: z.number(), remaining: z.number(), resetTime: z.string() });
const rateLimits = z.object({ messages: budget('count'), audioBytes: budget('totalBytes'), audioSeconds: budget('seconds') });

export const serverMessageSchemas = {
  connected: z.object({ type: z.literal('connected'), message: z.string(), required_auth: z.literal(true), authenticated: z.boolean() }),
  auth_success: z.object({
    type: z.literal('auth_success'),
    message: z.string(),
    user: z.object({ id: z.union([z.string(), z.number()]), username: z.string().nullish() }).loose(),
  }),
  auth_failed: z.object({ type: z.literal('auth_failed'), error: z.string(), code: errorCode }),
  auth_timeout: z.object({ type: z.literal('auth_timeout'), error: z.string(), code: z.literal('AUTH_TIMEOUT') }),
  inactivity_timeout: z.object({ type: z.literal('inactivity_timeout'), error: z.string(), code: z.literal('INACTIVITY_TIMEOUT') }),
  rate_limit_exceeded: z.object({
    type: z.literal('rate_limit_exceeded'),
    error: z.string(),
    code: z.enum(['MESSAGE_RATE_LIMITED', 'AUDIO_RATE_LIMITED']),
    retryAfter: z.number().int().min(1),
  }),
  session_started: z.object({
    type: z.literal('session_started'),
    session_id: z.string(),
    data: sessionStarted.extend({ resumed: z.boolean(), keepAliveOnClose: z.boolean() }),
  }),
  transcription_result: z.object({
    type: z.literal('transcription_result'),
    session_id: z.string(),
    is_final: z.boolean().describe("The user's words of this turn are final (the model began its reply, or the turn ended)"),
    data: transcription,
  }),
  reply_delta: z
    .object({ type: z.literal('reply_delta'), session_id: z.string(), data: z.object({ turnId: z.number().int(), text: z.string() }) })
    .describe("A new piece of the reply text; a turn's pieces concatenated (and trimmed) are its cumulative `response`"),
  audio_output: z.object({
    type: z.literal('audio_output'),
    session_id: z.string(),
    data: z.string().describe('Base64 PCM s16le mono'),
    sample_rate: z.number().int(),
  }),
  turn_complete: z.object({ type: z.literal('turn_complete'), session_id: z.string(), data: transcription }),
  interrupted: z.object({
    type: z.literal('interrupted'),
    session_id: z.string(),
    data: z.object({ turnId: z.number().int(), by: z.enum(['client', 'upstream']) }),
  }),
  tool_call: z
    .object({
      type: z.literal('tool_call'),
      session_id: z.string(),
      turn_id: z.number().int(),
      calls: z.array(z.object({ id: z.string(), name: z.string(), args: z.record(z.string(), z.unknown()) })),
    })
    .describe('The model asks the client to run these functions (answer with tool_response); several at once stay one message, in order'),
  tool_call_cancelled: z
    .object({ type: z.literal('tool_call_cancelled'), session_id: z.string(), ids: callIds, reason: z.enum(['cancelled', 'dropped']) })
    .describe("Do not answer these calls: the model withdrew them ('cancelled', barge-in), or the upstream came back as a fresh session that never asked ('dropped')"),
  tool_call_timed_out: z
    .object({ type: z.literal('tool_call_timed_out'), session_id: z.string(), ids: callIds, timeout_ms: z.number().int() })
    .describe('Unanswered for LIVE_AUDIO_TOOL_TIMEOUT_MS: the model was answered with an error on the client\'s behalf'),
  tool_response_dropped: z
    .object({ type: z.literal('tool_response_dropped'), session_id: z.string(), ids: callIds })
    .describe('These answers never reached the model: the upstream came back as a fresh session that never asked'),
  tool_response_accepted: z
    .object({
      type: z.literal('tool_response_accepted'),
      session_id: z.string(),
      answered: z.array(z.object({ id: z.string(), name: z.string(), delivery: z.enum(['sent', 'held']) })),
    })
    .describe("The answers were taken: 'sent' now, or 'held' until the upstream reconnects (then sent once, or reported dropped)"),
  grounding: z
    .object({ type: z.literal('grounding'), session_id: z.string(), turn_id: z.number().int(), data: grounding })
    .describe('Google Search grounding of the reply in progress (sessions with google_search)'),
  session_ended: z.object({ type: z.literal('session_ended'), session_id: sessionIdField, data: z.union([sessionEnded, sessionNotFound]) }),
  session_detached: z.object({
    type: z.literal('session_detached'),
    session_id: z.string(),
    data: z.object({ sessionId: z.string(), reason: z.literal('resumed_by_another_connection') }),
  }),
  reconnect: z
    .object({
      type: z.literal('reconnect'),
      session_id: z.string(),
      data: z.object({ sessionId: z.string(), action: z.literal('reconnect and resume') }),
    })
    .describe('Cluster mode, rolling deploy: reconnect (to any instance) and send start_session with resume:true and this session_id'),
  session_status: z.object({
    type: z.literal('session_status'),
    session_id: sessionIdField,
    data: z.union([
      z.intersection(sessionStatus, z.object({ rateLimits, connection: z.object({ id: z.string() }).loose() }).loose()),
      z.object({ status: z.literal('not_found'), message: z.string(), rateLimits, connection: z.object({ id: z.string() }).loose() }),
    ]),
  }),
  rate_limit_status: z.object({ type: z.literal('rate_limit_status'), data: rateLimits }),
  transcript: z.object({ type: z.literal('transcript'), session_id: z.string(), data: transcript }),
  usage: z.object({ type: z.literal('usage'), data: usageReport }),
  pong: z.object({ type: z.literal('pong'), timestamp: z.string() }),
  error: z.object({
    type: z.literal('error'),
    error: z.string(),
    code: errorCode,
    retryAfter: z.number().int().min(1).optional(),
    message_type: z.string().optional(),
    fields: z.array(z.string()).optional(),
    session_id: sessionIdField.optional(),
  }),
} as const;

export type ServerMessageType = keyof typeof serverMessageSchemas;

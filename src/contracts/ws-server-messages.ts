import { z } from 'zod';
import { errorCode } from './errors';
import { sessionEnded, sessionNotFound, sessionStarted, sessionStatus, transcript, transcription, usageReport } from './rest';

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

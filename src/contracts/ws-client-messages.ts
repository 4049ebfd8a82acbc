import { z } from 'zod';
import { MAX_TOOL_SCHEMA_DEPTH } from '../services/tools/tool-declarations';
import { toolResponsesSchema } from '../services/tools/tool-responses';
import { jsonNestingExceeds } from '../websocket/json-depth';
import { describeIssue, type Issue } from './field-issues';

/**
 * The messages a `/ws/live-audio` client may send (README "WebSocket API" plus `text`, `image`, `interrupt`, `ping`),
 * one zod schema each, discriminated by `type`. Unknown extra fields are ignored; known fields are checked.
 */

const token = z.string().trim().min(1).max(8192);
const hint = z.string().max(32).nullish();
const optString = (max: number) => z.string().max(max).nullish();
const optBool = z.boolean().nullish();
/** Numbers may arrive as numeric strings (the service range-checks them). */
const optNumeric = z.union([z.number(), z.string().max(16)]).nullish();

export const TEXT_MAX_CHARS = 16_384;

export const clientMessageSchemas = {
  auth: z.object({ type: z.literal('auth'), token, auth_type: hint, token_type: hint }),
  /** The old backend's documented `{"type":"auth","token":…,"type":"api_key"}` collapses to this. */
  api_key: z.object({ type: z.literal('api_key'), token }),
  bearer: z.object({ type: z.literal('bearer'), token }),
  /**
   * The transport's own fields; every other field is a per-session option, validated strictly by the session door
   * (`sessionOptionsSchema`: an unknown field is an error naming it, code INVALID_FIELD).
   */
  start_session: z.looseObject({
    type: z.literal('start_session'),
    session_id: optString(128),
    /** Keep the session when the socket closes, so a new socket can resume it within the idle timeout. */
    keep_alive_on_close: optBool,
    /** Attach to this owner's live session `session_id` if there is one (reconnection), else start it. */
    resume: optBool,
  }),
  audio_chunk: z.object({
    type: z.literal('audio_chunk'),
    audio_data: z.string().min(1),
    format: optString(16),
    sample_rate: optNumeric,
    channels: optNumeric,
    session_id: optString(128),
  }),
  end_session: z.object({ type: z.literal('end_session'), session_id: optString(128) }),
  get_status: z.object({ type: z.literal('get_status'), session_id: optString(128) }),
  /** The relayed (or named) session's transcript (owner only, like status). */
  get_transcript: z.object({ type: z.literal('get_transcript'), session_id: optString(128) }),
  /** The caller's own usage and daily budget. */
  get_usage: z.object({ type: z.literal('get_usage') }),
  get_rate_limits: z.object({ type: z.literal('get_rate_limits') }),
  /** Typed user input for the model. */
  text: z.object({ type: z.literal('text'), text: z.string().trim().min(1).max(TEXT_MAX_CHARS) }),
  /** A camera/screen frame for the model (base64, `data:` URL tolerated). */
  image: z.object({
    type: z.literal('image'),
    image_data: z.string().min(1),
    mime_type: z.enum(['image/jpeg', 'image/png']).nullish(),
  }),
  /**
   * Manual activity detection (`vad: {manual: true}`): the user starts / stops speaking. Relayed upstream in order
   * with the audio chunks sent before it (`activityStart {}` / `activityEnd {}`).
   */
  activity_start: z.object({ type: z.literal('activity_start') }),
  activity_end: z.object({ type: z.literal('activity_end') }),
  /** Barge-in: stop relaying the current reply at once. */
  interrupt: z.object({ type: z.literal('interrupt') }),
  /** Answers to the model's function calls (`tool_call`): the server fills in each name from its call. */
  tool_response: z.object({ type: z.literal('tool_response'), responses: toolResponsesSchema, session_id: optString(128) }),
  /** Application-level keep-alive for clients that cannot see protocol pings. */
  ping: z.object({ type: z.literal('ping') }),
} as const;

export type ClientMessageType = keyof typeof clientMessageSchemas;
export type ClientMessageOf<T extends ClientMessageType> = z.infer<(typeof clientMessageSchemas)[T]>;
export type ClientMessage = { [T in ClientMessageType]: ClientMessageOf<T> }[ClientMessageType];

export const AUTH_MESSAGE_TYPES: readonly ClientMessageType[] = ['auth', 'api_key', 'bearer'];

/** Why a frame was refused; sent to the client as `{type:'error', error, code, ...}`. */
export interface MessageProblem {
  code: 'INVALID_JSON' | 'INVALID_MESSAGE' | 'MISSING_FIELD' | 'INVALID_FIELD' | 'UNKNOWN_MESSAGE_TYPE';
  error: string;
  /** The message type, when it was known. */
  messageType?: string;
  /** The offending fields. */
  fields?: string[];
}

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; problem: MessageProblem };

const shown = (s: string) => (s.length > 64 ? `${s.slice(0, 64)}…` : s).replace(/[^\x20-\x7e]/g, '?');

/** Validates one decoded JSON value as a client message. */
export function validateClientMessage(value: unknown): ParseResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problem: { code: 'INVALID_MESSAGE', error: 'Message must be a JSON object with a type' } };
  }
  const obj = value as Record<string, unknown>;
  const type = obj.type;
  if (type === undefined || type === null || type === '') {
    return { ok: false, problem: { code: 'MISSING_FIELD', error: 'Missing required field: type', fields: ['type'] } };
  }
  if (typeof type !== 'string') {
    return { ok: false, problem: { code: 'INVALID_FIELD', error: 'Invalid field type: must be a string', fields: ['type'] } };
  }
  if (!Object.prototype.hasOwnProperty.call(clientMessageSchemas, type)) {
    return {
      ok: false,
      problem: { code: 'UNKNOWN_MESSAGE_TYPE', error: `Unknown message type: ${shown(type)}`, messageType: shown(type) },
    };
  }
  const schema = clientMessageSchemas[type as ClientMessageType];
  const r = schema.safeParse(obj);
  if (r.success) return { ok: true, message: r.data as ClientMessage };

  const byField = new Map<string, Issue>();
  for (const issue of r.error.issues) {
    const field = issue.path.length ? String(issue.path[0]) : 'type';
    if (!byField.has(field)) byField.set(field, issue);
  }
  const fields = [...byField.keys()];
  const missing = fields.filter((f) => obj[f] === undefined || obj[f] === null);
  if (missing.length === fields.length) {
    return {
      ok: false,
      problem: {
        code: 'MISSING_FIELD',
        error: `Missing required field${fields.length > 1 ? 's' : ''}: ${fields.join(', ')}`,
        messageType: type,
        fields,
      },
    };
  }
  const parts = fields.map((f) => `${f} ${obj[f] === undefined || obj[f] === null ? 'is required' : describeIssue(byField.get(f)!)}`);
  return {
    ok: false,
    problem: {
      code: 'INVALID_FIELD',
      error: `Invalid field${fields.length > 1 ? 's' : ''} in ${type}: ${parts.join('; ')}`,
      messageType: type,
      fields,
    },
  };
}

/**
 * No client message nests deeper than this (an object of scalars is depth 1); deeper frames are not parsed. Room
 * for `start_session.tools[].parameters` (a JSON Schema of at most MAX_TOOL_SCHEMA_DEPTH levels) and
 * `tool_response.responses[].response`.
 */
export const MAX_MESSAGE_DEPTH = 3 + MAX_TOOL_SCHEMA_DEPTH;

/**
 * Decodes a frame (text, or binary carrying UTF-8 JSON like the old backend accepted) and validates it. A frame
 * nested deeper than {@link MAX_MESSAGE_DEPTH} is refused before `JSON.parse` (see json-depth.ts).
 */
export function parseClientFrame(data: Buffer | string): ParseResult {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (jsonNestingExceeds(bytes, MAX_MESSAGE_DEPTH)) {
    return { ok: false, problem: { code: 'INVALID_MESSAGE', error: `Message nested deeper than ${MAX_MESSAGE_DEPTH} levels` } };
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { ok: false, problem: { code: 'INVALID_JSON', error: 'Invalid message: not valid JSON' } };
  }
  return validateClientMessage(value);
}

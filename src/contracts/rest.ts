import { z } from 'zod';
import { sessionOptionsShape } from '../services/session-setup/session-options';
import { SESSION_ID_RE } from '../services/session/session-registry';
import { toolResponsesSchema } from '../services/tools/tool-responses';

/** The REST API `/api/v1/live-audio` (README "REST API"): request bodies and success answers. */

const isoTime = z.string().describe('ISO 8601 time');
/** A session id as every route takes it (the one pattern: `SESSION_ID_RE`). */
export const sessionId = z.string().regex(SESSION_ID_RE).describe('1-128 characters from A-Z, a-z, 0-9, _ and -');
const modality = z.enum(['text', 'audio']);
const booleanish = z.union([z.boolean(), z.enum(['true', 'false'])]);

/** Every per-session option also takes `null` (older clients send it for "not set"). */
const nullableOptions = Object.fromEntries(Object.entries(sessionOptionsShape).map(([k, s]) => [k, s.nullable()])) as {
  [K in keyof typeof sessionOptionsShape]: z.ZodNullable<(typeof sessionOptionsShape)[K]>;
};

/**
 * The start body: the session id and the per-session options (README "Conversations"), strict: an unknown field is
 * a 400 naming it. `response_modality` is case-insensitive and the transcription flags take 'true'/'false' too.
 * Fields are checked in this order (the session id first).
 */
export const startSessionBody = z
  .strictObject({
    session_id: sessionId,
    ...nullableOptions,
    model: z.string().max(128).nullish().describe('A Live model id; other ids (e.g. chat models) fall back to the profile\'s or the default Live model'),
    response_modality: z.string().max(16).nullish().describe("'text' (default) or 'audio', any case"),
    input_transcription: booleanish.nullish(),
    output_transcription: booleanish.nullish(),
  })
  .describe('StartSessionRequest');

/** `'true'` / `'false'` are taken for booleans, `null` for absent. */
const activityFlag = booleanish.nullish();

/**
 * Fields are checked in this order: the activity markers, the audio (its absence is the first thing said), then the
 * session id.
 * Numbers may come as numeric strings; the ranges and the base64 are checked when the chunk is decoded.
 */
export const transcribeBody = z
  .object({
    activity_start: activityFlag.describe(
      'Manual activity detection (vad: {manual: true}) only: the user starts speaking before this request\'s audio',
    ),
    activity_end: activityFlag.describe(
      'Manual activity detection only: the user stopped speaking after this request\'s audio (relayed after its last PCM, wherever the reorder buffer puts the chunk); without audio_data, after every chunk sent before',
    ),
    audio_data: z
      .string()
      .min(1)
      .nullish()
      .describe('Base64 of one recorder chunk, a data: URL prefix tolerated (required unless activity_start or activity_end is true)'),
    session_id: sessionId,
    format: z
      .string()
      .nullish()
      .describe('Container of the chunk: webm (default), ogg, mp4, wav or pcm, in any case; another answers 415 AUDIO_UNSUPPORTED_FORMAT'),
    sample_rate: z
      .union([z.number().int().min(8000).max(192000), z.string().max(16)])
      .nullish()
      .describe('pcm only: samples per second, 8000-192000 (default 16000)'),
    channels: z.union([z.number().int().min(1).max(8), z.string().max(16)]).nullish().describe('pcm only: channel count, 1-8 (default 1)'),
  })
  .refine(hasAudioOrMarker, { path: ['audio_data'], message: 'is required unless activity_start or activity_end is true', when: () => true })
  .describe('TranscribeRequest');

function hasAudioOrMarker(body: unknown): boolean {
  const b = body as Record<string, unknown>;
  const on = (v: unknown) => v === true || v === 'true';
  return !(b.audio_data === undefined || b.audio_data === null || b.audio_data === '') || on(b.activity_start) || on(b.activity_end);
}

export const endSessionBody = z.object({ session_id: sessionId }).describe('EndSessionRequest');

export const toolResponseBody = z
  .object({ session_id: sessionId, responses: toolResponsesSchema })
  .describe('ToolResponseRequest: answers to the function calls listed in data.toolCalls');

const toolCallItem = z.object({ id: z.string(), name: z.string(), args: z.record(z.string(), z.unknown()) }).describe('ToolCall');
export const grounding = z
  .object({ queries: z.array(z.string()), sources: z.array(z.object({ uri: z.string(), title: z.string().optional() })) })
  .describe('Grounding: the Google searches made and the pages used');

export const sessionStarted = z
  .object({
    sessionId: z.string(),
    status: z.literal('active'),
    startTime: isoTime,
    expiresAt: isoTime,
    model: z.string(),
    requestedModel: z.string().nullable(),
    responseModality: modality,
    inputTranscription: z.boolean(),
    outputTranscription: z.boolean(),
    mode: z.enum(['gemini', 'emulated']),
  })
  .loose()
  .describe('SessionStarted');

export const sessionListItem = z
  .object({
    sessionId: z.string(),
    status: z.literal('active'),
    startTime: isoTime,
    lastActivity: isoTime,
    expiresAt: isoTime,
    model: z.string(),
    responseModality: modality,
    transport: z.enum(['rest', 'ws']),
    userId: z.union([z.string(), z.number()]),
  })
  .loose();

export const transcription = z
  .object({
    success: z.literal(true),
    sessionId: z.string(),
    transcript: z.string(),
    inputTranscription: z.string(),
    outputTranscription: z.string(),
    response: z.string(),
    turnComplete: z.boolean(),
    interrupted: z.boolean(),
    turnId: z.number().int(),
    audioBuffer: z.string().nullable().describe('Base64 WAV of the reply audio so far (audio modality), else null'),
    confidence: z.null(),
    timestamp: isoTime,
    model: z.string(),
    responseModality: modality,
    toolCalls: z.array(toolCallItem).describe('Function calls waiting for an answer (POST /session/tool-response)'),
    grounding: grounding.nullable(),
  })
  .describe('Transcription');

export const sessionEnded = z
  .object({
    sessionId: z.string(),
    status: z.enum(['ended', 'expired']),
    reason: z.enum([
      'client_end',
      'expired',
      'idle_timeout',
      'replaced',
      'upstream_error',
      'server_shutdown',
      'socket_closed',
      'token_budget_exhausted',
      'audio_limit_reached',
      'handed_over',
    ]),
    message: z.string(),
    endTime: isoTime,
    duration: z.number().describe('ms'),
    alreadyEnded: z.boolean().optional(),
    setup: z
      .object({ model: z.string() })
      .loose()
      .nullable()
      .optional()
      .describe('Status of an ended session: the effective setup it ran with (as in a live status)'),
    usage: z
      .object({
        tokens: z.object({ totalTokens: z.number() }).loose(),
        audioSeconds: z.object({ input: z.number(), output: z.number() }),
        turns: z.number(),
      })
      .nullable()
      .optional()
      .describe('Status of an ended session: its usage at the end (as in a live status)'),
  })
  .loose()
  .describe('SessionEnded');

export const sessionNotFound = z
  .object({ sessionId: z.string().nullable(), status: z.literal('not_found'), message: z.string() })
  .loose()
  .describe('SessionNotFound');

export const liveSessionStatus = z
  .object({
    sessionId: z.string(),
    status: z.enum(['active', 'ended', 'expired']),
    startTime: isoTime,
    expiresAt: isoTime,
    idleExpiresAt: isoTime,
    lastActivity: isoTime,
    model: z.string(),
    responseModality: modality,
    transport: z.enum(['rest', 'ws']),
    audio: z.object({ chunks: z.number(), bytesIn: z.number(), decodedSeconds: z.number() }).loose(),
    upstream: z.object({ state: z.string(), connected: z.boolean(), reconnects: z.number() }).loose(),
    turn: z.object({ turnId: z.number(), turnComplete: z.boolean() }).loose(),
    activity: z
      .object({
        manual: z.literal(true),
        open: z.boolean().describe('Between an activity_start and its activity_end'),
        pendingMarkers: z.number().describe('Markers accepted and still waiting for their audio to be relayed'),
        starts: z.number(),
        ends: z.number(),
      })
      .nullable()
      .optional()
      .describe('Manual activity detection (vad: {manual: true}); null with automatic detection'),
    toolCalls: z
      .array(z.object({ id: z.string(), name: z.string(), ageMs: z.number().int().nonnegative().describe('ms since the model asked') }))
      .describe('Function calls waiting for the client\'s answer, oldest first (answer with tool_response / POST /session/tool-response)'),
  })
  .loose()
  .describe('LiveSessionStatus');

export const sessionStatus = z.union([liveSessionStatus, sessionEnded, sessionNotFound]).describe('SessionStatus');

/** Token counts that add up (per turn, per session, per key and day). */
const usageFigures = z
  .object({
    promptTokens: z.number(),
    responseTokens: z.number(),
    thoughtsTokens: z.number(),
    toolUsePromptTokens: z.number(),
    cachedTokens: z.number(),
    totalTokens: z.number(),
    promptByModality: z.record(z.string(), z.number()),
    responseByModality: z.record(z.string(), z.number()),
    reports: z.number().int().describe('usageMetadata messages added up'),
  })
  .describe('UsageFigures');

export const transcriptTurn = z
  .object({
    index: z.number().int(),
    kind: z.enum(['greeting', 'user']).describe("'greeting': the model opened the conversation"),
    userText: z.string(),
    replyText: z.string(),
    interrupted: z.boolean(),
    startedAt: z.number().describe('epoch ms'),
    endedAt: z.number().nullable(),
    usage: usageFigures.nullable(),
    toolCalls: z.array(z.unknown()),
    truncated: z.boolean(),
  })
  .loose();

export const transcript = z
  .object({
    sessionId: z.string(),
    owner: z.string(),
    startedAt: z.number(),
    endedAt: z.number().nullable(),
    endReason: z.string().nullable(),
    turns: z.array(transcriptTurn),
    usage: usageFigures,
    overheadUsage: usageFigures,
    droppedTurns: z.number().int(),
    live: z.boolean(),
    setup: z.object({ model: z.string() }).loose().nullable().describe('The effective setup the session runs or ran with'),
  })
  .loose()
  .describe('Transcript');

const dailyUsage = z
  .object({ day: z.string(), tokens: usageFigures, audioSeconds: z.object({ input: z.number(), output: z.number() }), sessions: z.number(), turns: z.number() })
  .loose();

export const usageReport = z
  .object({
    key: z.string(),
    tracked: z.boolean(),
    today: dailyUsage.optional(),
    days: z.array(dailyUsage).optional(),
    total: z.object({}).loose().optional(),
    budget: z
      .object({ dailyTokens: z.number().nullable(), spentToday: z.number(), remainingToday: z.number().nullable(), resetsAt: isoTime })
      .optional(),
  })
  .loose()
  .describe('Usage');

const ok = <T extends z.ZodType>(data: T) => z.object({ success: z.literal(true), data });

export const restResponses = {
  listSessions: ok(
    z
      .object({
        sessions: z.array(sessionListItem),
        count: z.number().int(),
        mode: z.enum(['gemini', 'emulated']),
        notice: z.string().optional(),
        partial: z
          .boolean()
          .optional()
          .describe('Cluster mode: true when the shared state (Redis) could not be read: only this instance\'s sessions are listed (also the X-Live-Audio-Partial header)'),
      })
      .loose(),
  ),
  startSession: ok(sessionStarted),
  transcribe: z
    .object({
      success: z.literal(true),
      transcript: z.string(),
      inputTranscription: z.string(),
      outputTranscription: z.string(),
      response: z.string(),
      turnComplete: z.boolean(),
      data: transcription,
    })
    .describe('The turn state: its texts at the top level (the Sculptor frontend reads them there), all of it under data'),
  endSession: ok(z.union([sessionEnded, sessionNotFound])),
  toolResponse: ok(
    z.object({
      sessionId: z.string(),
      answered: z.array(z.object({ id: z.string(), name: z.string(), delivery: z.enum(['sent', 'held']) })),
    }),
  ),
  status: ok(sessionStatus),
  transcript: ok(transcript),
  usage: ok(usageReport),
};

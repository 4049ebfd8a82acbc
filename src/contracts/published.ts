import { z } from 'zod';
import { ERROR_CODES, errorEnvelope } from './errors';
import { endSessionBody, restResponses, sessionId, startSessionBody, toolResponseBody, transcribeBody } from './rest';
import { clientMessageSchemas } from './ws-client-messages';
import { serverMessageSchemas } from './ws-server-messages';

/**
 * The published contract, generated from the zod schemas in this folder: OpenAPI 3.1 for the REST API
 * (`GET /openapi.json`) and JSON Schema 2020-12 for the WebSocket messages (`GET /schemas/ws.json`). A small
 * generator over zod 4's `z.toJSONSchema` (no library needed: OpenAPI 3.1 schemas are JSON Schema 2020-12).
 */

type JsonSchema = Record<string, unknown>;

export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const json = (schema: JsonSchema) => ({ content: { 'application/json': { schema } } });
const errorRef = { $ref: '#/components/schemas/Error' };

/** The error answers an authenticated route may give (every one is the error envelope). */
const ERRORS: Record<string, string> = {
  '400': 'Invalid input (MISSING_FIELD, INVALID_FIELD, INVALID_SESSION_ID, INVALID_BODY, INVALID_JSON, ...)',
  '401': 'No or invalid credentials (AUTH_REQUIRED, INVALID_API_KEY, INVALID_TOKEN)',
  '403': 'Origin not allowed (CORS_ORIGIN_DENIED)',
  '429': 'A limit refused the request (RATE_LIMITED, *_RATE_LIMITED, TOO_MANY_*_SESSIONS); see retryAfter / Retry-After',
  '503': 'Shutting down, busy or the upstream is unavailable (SERVER_SHUTTING_DOWN, SERVER_BUSY, UPSTREAM_UNAVAILABLE)',
};

function errors(extra: Record<string, string> = {}) {
  const out: Record<string, unknown> = {};
  for (const [status, description] of Object.entries({ ...ERRORS, ...extra })) out[status] = { description, ...json(errorRef) };
  return out;
}

export function operation(summary: string, response: z.ZodType, o: { body?: z.ZodType; errors?: Record<string, string> } = {}) {
  return {
    summary,
    security: [{ apiKey: [] }, { bearer: [] }],
    ...(o.body ? { requestBody: { required: true, ...json(jsonSchema(o.body, 'input')) } } : {}),
    responses: { '200': { description: 'OK', ...json(jsonSchema(response, 'output')) }, ...errors(o.errors) },
  };
}

const sessionIdParameter = { name: 'session_id', in: 'path', required: true, schema: jsonSchema(sessionId, 'input') };

/** `extraPaths`: more documented routes (the dialects' HTTP routes, from src/dialects). */
export function buildOpenApiDocument(extraPaths: Record<string, unknown> = {}): JsonSchema {
  const base = '/api/v1/live-audio';
  return {
    openapi: '3.1.0',
    info: {
      title: 'live-audio REST API',
      version: '1',
      description:
        'Relays browser audio to the Gemini Live API. Errors always have the body {success:false, error, code}; ' +
        'the WebSocket messages are published as JSON Schema at /schemas/ws.json. Every request body is validated ' +
        'against the schema published here (400 naming the field); no body may hold a __proto__, constructor or ' +
        'prototype key at any depth (400 INVALID_FIELD).',
    },
    paths: {
      [`${base}/sessions`]: { get: operation("The caller's live sessions (also the frontend's connect probe)", restResponses.listSessions) },
      [`${base}/session/start`]: { post: operation('Start a live session', restResponses.startSession, { body: startSessionBody, errors: { '502': 'Gemini refused the session (UPSTREAM_UNAVAILABLE)' } }) },
      [`${base}/streaming/start`]: { post: operation('Start a live session (alias)', restResponses.startSession, { body: startSessionBody }) },
      [`${base}/transcribe`]: {
        post: operation('Feed one audio chunk (and/or manual activity markers) and read the current turn (bounded wait)', restResponses.transcribe, {
          body: transcribeBody,
          errors: {
            '404': 'No such session (SESSION_NOT_FOUND, SESSION_EXPIRED)',
            '409':
              'An activity marker refused: the session has automatic activity detection (MANUAL_ACTIVITY_DISABLED), an ' +
              'activity_end without a start (ACTIVITY_NOT_STARTED), a second activity_start (ACTIVITY_ALREADY_STARTED); ' +
              '429 ACTIVITY_BACKLOG_FULL while 8 markers wait for their audio',
            '413': 'Chunk too large (PAYLOAD_TOO_LARGE)',
            '415': 'Unsupported audio (AUDIO_UNSUPPORTED_FORMAT, AUDIO_UNSUPPORTED_CODEC)',
            '422': 'Audio that cannot be decoded (AUDIO_STREAM_NO_HEADER, AUDIO_INVALID, AUDIO_DECODE_FAILED, ...)',
            '502': 'The live session failed upstream (UPSTREAM_FAILED)',
          },
        }),
      },
      [`${base}/session/end`]: { post: operation('End a session (idempotent)', restResponses.endSession, { body: endSessionBody }) },
      [`${base}/session/tool-response`]: {
        post: operation('Answer the function calls the model made (listed in /transcribe data.toolCalls)', restResponses.toolResponse, {
          body: toolResponseBody,
          errors: {
            '404': 'No such session (SESSION_NOT_FOUND, SESSION_EXPIRED)',
            '409': 'A call id this session never issued (TOOL_CALL_UNKNOWN) or one no longer waiting (TOOL_CALL_NOT_PENDING)',
            '413': 'An answer over LIVE_AUDIO_MAX_TOOL_RESPONSE_BYTES (TOOL_RESPONSE_TOO_LARGE)',
          },
        }),
      },
      [`${base}/session/{session_id}/transcript`]: {
        get: {
          ...operation("The caller's session transcript (live, or kept LIVE_AUDIO_TRANSCRIPT_RETENTION_MS after the end)", restResponses.transcript, {
            errors: { '404': "No such session of the caller's, live or kept (SESSION_NOT_FOUND; another key's id answers the same)" },
          }),
          parameters: [sessionIdParameter],
        },
      },
      [`${base}/usage`]: { get: operation("The caller's own usage (today and the last 30 days) and daily token budget", restResponses.usage) },
      [`${base}/session/{session_id}/status`]: {
        get: {
          ...operation('A session: live status, recently ended, or not found', restResponses.status),
          parameters: [sessionIdParameter],
        },
      },
      ...extraPaths,
    },
    components: {
      schemas: { Error: jsonSchema(errorEnvelope, 'output'), ErrorCode: { type: 'string', enum: [...ERROR_CODES] } },
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
    },
  };
}

export function buildWsSchemaDocument(): JsonSchema {
  const defs: Record<string, JsonSchema> = {};
  const client: JsonSchema[] = [];
  const server: JsonSchema[] = [];
  for (const [type, schema] of Object.entries(clientMessageSchemas)) {
    defs[`client.${type}`] = jsonSchema(schema, 'input');
    client.push({ $ref: `#/$defs/client.${type}` });
  }
  for (const [type, schema] of Object.entries(serverMessageSchemas)) {
    defs[`server.${type}`] = jsonSchema(schema, 'output');
    server.push({ $ref: `#/$defs/server.${type}` });
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'live-audio-ws.json',
    title: 'live-audio WebSocket messages (/ws/live-audio)',
    description: 'JSON text frames. ClientMessage: what a client may send; ServerMessage: what the server sends.',
    $defs: { ...defs, ClientMessage: { oneOf: client }, ServerMessage: { oneOf: server } },
    oneOf: [{ $ref: '#/$defs/ClientMessage' }, { $ref: '#/$defs/ServerMessage' }],
  };
}

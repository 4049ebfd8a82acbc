import { Router } from 'express';
import { z } from 'zod';
import { jsonSchema, operation } from '../contracts/published';
import { ELK_HTTP_BASE, ELK_WS_PATH, elkClientMessages, elkHttpBodies, elkServerMessages } from './elk-realtime';
import { FASTAPI_BATCH_PATH, FASTAPI_WS_PATH, fastapiBatchResponse, fastapiClientMessages, fastapiServerMessages } from './fastapi-live';
import { INTERVIEW_COACH_PATH, interviewCoachClientMessages, interviewCoachServerMessages } from './interview-coach';
import { VOICE_PIPELINE_PATH, voicePipelineClientMessages, voicePipelineServerMessages } from './voice-pipeline';

/**
 * The dialects' published contract: each dialect's WebSocket messages as JSON Schema 2020-12 at
 * `/schemas/dialects/<name>.json` (like `/schemas/ws.json`), and their HTTP routes for `/openapi.json`.
 */

type Messages = Record<string, z.ZodType>;

const DIALECTS: Record<string, { path: string; title: string; client: Messages; server: Messages; note?: string }> = {
  'voice-pipeline': { path: VOICE_PIPELINE_PATH, title: 'The voice pipeline', client: voicePipelineClientMessages, server: voicePipelineServerMessages },
  'interview-coach': { path: INTERVIEW_COACH_PATH, title: 'The interview coach', client: interviewCoachClientMessages, server: interviewCoachServerMessages },
  'elk-realtime': { path: ELK_WS_PATH, title: 'Elk realtime', client: elkClientMessages, server: elkServerMessages },
  'fastapi-live': {
    path: FASTAPI_WS_PATH,
    title: 'The FastAPI live handler',
    client: fastapiClientMessages,
    server: fastapiServerMessages,
    note: 'Audio may also come as binary frames (WebM/Opus bytes) or as text frames holding base64 audio.',
  },
};

export function buildDialectSchema(name: string): Record<string, unknown> | undefined {
  const d = DIALECTS[name];
  if (!d) return undefined;
  const defs: Record<string, unknown> = {};
  const side = (prefix: string, messages: Messages, io: 'input' | 'output') =>
    Object.entries(messages).map(([type, schema]) => {
      defs[`${prefix}.${type}`] = jsonSchema(schema, io);
      return { $ref: `#/$defs/${prefix}.${type}` };
    });
  const client = side('client', d.client, 'input');
  const server = side('server', d.server, 'output');
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `dialects/${name}.json`,
    title: `${d.title} (WebSocket ${d.path}?token=<API key or JWT>)`,
    description: `JSON text frames. ClientMessage: what a client may send; ServerMessage: what the server sends.${d.note ? ` ${d.note}` : ''}`,
    $defs: { ...defs, ClientMessage: { oneOf: client }, ServerMessage: { oneOf: server } },
    oneOf: [{ $ref: '#/$defs/ClientMessage' }, { $ref: '#/$defs/ServerMessage' }],
  };
}

/** `GET /schemas/dialects/<name>.json`. */
export function createDialectSchemaRouter(): Router {
  const r = Router();
  const cache = new Map<string, string>();
  r.get('/schemas/dialects/:name.json', (req, res, next) => {
    const name = String(req.params.name);
    const doc = cache.get(name) ?? (DIALECTS[name] ? JSON.stringify(buildDialectSchema(name)) : undefined);
    if (!doc) return next();
    cache.set(name, doc);
    res.type('application/schema+json').send(doc);
  });
  return r;
}

const sessionAnswer = z.object({ success: z.literal(true), sessionId: z.string() });

/** The dialects' HTTP routes as OpenAPI path items. */
export function dialectOpenApiPaths(): Record<string, unknown> {
  const audioErrors = {
    '404': "No such session of the caller's (SESSION_NOT_FOUND)",
    '413': 'Audio too large (PAYLOAD_TOO_LARGE)',
    '415': 'Unsupported audio (AUDIO_UNSUPPORTED_FORMAT)',
  };
  const batch = operation('FastAPI: one audio file in, its transcription and the model\'s answer out (a short-lived session)', fastapiBatchResponse, {
    errors: { '413': 'File over LIVE_AUDIO_MAX_CHUNK_BYTES (PAYLOAD_TOO_LARGE)', '415': 'Neither multipart/form-data nor audio/* (UNSUPPORTED_MEDIA_TYPE)', '422': 'Audio that cannot be decoded', '502': 'The session failed upstream' },
  });
  return {
    [`${ELK_HTTP_BASE}/initialize`]: { post: operation('Elk: start a session (profile, language)', sessionAnswer, { body: elkHttpBodies.initialize }) },
    [`${ELK_HTTP_BASE}/send-audio`]: {
      post: operation("Elk: feed audio to a session (results go to the session's socket)", sessionAnswer, { body: elkHttpBodies.sendAudio, errors: audioErrors }),
    },
    [`${ELK_HTTP_BASE}/conversation`]: {
      post: operation(
        "Elk: text, an image or audio in a session (a new one when none is named); answers with that turn's reply",
        sessionAnswer.extend({ transcription: z.string(), response: z.string() }),
        { body: elkHttpBodies.conversation, errors: { ...audioErrors, '504': 'No reply in LIVE_AUDIO_DIALECT_REPLY_WAIT_MS (UPSTREAM_TIMEOUT)' } },
      ),
    },
    [FASTAPI_BATCH_PATH]: {
      post: {
        ...batch,
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: { type: 'object', required: ['file'], properties: { file: { type: 'string', format: 'binary' }, model: { type: 'string' } } },
            },
            'audio/*': { schema: { type: 'string', format: 'binary' } },
          },
        },
      },
    },
  };
}

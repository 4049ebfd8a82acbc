import type { RequestHandler, Router } from 'express';
import type { BodyBudget } from '../middleware/body-budget';
import type { LiveAudioService } from '../services/live-audio-service';
import type { DialectDeps, DialectEndpoint } from './dialect-socket';
import { createDialectSchemaRouter } from './dialect-schemas';
import { createElkRouter, ELK_HTTP_BASE, mountElkRealtime } from './elk-realtime';
import { createFastapiRouter, mountFastapiLive } from './fastapi-live';
import { mountInterviewCoach } from './interview-coach';
import { mountVoicePipeline } from './voice-pipeline';

export type { DialectDeps, DialectEndpoint } from './dialect-socket';
export { dialectOpenApiPaths } from './dialect-schemas';

/** The dialects' HTTP routes that carry audio chunks (logged at debug when they succeed, as `/transcribe`). */
export const DIALECT_CHUNK_ROUTES: readonly string[] = [`${ELK_HTTP_BASE}/send-audio`];

/** The four dialects' WebSocket endpoints, mounted on the server's upgrade router (README "Dialects"). */
export function mountDialects(d: DialectDeps): { endpoints: DialectEndpoint[]; close(graceMs?: number): Promise<void> } {
  const endpoints = [mountVoicePipeline(d), mountInterviewCoach(d), mountElkRealtime(d), mountFastapiLive(d)];
  return {
    endpoints,
    close: async (graceMs) => {
      await Promise.all(endpoints.map((e) => e.close(graceMs)));
    },
  };
}

export interface DialectRouteDeps {
  service: LiveAudioService;
  /** Authentication and request limits, in order (our `requireAuth` and the route guards). */
  guards: RequestHandler[];
  /** Guards of routes that start a session (the session-start limit). */
  startGuards: RequestHandler[];
  /** Our JSON body parser with the audio-chunk caps (Elk's audio bodies). */
  audioBody: RequestHandler;
  budget: BodyBudget;
  maxAudioBytes: number;
  replyWaitMs: number;
  /** Cluster mode: our session door, for Elk's HTTP calls naming a session (see `createElkRouter`). */
  sessionDoor?: (route: 'transcribe', where: { bodyField: string; answerWithinMs?: number }) => RequestHandler[];
  onRead?: Parameters<typeof createFastapiRouter>[0]['onRead'];
}

/**
 * The dialects' HTTP routes: Elk's under `/api/ai/gemini`, FastAPI's `POST /audio-stream` at the root, and their
 * WebSocket messages' JSON Schemas at `/schemas/dialects/<name>.json`.
 */
export function dialectRouters(d: DialectRouteDeps): Array<{ path: string; router: Router }> {
  return [
    { path: '/', router: createDialectSchemaRouter() },
    {
      path: ELK_HTTP_BASE,
      router: createElkRouter({ service: d.service, guards: d.guards, startGuards: d.startGuards, body: d.audioBody, conversationWaitMs: d.replyWaitMs, sessionDoor: d.sessionDoor }),
    },
    {
      path: '/',
      router: createFastapiRouter({
        service: d.service,
        guards: [...d.guards, ...d.startGuards],
        budget: d.budget,
        maxBytes: d.maxAudioBytes,
        replyWaitMs: d.replyWaitMs,
        onRead: d.onRead,
      }),
    },
  ];
}

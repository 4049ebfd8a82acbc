import { Router, type RequestHandler } from 'express';
import type { createLiveAudioController } from '../controllers/live-audio-controller';

/** Route guards around the handlers (limits; each list may be empty). */
export interface LiveAudioRouteGuards {
  beforeAuth?: RequestHandler[];
  afterAuth?: RequestHandler[];
  sessionStartLimit?: RequestHandler[];
  /** Before `/transcribe`'s body is read (request counts). */
  transcribe?: RequestHandler[];
}

/** Body parsers per route (see `jsonBody` and `routeBodySpecs`). */
export interface LiveAudioRouteBodies {
  transcribe: RequestHandler;
  control: RequestHandler;
}

/**
 * Mounts the live-audio REST API. Every route authenticates on the headers first; a body is read only after
 * authentication and the request-count limits, by the route's own parser with the route's own caps.
 */
export function createLiveAudioRouter(
  controller: ReturnType<typeof createLiveAudioController>,
  requireAuth: RequestHandler,
  extra: LiveAudioRouteGuards,
  bodies: LiveAudioRouteBodies,
): Router {
  const r = Router();
  r.use(...(extra.beforeAuth ?? []), requireAuth, ...(extra.afterAuth ?? []));
  r.get('/sessions', controller.listSessions);
  r.post('/session/start', ...(extra.sessionStartLimit ?? []), bodies.control, controller.startSession);
  r.post('/streaming/start', ...(extra.sessionStartLimit ?? []), bodies.control, controller.startSession);
  r.post('/transcribe', ...(extra.transcribe ?? []), bodies.transcribe, controller.transcribe);
  r.post('/session/end', bodies.control, controller.endSession);
  r.get('/session/:session_id/status', controller.status);
  r.get('/session/:session_id/transcript', controller.transcript);
  r.get('/usage', controller.usage);
  return r;
}

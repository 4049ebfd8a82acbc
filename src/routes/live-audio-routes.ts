import { Router, type RequestHandler } from 'express';
import type { createLiveAudioController } from '../controllers/live-audio-controller';

/** Route guards around the handlers (limits; each list may be empty). */
export interface LiveAudioRouteGuards {
  beforeAuth?: RequestHandler[];
  afterAuth?: RequestHandler[];
  sessionStartLimit?: RequestHandler[];
  /** Before `/transcribe`'s body is read (request counts). */
  transcribe?: RequestHandler[];
  /**
   * Cluster mode: in front of each session route's handler (after its body is read), the door that forwards a call
   * to the instance owning its session or takes a dead owner's session over (src/cluster/session-door.ts).
   */
  sessionDoor?: (route: 'start' | 'transcribe' | 'end' | 'status' | 'transcript', where?: { bodyField?: string; answerWithinMs?: number }) => RequestHandler[];
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
  const door = extra.sessionDoor ?? (() => []);
  r.use(...(extra.beforeAuth ?? []), requireAuth, ...(extra.afterAuth ?? []));
  r.get('/sessions', controller.listSessions);
  r.post('/session/start', ...(extra.sessionStartLimit ?? []), bodies.control, ...door('start'), controller.startSession);
  r.post('/streaming/start', ...(extra.sessionStartLimit ?? []), bodies.control, ...door('start'), controller.startSession);
  r.post('/transcribe', ...(extra.transcribe ?? []), bodies.transcribe, ...door('transcribe'), controller.transcribe);
  r.post('/session/end', bodies.control, ...door('end'), controller.endSession);
  r.post('/session/tool-response', bodies.control, ...door('transcribe'), controller.toolResponse);
  r.get('/session/:session_id/status', ...door('status'), controller.status);
  r.get('/session/:session_id/transcript', ...door('transcript'), controller.transcript);
  r.get('/usage', controller.usage);
  return r;
}

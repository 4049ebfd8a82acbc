import { Router, type RequestHandler } from 'express';
import type { createLiveAudioController } from '../controllers/live-audio-controller';

/** Mounts the live-audio REST API (all routes authenticated). */
export function createLiveAudioRouter(
  controller: ReturnType<typeof createLiveAudioController>,
  requireAuth: RequestHandler,
  extra: { beforeAuth?: RequestHandler[]; afterAuth?: RequestHandler[]; sessionStartLimit?: RequestHandler[]; transcribe?: RequestHandler[] } = {},
): Router {
  const r = Router();
  r.use(...(extra.beforeAuth ?? []), requireAuth, ...(extra.afterAuth ?? []));
  r.get('/sessions', controller.listSessions);
  r.post('/session/start', ...(extra.sessionStartLimit ?? []), controller.startSession);
  r.post('/streaming/start', ...(extra.sessionStartLimit ?? []), controller.startSession);
  r.post('/transcribe', ...(extra.transcribe ?? []), controller.transcribe);
  r.post('/session/end', controller.endSession);
  r.get('/session/:session_id/status', controller.status);
  return r;
}

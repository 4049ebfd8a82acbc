import { noteDesignedWait } from '../observability/designed-wait';
import type { Request, Response } from 'express';
import { WeakTurnCursor, type LiveAudioService } from '../services/live-audio-service';
import { sessionEndedView, sessionNotFoundView, sessionStartedView } from '../services/session/session-views';
import { isAppError } from '../util/app-error';
import { restRequests } from '../contracts/rest-requests';
import { objectBody, parseRequestBody } from '../middleware/request-body';
import { getPrincipal } from '../middleware/require-auth';


export interface ControllerOptions {
  service: LiveAudioService;
  emulatedNotice?: string;
  /** Cluster mode: the caller's live sessions on every instance (this one's are listed from its registry). */
  listRemote?: (principalId: string) => Promise<Array<{ sessionId: string } & Record<string, unknown>>>;
}

/**
 * REST handlers for `/api/v1/live-audio` (README "REST API"; published at /openapi.json): each validates, calls
 * the service (the one door to sessions) and renders. The only state here is REST's own: what `/transcribe` last
 * answered per session.
 */
/** Set on `GET /sessions` when the list holds only this instance's sessions (cluster mode, Redis unreachable). */
export const PARTIAL_HEADER = 'X-Live-Audio-Partial';

export function createLiveAudioController({ service, emulatedNotice, listRemote }: ControllerOptions) {
  const mode = service.emulated ? 'emulated' : 'gemini';
  const served = new WeakTurnCursor();

  return {
    /** GET /sessions — also the frontend's "connect" probe. */
    async listSessions(req: Request, res: Response) {
      const owner = getPrincipal(req);
      const local = service.listSessions(owner);
      // Cluster mode: the caller's sessions on the other instances too.
      const here = new Set(local.map((s) => s.sessionId));
      // Redis down (CLUSTER_UNAVAILABLE): this instance's sessions, marked as a partial list, rather than a 503.
      let remote: Array<{ sessionId: string } & Record<string, unknown>> = [];
      let partial = false;
      try {
        remote = listRemote ? (await listRemote(owner.id)).filter((s) => !here.has(s.sessionId)) : [];
      } catch (err) {
        if (!(isAppError(err) && err.code === 'CLUSTER_UNAVAILABLE')) throw err;
        partial = true;
        res.setHeader(PARTIAL_HEADER, 'cluster-unavailable');
      }
      const sessions: Array<{ sessionId: string } & Record<string, unknown>> = [...local, ...remote];
      res.json({
        success: true,
        data: { sessions, count: sessions.length, mode, ...(emulatedNotice ? { notice: emulatedNotice } : {}), ...(partial ? { partial } : {}) },
      });
    },

    /** POST /session/start and /streaming/start */
    async startSession(req: Request, res: Response) {
      const owner = getPrincipal(req);
      const { session_id: sessionId } = parseRequestBody(restRequests.startSession, req.body);
      // The options as sent (valid by the published schema); the session door normalizes and resolves them.
      const { session_id: _id, ...options } = objectBody(req.body);
      const session = await service.startSession(owner, { sessionId, options }, 'rest');
      res.json({ success: true, data: { ...sessionStartedView(session), mode } });
    },

    /** POST /transcribe */
    async transcribe(req: Request, res: Response) {
      const owner = getPrincipal(req);
      const b = parseRequestBody(restRequests.transcribe, req.body);
      const timing = { waitedMs: 0 };
      let data: Awaited<ReturnType<typeof service.transcribe>>;
      try {
        data = await service.transcribe(
          owner,
          b.session_id,
          { audioData: b.audio_data, format: b.format, sampleRate: b.sample_rate, channels: b.channels },
          served,
          { start: b.activity_start, end: b.activity_end },
          timing,
        );
      } finally {
        noteDesignedWait(res, timing.waitedMs);
      }
      res.json({
        success: true,
        transcript: data.transcript,
        inputTranscription: data.inputTranscription,
        outputTranscription: data.outputTranscription,
        response: data.response,
        turnComplete: data.turnComplete,
        data,
      });
    },

    /** POST /session/end — idempotent. */
    endSession(req: Request, res: Response) {
      const owner = getPrincipal(req);
      const r = service.endSession(owner, parseRequestBody(restRequests.endSession, req.body).session_id);
      if (r.kind === 'not_found') {
        res.json({ success: true, data: sessionNotFoundView(r.sessionId) });
      } else {
        const view = sessionEndedView(r.sessionId, r.info);
        res.json({ success: true, data: r.alreadyEnded ? { ...view, alreadyEnded: true } : view });
      }
    },

    /** POST /session/tool-response: the client's answers to the model's function calls. */
    toolResponse(req: Request, res: Response) {
      const owner = getPrincipal(req);
      const body = parseRequestBody(restRequests.toolResponse, req.body);
      const answered = service.answerToolCallsById(owner, body.session_id, body.responses);
      res.json({ success: true, data: { sessionId: body.session_id, answered } });
    },

    /** GET /session/:session_id/transcript: the owner's transcript, while the session lives and for the retention after. */
    async transcript(req: Request, res: Response) {
      const owner = getPrincipal(req);
      res.json({ success: true, data: await service.transcriptOf(owner, req.params.session_id) });
    },

    /** GET /usage: the caller's own usage (today and the last 30 days) and daily budget. */
    async usage(req: Request, res: Response) {
      res.json({ success: true, data: await service.usageOf(getPrincipal(req)) });
    },

    /** GET /session/:session_id/status */
    status(req: Request, res: Response) {
      const owner = getPrincipal(req);
      res.json({ success: true, data: service.sessionStatus(owner, req.params.session_id) });
    },
  };
}

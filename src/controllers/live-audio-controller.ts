import type { Request, Response } from 'express';
import type { LiveAudioService } from '../services/live-audio-service';
import { SessionRegistry } from '../services/session/session-registry';
import { sessionEndedView, sessionListItemView, sessionStartedView } from '../services/session/session-views';
import { AppError, Errors } from '../util/app-error';
import type { Principal } from '../services/auth/principal';

const principalOf = (req: Request): Principal => {
  const p = req.principal;
  if (!p) throw new AppError(401, 'AUTH_REQUIRED', 'Access denied. No token provided.');
  return p;
};

const bodyOf = (req: Request): Record<string, unknown> => {
  const b: unknown = req.body;
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) {
    throw new AppError(400, 'INVALID_BODY', 'Request body must be a JSON object');
  }
  return b as Record<string, unknown>;
};

export interface ControllerOptions {
  service: LiveAudioService;
  emulatedNotice?: string;
  /** Cluster mode: the caller's live sessions on every instance (this one's are listed from its registry). */
  listRemote?: (principalId: string) => Promise<Array<{ sessionId: string } & Record<string, unknown>>>;
}

/** REST handlers for `/api/v1/live-audio` (contract.md §1). Business rules live in LiveAudioService. */
export function createLiveAudioController({ service, emulatedNotice, listRemote }: ControllerOptions) {
  const mode = service.emulated ? 'emulated' : 'gemini';

  return {
    /** GET /sessions — also the frontend's "connect" probe. */
    async listSessions(req: Request, res: Response) {
      const owner = principalOf(req);
      const local: Array<{ sessionId: string } & Record<string, unknown>> = service.registry.listFor(owner.id).map(sessionListItemView);
      const here = new Set(local.map((s) => s.sessionId));
      const remote = listRemote ? (await listRemote(owner.id)).filter((s) => !here.has(s.sessionId)) : [];
      const sessions = [...local, ...remote];
      res.json({
        success: true,
        data: { sessions, count: sessions.length, mode, ...(emulatedNotice ? { notice: emulatedNotice } : {}) },
      });
    },

    /** POST /session/start and /streaming/start */
    async startSession(req: Request, res: Response) {
      const owner = principalOf(req);
      const b = bodyOf(req);
      const session = await service.startSession(
        owner,
        {
          sessionId: b.session_id as string,
          model: b.model,
          responseModality: b.response_modality,
          inputTranscription: b.input_transcription,
          outputTranscription: b.output_transcription,
        },
        'rest',
      );
      res.json({ success: true, data: { ...sessionStartedView(session), mode } });
    },

    /** POST /transcribe */
    async transcribe(req: Request, res: Response) {
      const owner = principalOf(req);
      const b = bodyOf(req);
      if (b.audio_data === undefined || b.audio_data === null || b.audio_data === '') throw Errors.missingField('audio_data');
      const data = await service.transcribe(
        owner,
        b.session_id,
        { audioData: b.audio_data, format: b.format, sampleRate: b.sample_rate, channels: b.channels },
        res.locals.parsedAudio,
      );
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
      const owner = principalOf(req);
      const b = bodyOf(req);
      const sessionId = SessionRegistry.validateId(b.session_id);
      const result = service.registry.end(owner, sessionId, 'client_end');
      if (result.kind === 'live') {
        res.json({ success: true, data: sessionEndedView(sessionId, result.session.endedInfo!) });
      } else if (result.kind === 'ended') {
        res.json({ success: true, data: { ...sessionEndedView(sessionId, result.tombstone.info), alreadyEnded: true } });
      } else {
        res.json({ success: true, data: { sessionId, status: 'not_found', message: 'Session not found or expired' } });
      }
    },

    /** GET /session/:session_id/status */
    status(req: Request, res: Response) {
      const owner = principalOf(req);
      const sessionId = SessionRegistry.validateId(req.params.session_id);
      const l = service.registry.lookup(owner, sessionId);
      if (l.kind === 'live') {
        res.json({ success: true, data: l.session.status() });
      } else if (l.kind === 'ended') {
        const t = l.tombstone;
        res.json({
          success: true,
          data: {
            ...sessionEndedView(sessionId, t.info),
            startTime: t.startTime,
            model: t.model,
            responseModality: t.responseModality,
          },
        });
      } else {
        res.json({ success: true, data: { sessionId, status: 'not_found', message: 'Session not found or expired' } });
      }
    },
  };
}

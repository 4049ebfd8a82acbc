import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import type { Principal } from '../services/auth/principal';
import type { AudioFormat } from '../services/audio/audio-types';
import type { LiveAudioService } from '../services/live-audio-service';
import type { LiveSession } from '../services/session/live-session';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { AppError, Errors } from '../util/app-error';
import { decodeBase64Strict } from '../util/strict-base64';
import { fieldOf } from '../contracts/field-issues';
import { parseRequestBody } from '../middleware/request-body';
import { sniffImage } from '../websocket/handlers/model-input';
import { CloseCodes } from '../websocket/server-messages';
import { type DialectConnection, type DialectDeps, type DialectEndpoint, type DialectFrame, type DialectHandler, mountDialectSocket } from './dialect-socket';
import { admitAudio, handlerFailure, listen, newSessionId } from './dialect-session';

/**
 * Elk realtime (issue 17 §1): WebSocket `/api/ai/gemini/realtime` and HTTP `/api/ai/gemini/{initialize,send-audio,
 * conversation}`. `initialize_session` starts an ordinary session with the named profile (or continues the caller's
 * session `sessionId`, e.g. one made over HTTP); `send_audio` takes PCM at any declared rate (`audio/pcm;rate=N`,
 * `;channels=2` is mixed to mono by the decoder seam) or a container (`audio/webm`, `audio/wav`, ...). Out:
 * `transcription` (the user's words of the turn so far), `response` (each new piece of the reply), `complete` per
 * turn, `error`. Speaker labels are never added: the upstream gives no speaker information.
 */
export const ELK_WS_PATH = '/api/ai/gemini/realtime';
export const ELK_HTTP_BASE = '/api/ai/gemini';

const sessionIdField = z.string().max(128);
const mimeType = z.string().max(64).nullish();

export const elkClientMessages = {
  initialize_session: z.object({
    type: z.literal('initialize_session'),
    profile: z.string().max(64).nullish(),
    language: z.string().max(35).nullish(),
    sessionId: sessionIdField.nullish(),
  }),
  send_audio: z.object({ type: z.literal('send_audio'), audioData: z.string().min(1), mimeType }),
  send_text: z.object({ type: z.literal('send_text'), text: z.string().trim().min(1).max(16_384) }),
  send_image: z.object({ type: z.literal('send_image'), imageData: z.string().min(1), mimeType }),
  close_session: z.object({ type: z.literal('close_session') }),
} as const;

export const elkServerMessages = {
  session_initialized: z.object({ type: z.literal('session_initialized'), sessionId: z.string() }),
  transcription: z.object({ type: z.literal('transcription'), data: z.string().describe("The user's words of the current turn so far") }),
  response: z.object({ type: z.literal('response'), data: z.string().describe('A new piece of the reply text') }),
  complete: z.object({ type: z.literal('complete'), transcription: z.string(), response: z.string() }),
  session_closed: z.object({ type: z.literal('session_closed'), sessionId: z.string() }),
  error: z.object({ type: z.literal('error'), error: z.string(), code: z.string() }),
} as const;

/** HTTP bodies. */
export const elkHttpBodies = {
  initialize: z.object({ profile: z.string().max(64).nullish(), language: z.string().max(35).nullish() }),
  sendAudio: z.object({ sessionId: sessionIdField, audioData: z.string().min(1), mimeType }),
  conversation: z.object({
    sessionId: sessionIdField.nullish(),
    text: z.string().trim().min(1).max(16_384).nullish(),
    imageData: z.string().min(1).nullish(),
    audioData: z.string().min(1).nullish(),
    mimeType,
  }),
} as const;

const clientMessage = z.discriminatedUnion('type', Object.values(elkClientMessages) as unknown as [typeof elkClientMessages.initialize_session]);

/** `audio/pcm;rate=24000[;channels=2]` → PCM at that rate; `audio/webm` etc. → that container. */
export function parseAudioMime(mime: string | null | undefined): { format: AudioFormat; sampleRate?: number; channels?: number } {
  const [type = '', ...params] = (mime ?? 'audio/pcm;rate=16000').toLowerCase().split(';').map((s) => s.trim());
  const p = Object.fromEntries(params.map((kv) => kv.split('=', 2) as [string, string]));
  const sub = type.replace(/^audio\//, '');
  if (sub === 'pcm' || sub === 'l16' || sub === 'raw') return { format: 'pcm', sampleRate: p.rate ? Number(p.rate) : 16000, channels: p.channels ? Number(p.channels) : 1 };
  if (sub === 'webm' || sub === 'ogg' || sub === 'wav' || sub === 'mp4') return { format: sub };
  if (sub === 'x-wav' || sub === 'wave') return { format: 'wav' };
  throw new AppError(415, 'AUDIO_UNSUPPORTED_FORMAT', 'Unsupported mimeType: use audio/pcm;rate=N, audio/webm, audio/ogg, audio/wav or audio/mp4');
}

function decodeImage(data: string, mime: string | null | undefined): { bytes: Buffer; mime: 'image/jpeg' | 'image/png' } {
  const bytes = decodeBase64Strict(data.replace(/^data:[^,]*,/, ''), 'imageData');
  const sniffed = sniffImage(bytes);
  if (!sniffed) throw new AppError(415, 'IMAGE_UNSUPPORTED_FORMAT', 'Unsupported image: send a JPEG or PNG frame');
  if (mime && mime !== sniffed) throw new AppError(400, 'INVALID_FIELD', `Invalid field mimeType: the image is ${sniffed}`);
  return { bytes, mime: sniffed };
}

async function startElkSession(service: LiveAudioService, owner: Principal, profile?: string | null, language?: string | null): Promise<LiveSession> {
  return service.startSession(
    owner,
    {
      sessionId: newSessionId('elk'),
      options: { input_transcription: true, output_transcription: true, ...(profile ? { profile } : {}), ...(language ? { language } : {}) },
    },
    'ws',
  );
}

/**
 * The caller's live session `sessionId` (another key's id answers exactly like an unknown one: 404). `attach`: a
 * socket attaching to it (`initialize_session` with its id): a live instance serving it elsewhere hands it over.
 */
async function locateOwned(service: LiveAudioService, owner: Principal, sessionId: string, attach = false): Promise<LiveSession> {
  const s = service.findLiveSession(owner, sessionId) ?? (await service.locate(owner, sessionId, attach ? { fromLiveOwner: true } : {}));
  if (!s) throw Errors.sessionNotFound();
  return s;
}

class ElkConnection implements DialectHandler {
  private session: LiveSession | undefined;
  private stopListening: () => void = () => undefined;
  private sentUser = { turnId: 0, text: '' };

  constructor(private readonly c: DialectConnection) {}

  async onFrame(frame: DialectFrame): Promise<void> {
    if (frame.kind !== 'json') return this.error('INVALID_MESSAGE', 'Messages are JSON objects with a type');
    const r = clientMessage.safeParse(frame.value);
    if (!r.success) return this.error('INVALID_MESSAGE', 'Unknown or invalid message: expected initialize_session, send_audio, send_text, send_image or close_session');
    const msg = r.data as z.infer<(typeof elkClientMessages)[keyof typeof elkClientMessages]>;
    const svc = this.c.service;
    if (msg.type === 'initialize_session') return this.initialize(msg);
    const session = this.session;
    if (!session || session.ended) return this.error('SESSION_NOT_FOUND', 'Send initialize_session first');
    switch (msg.type) {
      case 'send_audio': {
        const pending = admitAudio(svc, this.c.principal, session, msg.audioData, parseAudioMime(msg.mimeType));
        return this.c.track(() => pending.catch((err: unknown) => this.onError(err)));
      }
      case 'send_text':
        return svc.sendText(session, msg.text);
      case 'send_image': {
        const img = decodeImage(msg.imageData, msg.mimeType);
        return svc.sendImage(session, img.bytes, img.mime);
      }
      case 'close_session':
        this.detach();
        svc.endLiveSession(session, 'client_end');
        this.c.send({ type: 'session_closed', sessionId: session.id });
        return;
    }
  }

  private async initialize(msg: z.infer<typeof elkClientMessages.initialize_session>): Promise<void> {
    if (this.session && !this.session.ended) return this.error('SESSION_ACTIVE', 'A session is already initialized on this connection');
    const session = msg.sessionId
      ? await locateOwned(this.c.service, this.c.principal, msg.sessionId, true)
      : await startElkSession(this.c.service, this.c.principal, msg.profile, msg.language);
    this.session = session;
    this.sentUser = { turnId: session.snapshot().turnId, text: session.snapshot().userText };
    // A session this socket started ends with it; one made over HTTP keeps its own lifetime (idle / max age).
    if (!msg.sessionId) this.c.hold(session);
    this.stopListening = listen(this.c.service, session, {
      update: (snap) => this.onUpdate(snap),
      replyText: (piece) => this.c.send({ type: 'response', data: piece }),
      turnComplete: (snap) => {
        this.onUpdate(snap);
        this.c.send({ type: 'complete', transcription: snap.userText, response: snap.replyText });
      },
      decodeError: (err) => this.error(err.code, err.message),
      audioCut: (cut) => this.error('AUDIO_RATE_LIMITED', `Audio data rate limit exceeded; retry after ${cut.retryAfterSec} s`),
      ended: (info) => {
        this.detach();
        if (info.reason === 'socket_closed' || info.reason === 'client_end') return;
        this.error('SESSION_ENDED', `Session ended (${info.reason}): ${info.message}`);
        this.c.close(CloseCodes.normal, 'Session ended');
      },
    });
    this.c.send({ type: 'session_initialized', sessionId: session.id });
  }

  private onUpdate(snap: TurnSnapshot): void {
    if (snap.userText === '' || (snap.turnId === this.sentUser.turnId && snap.userText === this.sentUser.text)) return;
    this.sentUser = { turnId: snap.turnId, text: snap.userText };
    this.c.send({ type: 'transcription', data: snap.userText });
  }

  private detach(): void {
    this.stopListening();
    if (this.session) this.c.release(this.session);
  }

  private error(code: string, message: string): void {
    this.c.send({ type: 'error', error: message, code });
  }

  onProblem(p: { code: string; message: string }): void {
    this.error(p.code, p.message);
  }

  onError(err: unknown): void {
    const e = handlerFailure(this.c.log, 'elk realtime', err);
    this.error(e.code, e.message);
  }

  onClose(): void {
    this.stopListening();
  }
}

/** Mounts the Elk realtime WebSocket. */
export function mountElkRealtime(d: DialectDeps): DialectEndpoint {
  return mountDialectSocket(d, ELK_WS_PATH, (c) => new ElkConnection(c));
}

function elkRefusal(issues: readonly z.core.$ZodIssue[]): AppError {
  const fields = [...new Set(issues.map(fieldOf))];
  return new AppError(400, 'INVALID_FIELD', `Invalid or missing field${fields.length > 1 ? 's' : ''}: ${fields.join(', ')}`, { fields });
}

/** Runs express handlers one after the other (as a route would), then `done`; an error or an answer stops the chain. */
function runInOrder(handlers: RequestHandler[], req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1], done: (err?: unknown) => void): void {
  const step = (i: number, err?: unknown): void => {
    if (err !== undefined || i === handlers.length) return done(err);
    try {
      void handlers[i](req, res, (e?: unknown) => step(i + 1, e));
    } catch (e) {
      done(e);
    }
  };
  step(0);
}

/** How long `POST /conversation` waits for the turn's reply. */
export const ELK_CONVERSATION_WAIT_MS = 30_000;

/**
 * Elk's HTTP routes (behind our `requireAuth`, request limits and JSON body parser, passed in): `initialize`
 * starts a session, `send-audio` feeds one (results go to the socket attached to it), `conversation` sends text,
 * an image or audio and answers with that turn's reply (starting a session when none is named).
 */
export function createElkRouter(o: {
  service: LiveAudioService;
  guards: RequestHandler[];
  startGuards: RequestHandler[];
  body: RequestHandler;
  conversationWaitMs?: number;
  /**
   * Cluster mode: our session door (src/cluster/session-door.ts), after the body is read: a call naming a session
   * another instance owns is forwarded there (and a dead owner's session taken over here), as for our REST routes.
   */
  sessionDoor?: (route: 'transcribe', where: { bodyField: string; answerWithinMs?: number }) => RequestHandler[];
}): Router {
  const r = Router();
  const svc = o.service;
  // Our one HTTP body validator, with Elk's own wording of a refusal (every offending field in one INVALID_FIELD).
  const parse = <T extends z.ZodObject>(schema: T, body: unknown): z.output<T> =>
    parseRequestBody({ schema, refusal: (_field, issues) => elkRefusal(issues) }, body);
  const wrap = (fn: RequestHandler): RequestHandler => (req, res, next) => void Promise.resolve(fn(req, res, next)).catch(next);

  r.post('/initialize', ...o.guards, ...o.startGuards, o.body, wrap(async (req, res) => {
    const b = parse(elkHttpBodies.initialize, req.body);
    const session = await startElkSession(svc, req.principal!, b.profile, b.language);
    res.json({ success: true, sessionId: session.id });
  }));

  const door = o.sessionDoor?.('transcribe', { bodyField: 'sessionId' }) ?? [];
  // A forwarded conversation call waits for the owner's whole reply wait (plus a margin), however short the
  // cluster's forward timeout.
  const conversationDoor = o.sessionDoor?.('transcribe', { bodyField: 'sessionId', answerWithinMs: (o.conversationWaitMs ?? ELK_CONVERSATION_WAIT_MS) + 5000 }) ?? [];

  r.post('/send-audio', ...o.guards, o.body, ...door, wrap(async (req, res) => {
    const b = parse(elkHttpBodies.sendAudio, req.body);
    const session = await locateOwned(svc, req.principal!, b.sessionId);
    await admitAudio(svc, req.principal!, session, b.audioData, parseAudioMime(b.mimeType));
    res.json({ success: true, sessionId: session.id });
  }));

  // A conversation call counts as a session start only when it starts one (no sessionId): the turns of a session
  // are not starts. (Decided on the parsed body, after the door: a call for another instance's session is forwarded.)
  const startsSession: RequestHandler = (req, res, next) => {
    if (typeof (req.body as { sessionId?: unknown } | undefined)?.sessionId === 'string') return next();
    runInOrder(o.startGuards, req, res, next);
  };

  r.post('/conversation', ...o.guards, o.body, ...conversationDoor, startsSession, wrap(async (req, res) => {
    const b = parse(elkHttpBodies.conversation, req.body);
    if (!b.text && !b.imageData && !b.audioData) throw Errors.missingField('text, imageData or audioData');
    const owner = req.principal!;
    const session = b.sessionId ? await locateOwned(svc, owner, b.sessionId) : await startElkSession(svc, owner);
    const turnDone = new Promise<TurnSnapshot>((resolve, reject) => {
      const timer = setTimeout(() => done(() => reject(new AppError(504, 'UPSTREAM_TIMEOUT', 'No reply from the model in time'))), o.conversationWaitMs ?? ELK_CONVERSATION_WAIT_MS);
      const off = listen(svc, session, {
        turnComplete: (snap) => done(() => resolve(snap)),
        ended: (info) => done(() => reject(new AppError(502, 'UPSTREAM_FAILED', `Session ended (${info.reason}): ${info.message}`))),
      });
      const done = (f: () => void) => {
        clearTimeout(timer);
        off();
        f();
      };
      res.on('close', () => done(() => resolve(session.snapshot())));
    });
    // (When the input below is refused, the answer's close settles this wait; it never rejects unobserved.)
    turnDone.catch(() => undefined);
    if (b.imageData) {
      const img = decodeImage(b.imageData, b.mimeType);
      svc.sendImage(session, img.bytes, img.mime);
    }
    if (b.audioData) await admitAudio(svc, owner, session, b.audioData, parseAudioMime(b.mimeType));
    if (b.text) svc.sendText(session, b.text);
    const snap = await turnDone;
    res.json({ success: true, sessionId: session.id, transcription: snap.userText, response: snap.replyText });
  }));
  return r;
}

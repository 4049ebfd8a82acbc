import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import type { BodyBudget } from '../middleware/body-budget';
import { declaredBodyLength, readBody } from '../middleware/body-reader';
import type { Principal } from '../services/auth/principal';
import type { AudioFormat } from '../services/audio/audio-types';
import type { LiveAudioService } from '../services/live-audio-service';
import type { LiveSession } from '../services/session/live-session';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { AppError, Errors } from '../util/app-error';
import { CloseCodes } from '../websocket/server-messages';
import { type DialectConnection, type DialectDeps, type DialectEndpoint, type DialectFrame, type DialectHandler, mountDialectSocket } from './dialect-socket';
import { admitAudio, handlerFailure, listen, newSessionId, startOnOpen } from './dialect-session';

/**
 * The FastAPI live handler (issue 17 §3): WebSocket `/ws/audio-live` takes MediaRecorder WebM/Opus chunks as binary
 * frames, as base64 text frames, or as `{type:'audio', data}`; it pushes `transcription` (with `is_final`),
 * `response` (each new reply piece), `turn_complete` and `error` as they arrive. `POST /audio-stream` is the batch
 * form: one audio file (multipart field `file`, optional `model`; or a raw `audio/*` body) through a short-lived
 * session, answered with its transcription and the model's answer; the session ends when the answer is sent or the
 * client goes away.
 */
export const FASTAPI_WS_PATH = '/ws/audio-live';
export const FASTAPI_BATCH_PATH = '/audio-stream';

export const fastapiClientMessages = {
  audio: z.object({ type: z.literal('audio'), data: z.string().min(1).describe('Base64 WebM/Opus (or other container) chunk') }),
} as const;

export const fastapiServerMessages = {
  ready: z.object({ type: z.literal('ready'), sessionId: z.string() }),
  transcription: z.object({ type: z.literal('transcription'), text: z.string(), is_final: z.boolean() }),
  response: z.object({ type: z.literal('response'), text: z.string().describe('A new piece of the reply text') }),
  turn_complete: z.object({ type: z.literal('turn_complete'), transcription: z.string(), response: z.string() }),
  error: z.object({ type: z.literal('error'), message: z.string(), code: z.string() }),
} as const;

export const fastapiBatchResponse = z.object({
  success: z.literal(true),
  transcription: z.string(),
  response: z.string(),
  model: z.string(),
  sessionId: z.string(),
});

const sessionOptions = (model?: string) => ({ response_modality: 'text', input_transcription: true, ...(model ? { model } : {}) });

class FastapiLiveConnection implements DialectHandler {
  private session: LiveSession | undefined;
  private readonly ready: Promise<LiveSession | undefined>;
  private stopListening: () => void = () => undefined;
  private sentUser = { turnId: 0, text: '', final: false };

  constructor(private readonly c: DialectConnection) {
    this.ready = startOnOpen(c, () => this.start(), (err) => this.onError(err));
  }

  private async start(): Promise<LiveSession> {
    const session = await this.c.service.startSession(this.c.principal, { sessionId: newSessionId('fastapi'), options: sessionOptions() }, 'ws');
    this.session = session;
    this.c.hold(session);
    this.stopListening = listen(this.c.service, session, {
      update: (snap) => this.onUpdate(snap),
      replyText: (piece) => this.c.send({ type: 'response', text: piece }),
      turnComplete: (snap) => {
        this.onUpdate(snap);
        this.c.send({ type: 'turn_complete', transcription: snap.userText, response: snap.replyText });
      },
      decodeError: (err) => this.error(err.code, err.message),
      audioCut: (cut) => this.error('AUDIO_RATE_LIMITED', `Audio data rate limit exceeded; retry after ${cut.retryAfterSec} s`),
      ended: (info) => {
        this.c.release(session);
        if (info.reason === 'socket_closed') return;
        this.error('SESSION_ENDED', `Session ended (${info.reason}): ${info.message}`);
        this.c.close(CloseCodes.normal, 'Session ended');
      },
    });
    this.c.send({ type: 'ready', sessionId: session.id });
    return session;
  }

  async onFrame(frame: DialectFrame): Promise<void> {
    const session = await this.ready;
    if (!session) return;
    let data: Buffer | string;
    if (frame.kind === 'binary') data = frame.data;
    else if (frame.kind === 'text') data = frame.text.trim();
    else {
      const r = fastapiClientMessages.audio.safeParse(frame.value);
      if (!r.success) return this.error('INVALID_MESSAGE', 'Send audio as binary frames, base64 text frames or {type:"audio", data}');
      data = r.data.data;
    }
    const pending = admitAudio(this.c.service, this.c.principal, session, data, { format: 'webm' });
    this.c.track(() => pending.catch((err: unknown) => this.onError(err)));
  }

  private onUpdate(snap: TurnSnapshot): void {
    const prev = this.sentUser;
    if (snap.userText === '' || (prev.turnId === snap.turnId && prev.text === snap.userText && prev.final === snap.userFinal)) return;
    this.sentUser = { turnId: snap.turnId, text: snap.userText, final: snap.userFinal };
    this.c.send({ type: 'transcription', text: snap.userText, is_final: snap.userFinal });
  }

  private error(code: string, message: string): void {
    this.c.send({ type: 'error', message, code });
  }

  onProblem(p: { code: string; message: string }): void {
    this.error(p.code, p.message);
  }

  onError(err: unknown): void {
    const e = handlerFailure(this.c.log, 'fastapi live', err);
    this.error(e.code, e.message);
  }

  onClose(): void {
    this.stopListening();
  }
}

/** Mounts the FastAPI live WebSocket. */
export function mountFastapiLive(d: DialectDeps): DialectEndpoint {
  return mountDialectSocket(d, FASTAPI_WS_PATH, (c) => new FastapiLiveConnection(c));
}

/** The uploaded file and the optional model, read within `maxBytes` (413 beyond). */
interface BatchUpload {
  file: Buffer;
  format: AudioFormat;
  model?: string;
}

const FORMAT_BY_TYPE: Record<string, AudioFormat> = {
  'audio/webm': 'webm',
  'audio/ogg': 'ogg',
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/wave': 'wav',
  'audio/mp4': 'mp4',
  'audio/m4a': 'mp4',
  'video/webm': 'webm',
};

/** The declared container is a hint (the decoder sniffs the bytes); unknown types are taken as WebM. */
const formatOf = (mime: string | undefined): AudioFormat => FORMAT_BY_TYPE[(mime ?? '').split(';', 1)[0]!.trim().toLowerCase()] ?? 'webm';

function readMultipart(req: IncomingMessage, maxBytes: number): Promise<BatchUpload> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 4, fieldSize: 256, parts: 6 } });
    } catch {
      return reject(new AppError(400, 'INVALID_BODY', 'Malformed multipart/form-data body'));
    }
    const parts: Buffer[] = [];
    let format: AudioFormat = 'webm';
    let model: string | undefined;
    let sawFile = false;
    let failed: AppError | undefined;
    const fail = (e: AppError) => {
      failed ??= e;
      req.unpipe(bb);
      req.resume();
      reject(failed);
    };
    bb.on('file', (name, stream, info) => {
      if (name !== 'file') {
        stream.resume();
        return;
      }
      sawFile = true;
      format = formatOf(info.mimeType);
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on('limit', () => fail(Errors.tooLarge('Audio file', maxBytes)));
    });
    bb.on('field', (name, value) => {
      if (name === 'model') model = value.trim() || undefined;
    });
    bb.on('filesLimit', () => fail(new AppError(400, 'INVALID_BODY', 'One file per request (field "file")')));
    bb.on('partsLimit', () => fail(new AppError(400, 'INVALID_BODY', 'Too many parts in the form')));
    bb.on('error', () => fail(new AppError(400, 'INVALID_BODY', 'Malformed multipart/form-data body')));
    bb.on('close', () => {
      if (failed) return;
      if (!sawFile || parts.length === 0) return reject(Errors.missingField('file'));
      resolve({ file: Buffer.concat(parts), format, model });
    });
    req.pipe(bb);
  });
}

export interface BatchOptions {
  service: LiveAudioService;
  guards: RequestHandler[];
  budget: BodyBudget;
  /** Largest file accepted (the service's chunk cap: the file goes in as one chunk). */
  maxBytes: number;
  /** How long the answer may take after the last audio was sent. */
  replyWaitMs: number;
  onRead?: (res: import('node:http').ServerResponse) => void;
}

/** `POST /audio-stream` (behind our auth and request limits). */
export function createFastapiRouter(o: BatchOptions): Router {
  const r = Router();
  r.post(FASTAPI_BATCH_PATH, ...o.guards, (req, res, next) => {
    void (async () => {
      const type = (req.headers['content-type'] ?? '').toLowerCase();
      const multipart = type.startsWith('multipart/form-data');
      if (!multipart && !type.startsWith('audio/')) {
        throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send multipart/form-data with a "file" field, or a raw audio/* body');
      }
      const declared = declaredBodyLength(req);
      if (declared !== undefined && declared !== null && declared > o.maxBytes + 64 * 1024) throw Errors.tooLarge('Audio file', o.maxBytes);
      const reservation = o.budget.reserve(req.principal!.id, declared ?? o.maxBytes);
      if (reservation instanceof AppError) throw reservation;
      res.once('close', () => reservation.release());
      const upload = multipart ? await readMultipart(req, o.maxBytes) : { file: await readBody(req, o.maxBytes), format: formatOf(type) };
      o.onRead?.(res);
      const result = await answerBatch(o, req.principal!, upload, res);
      if (!res.writableEnded && !res.destroyed) res.json(result);
    })().catch(next);
  });
  return r;
}

/** One file through a short-lived session: every turn's words and replies, then the session ends. */
async function answerBatch(o: BatchOptions, owner: Principal, upload: BatchUpload, res: import('express').Response) {
  const svc = o.service;
  const session = await svc.startSession(owner, { sessionId: newSessionId('batch'), options: sessionOptions(upload.model) }, 'rest');
  const turns: TurnSnapshot[] = [];
  let lastChange = Date.now();
  const off = listen(svc, session, {
    update: () => (lastChange = Date.now()),
    turnComplete: (snap) => {
      turns.push(snap);
      lastChange = Date.now();
    },
  });
  // The client going away ends the session (its decoder and upstream are released at once).
  const onGone = () => svc.endLiveSession(session, 'socket_closed', 'The client went away');
  res.once('close', onGone);
  try {
    await admitAudio(svc, owner, session, upload.file, { format: upload.format });
    await session.settle(o.replyWaitMs);
    const settledTurns = turns.length;
    const deadline = Date.now() + o.replyWaitMs;
    // After the last audio the session sends the end of the stream; the model's last turn then completes. Done when
    // it did (a turn completed since), or when the last turn is complete and nothing changed for a while.
    while (!session.ended && Date.now() < deadline) {
      if (turns.length > settledTurns) break;
      const snap = session.snapshot();
      if (snap.turnComplete && Date.now() - lastChange > 2500) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    if (session.ended && session.endedInfo!.reason !== 'socket_closed' && turns.length === 0) {
      throw new AppError(502, 'UPSTREAM_FAILED', `Session ended (${session.endedInfo!.reason}): ${session.endedInfo!.message}`);
    }
    const done = turns.length ? turns : [session.snapshot()];
    return {
      success: true as const,
      transcription: done.map((t) => t.userText).filter(Boolean).join(' '),
      response: done.map((t) => t.replyText).filter(Boolean).join(' '),
      model: session.params.model,
      sessionId: session.id,
    };
  } finally {
    off();
    res.off('close', onGone);
    svc.endLiveSession(session, 'client_end', 'Batch answered');
  }
}

import { z } from 'zod';
import { REPLY_SAMPLE_RATE } from '../services/audio/audio-types';
import type { LiveSession } from '../services/session/live-session';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { CloseCodes } from '../websocket/server-messages';
import { type DialectConnection, type DialectDeps, type DialectEndpoint, type DialectFrame, type DialectHandler, mountDialectSocket } from './dialect-socket';
import { admitAudio, handlerFailure, listen, newSessionId } from './dialect-session';

/**
 * The interview coach's protocol (issue 17 §2) on `/ws/interview`: `start_interview` starts an ordinary session
 * with the `interview` profile (its greeting makes the model ask the opening question unprompted); `user_audio`
 * carries speech the browser already recognised (text input); real audio may come as our `audio_chunk`. Out:
 * `gemini_ready` once the upstream is ready, `ai_response` per reply (the first with `isFirstQuestion: true`),
 * `ai_audio` (24 kHz PCM, for clients that play Gemini's voice) and `error`.
 */
export const INTERVIEW_COACH_PATH = '/ws/interview';

const optNumeric = z.union([z.number(), z.string().max(16)]).nullish();

export const interviewCoachClientMessages = {
  start_interview: z.looseObject({ type: z.literal('start_interview'), language: z.string().max(35).nullish() }),
  user_audio: z.object({ type: z.literal('user_audio'), text: z.string().trim().min(1).max(16_384).describe('What the user said (recognised in the browser)') }),
  audio_chunk: z.object({
    type: z.literal('audio_chunk'),
    audio_data: z.string().min(1),
    format: z.string().max(16).nullish(),
    sample_rate: optNumeric,
    channels: optNumeric,
  }),
} as const;

export const interviewCoachServerMessages = {
  gemini_ready: z.object({ type: z.literal('gemini_ready'), message: z.string(), sessionId: z.string() }),
  ai_response: z.object({ type: z.literal('ai_response'), text: z.string(), isFirstQuestion: z.boolean() }),
  ai_audio: z.object({ type: z.literal('ai_audio'), data: z.string().describe('Base64 PCM s16le mono'), sampleRate: z.number().int() }),
  error: z.object({ type: z.literal('error'), message: z.string(), code: z.string() }),
} as const;

const clientMessage = z.discriminatedUnion('type', [
  interviewCoachClientMessages.start_interview,
  interviewCoachClientMessages.user_audio,
  interviewCoachClientMessages.audio_chunk,
]);

class InterviewCoachConnection implements DialectHandler {
  private session: LiveSession | undefined;
  private stopListening: () => void = () => undefined;
  private answeredTurns = 0;
  private lastAnsweredTurn = 0;

  constructor(private readonly c: DialectConnection) {}

  async onFrame(frame: DialectFrame): Promise<void> {
    if (frame.kind !== 'json') return this.error('INVALID_MESSAGE', 'Messages are JSON objects with a type');
    const r = clientMessage.safeParse(frame.value);
    if (!r.success) return this.error('INVALID_MESSAGE', 'Unknown or invalid message: expected start_interview, user_audio or audio_chunk');
    const msg = r.data;
    if (msg.type === 'start_interview') return this.start(msg.language ?? undefined);
    const session = this.session;
    if (!session) return this.error('SESSION_NOT_FOUND', 'Send start_interview first');
    if (msg.type === 'user_audio') return this.c.service.sendText(session, msg.text);
    const pending = admitAudio(this.c.service, this.c.principal, session, msg.audio_data, {
      format: (msg.format ?? 'webm').toLowerCase() as 'webm',
      sampleRate: msg.sample_rate === null || msg.sample_rate === undefined ? undefined : Number(msg.sample_rate),
      channels: msg.channels === null || msg.channels === undefined ? undefined : Number(msg.channels),
    });
    this.c.track(() => pending.catch((err: unknown) => this.onError(err)));
  }

  private async start(language: string | undefined): Promise<void> {
    if (this.session && !this.session.ended) return this.error('SESSION_ACTIVE', 'The interview has already started');
    const session = await this.c.service.startSession(
      this.c.principal,
      { sessionId: newSessionId('interview'), options: { profile: 'interview', output_transcription: true, ...(language ? { language } : {}) } },
      'ws',
    );
    this.session = session;
    this.c.hold(session);
    this.stopListening = listen(this.c.service, session, {
      turnComplete: (snap) => this.answer(snap),
      replyAudio: (pcm, rate) => this.c.send(() => ({ type: 'ai_audio', data: pcm.toString('base64'), sampleRate: rate || REPLY_SAMPLE_RATE }), 'droppable', pcm.length),
      decodeError: (err) => this.error(err.code, err.message),
      audioCut: (cut) => this.error('AUDIO_RATE_LIMITED', `Audio data rate limit exceeded; retry after ${cut.retryAfterSec} s`),
      ended: (info) => {
        this.c.release(session);
        if (info.reason === 'socket_closed') return;
        this.error('SESSION_ENDED', `Interview ended (${info.reason}): ${info.message}`);
        this.c.close(CloseCodes.normal, 'Session ended');
      },
    });
    this.c.send({ type: 'gemini_ready', message: 'Gemini Live is ready: the interviewer will ask the first question', sessionId: session.id });
    // An opening that completed before anything listened (it came with the setup) is answered now.
    const snap = session.snapshot();
    if (snap.turnComplete) this.answer(snap);
  }

  /** One `ai_response` per completed reply; the first is the interviewer's opening question. */
  private answer(snap: TurnSnapshot): void {
    if (snap.turnId <= this.lastAnsweredTurn || snap.replyText === '') return;
    this.lastAnsweredTurn = snap.turnId;
    this.c.send({ type: 'ai_response', text: snap.replyText, isFirstQuestion: this.answeredTurns++ === 0 });
  }

  private error(code: string, message: string): void {
    this.c.send({ type: 'error', message, code });
  }

  onProblem(p: { code: string; message: string }): void {
    this.error(p.code, p.message);
  }

  onError(err: unknown): void {
    const e = handlerFailure(this.c.log, 'interview coach', err);
    this.error(e.code, e.message);
  }

  onClose(): void {
    this.stopListening();
  }
}

/** Mounts the interview coach dialect on `/ws/interview`. */
export function mountInterviewCoach(d: DialectDeps): DialectEndpoint {
  return mountDialectSocket(d, INTERVIEW_COACH_PATH, (c) => new InterviewCoachConnection(c));
}

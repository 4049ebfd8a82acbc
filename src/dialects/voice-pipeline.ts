import { z } from 'zod';
import type { LiveSession } from '../services/session/live-session';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { CloseCodes } from '../websocket/server-messages';
import { type DialectConnection, type DialectDeps, type DialectEndpoint, type DialectFrame, type DialectHandler, mountDialectSocket } from './dialect-socket';
import { admitAudio, handlerFailure, listen, newSessionId, startOnOpen } from './dialect-session';

/**
 * The voice pipeline's protocol (issue 17 §4) on `/ws`: base64 16 kHz PCM Int16 in, `status` / `transcript`
 * (interim and final) / `text_chunk` (new reply pieces) / `audio` (24 kHz PCM Int16) / `error` out; `interrupt`
 * stops the reply at once. One ordinary session per connection (audio replies, both transcriptions), started when
 * the socket opens and ended when it closes.
 */
export const VOICE_PIPELINE_PATH = '/ws';

export const voicePipelineClientMessages = {
  audio: z.object({ type: z.literal('audio'), data: z.string().min(1).describe('Base64 PCM s16le, 16 kHz mono') }),
  interrupt: z.object({ type: z.literal('interrupt') }),
} as const;

export const voicePipelineServerMessages = {
  status: z.object({ type: z.literal('status'), data: z.enum(['connected', 'generating', 'complete', 'interrupted']) }),
  transcript: z.object({ type: z.literal('transcript'), data: z.object({ text: z.string(), is_final: z.boolean() }) }),
  text_chunk: z.object({ type: z.literal('text_chunk'), data: z.string().describe('A new piece of the reply text') }),
  audio: z.object({ type: z.literal('audio'), data: z.string().describe('Base64 PCM s16le, 24 kHz mono') }),
  error: z.object({ type: z.literal('error'), data: z.string() }),
} as const;

const clientMessage = z.discriminatedUnion('type', [voicePipelineClientMessages.audio, voicePipelineClientMessages.interrupt]);

class VoicePipelineConnection implements DialectHandler {
  private session: LiveSession | undefined;
  private readonly ready: Promise<LiveSession | undefined>;
  private stopListening: () => void = () => undefined;
  /** Per turn: `generating` sent; the user's words as last sent; the turn the client interrupted. */
  private generatingTurn = 0;
  private sentUser = { turnId: 0, text: '', final: false };
  private droppedTurn = -1;

  constructor(private readonly c: DialectConnection) {
    this.ready = startOnOpen(c, () => this.start(), (err) => this.onError(err));
  }

  private async start(): Promise<LiveSession> {
    const session = await this.c.service.startSession(
      this.c.principal,
      { sessionId: newSessionId('voice'), options: { response_modality: 'audio', input_transcription: true, output_transcription: true } },
      'ws',
    );
    this.session = session;
    this.c.hold(session);
    this.stopListening = listen(this.c.service, session, {
      update: (snap) => this.onUpdate(snap),
      replyText: (piece, turnId) => this.onPiece(piece, turnId),
      replyAudio: (pcm) => {
        if (session.snapshot().turnId === this.droppedTurn) return;
        this.c.send(() => ({ type: 'audio', data: pcm.toString('base64') }), 'droppable', pcm.length);
      },
      turnComplete: (snap) => {
        this.onUpdate(snap);
        if (snap.turnId !== this.droppedTurn) this.c.send({ type: 'status', data: 'complete' });
      },
      interrupted: (snap) => {
        if (snap.turnId !== this.droppedTurn) this.c.send({ type: 'status', data: 'interrupted' });
      },
      decodeError: (err) => this.error(err.message),
      audioCut: (cut) => this.error(`Audio data rate limit exceeded; retry after ${cut.retryAfterSec} s`),
      ended: (info) => {
        this.c.release(session);
        if (info.reason !== 'socket_closed') {
          this.error(`Session ended (${info.reason}): ${info.message}`);
          this.c.close(CloseCodes.normal, 'Session ended');
        }
      },
    });
    this.c.send({ type: 'status', data: 'connected' });
    return session;
  }

  async onFrame(frame: DialectFrame): Promise<void> {
    const session = await this.ready;
    if (!session) return;
    if (frame.kind !== 'json') return this.error('Messages are JSON: {type:"audio", data:"<base64 PCM>"} or {type:"interrupt"}');
    const r = clientMessage.safeParse(frame.value);
    if (!r.success) return this.error('Unknown or invalid message: expected {type:"audio", data} or {type:"interrupt"}');
    if (r.data.type === 'interrupt') {
      const snap = this.c.service.interrupt(session);
      // The reply of this turn is dropped from here on (audio by the session, text and status here).
      if (!snap.turnComplete) this.droppedTurn = snap.turnId;
      this.c.send({ type: 'status', data: 'interrupted' });
      return;
    }
    const pending = admitAudio(this.c.service, this.c.principal, session, r.data.data, { format: 'pcm', sampleRate: 16000, channels: 1 });
    this.c.track(() => pending.catch((err: unknown) => this.onError(err)));
  }

  private onPiece(piece: string, turnId: number): void {
    if (turnId === this.droppedTurn) return;
    if (this.generatingTurn !== turnId) {
      this.generatingTurn = turnId;
      this.c.send({ type: 'status', data: 'generating' });
    }
    this.c.send({ type: 'text_chunk', data: piece });
  }

  private onUpdate(snap: TurnSnapshot): void {
    if (snap.userText === '') return;
    const prev = this.sentUser;
    if (prev.turnId === snap.turnId && prev.text === snap.userText && prev.final === snap.userFinal) return;
    this.sentUser = { turnId: snap.turnId, text: snap.userText, final: snap.userFinal };
    this.c.send({ type: 'transcript', data: { text: snap.userText, is_final: snap.userFinal } });
  }

  private error(message: string): void {
    this.c.send({ type: 'error', data: message });
  }

  onProblem(p: { message: string }): void {
    this.error(p.message);
  }

  onError(err: unknown): void {
    const e = handlerFailure(this.c.log, 'voice pipeline', err);
    this.error(e.message);
  }

  onClose(): void {
    this.stopListening();
  }
}

/** Mounts the voice pipeline dialect on `/ws`. */
export function mountVoicePipeline(d: DialectDeps): DialectEndpoint {
  return mountDialectSocket(d, VOICE_PIPELINE_PATH, (c) => new VoicePipelineConnection(c));
}

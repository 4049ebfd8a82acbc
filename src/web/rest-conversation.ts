import { ApiClient, ApiError, type TranscribeAnswer } from './api-client';
import { base64ToBytes, parseWav } from './audio-bytes';
import { ConversationLifecycle } from './conversation-lifecycle';
import { fromApiError, fromMicError, PlainFailure } from './plain-errors';
import { WebmChunkRecorder } from './microphone-capture';
import type { Conversation, EndInfo, Modality, PlainError } from './types';

export interface RestConversationOptions {
  api: ApiClient;
  stream: MediaStream;
  sessionId: string;
  modality: Modality;
  /** Per-session options for the start (profile, voice, language, system_instruction). */
  options?: Record<string, unknown>;
  statusEveryMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => window.setTimeout(r, ms));

/**
 * The REST transport, posting audio exactly like the Sculptor frontend: MediaRecorder WebM, 1 s timeslice,
 * one un-awaited `POST /transcribe` per chunk. Answers can overlap and arrive out of order, so an answer
 * older than the newest one shown is ignored. Reply audio comes as the turn's whole WAV so far: only the
 * part not yet played is queued.
 */
export class RestConversation extends ConversationLifecycle implements Conversation {
  readonly transport = 'rest' as const;
  readonly sessionId: string;
  private recorder: WebmChunkRecorder | null = null;
  private readonly inflight = new Set<Promise<void>>();
  private latestTurn = -1;
  private latestStamp = '';
  private readonly audioSamplesByTurn = new Map<number, number>();
  private readonly interruptedTurns = new Set<number>();
  private lastErrorCode: string | undefined;

  constructor(private readonly o: RestConversationOptions) {
    super();
    this.sessionId = o.sessionId;
  }

  async start(): Promise<void> {
    this.emit('state', 'connecting');
    if (!WebmChunkRecorder.supported()) {
      this.emit('state', 'failed');
      throw new PlainFailure(fromMicError(new DOMException('no webm', 'NotSupportedError')));
    }
    let started;
    try {
      started = await this.o.api.startSession({
        session_id: this.sessionId,
        response_modality: this.o.modality,
        input_transcription: true,
        output_transcription: true,
        ...this.o.options,
      });
    } catch (err) {
      this.emit('state', 'failed');
      throw new PlainFailure(fromApiError(err, 'start a session'));
    }
    const d = started.data;
    if (d.expiresAt) {
      const total = Date.parse(d.expiresAt) - Date.parse(d.startTime);
      this.emit('expiry', Date.now() + total, total);
    }
    try {
      this.recorder = new WebmChunkRecorder(this.o.stream, (b64) => this.post(b64));
      this.recorder.start();
    } catch (err) {
      await this.o.api.endSession(this.sessionId).catch(() => undefined);
      this.emit('state', 'failed');
      throw new PlainFailure(fromMicError(err));
    }
    this.emit('state', 'active');
    this.pollStatusEvery(this.o.statusEveryMs ?? 2000, () => void this.pollStatus());
    void this.pollStatus();
  }

  /** One chunk, one request, not awaited (the Sculptor frontend's behaviour). */
  private post(audioData: string): void {
    if (this.ended) return;
    const p = this.o.api
      .transcribe({ session_id: this.sessionId, audio_data: audioData, format: 'webm', sample_rate: 16000, channels: 1 })
      .then(
        (ans) => this.onAnswer(ans),
        (err) => this.onPostError(err),
      );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private onAnswer(ans: TranscribeAnswer): void {
    if (this.ended) return;
    this.lastErrorCode = undefined;
    const d = ans.data;
    const turnId = d.turnId ?? 0;
    if (turnId < this.latestTurn || (turnId === this.latestTurn && d.timestamp < this.latestStamp)) return;
    this.latestTurn = turnId;
    this.latestStamp = d.timestamp;
    const interrupted = !!d.interrupted;
    // The latest answer lists every call still waiting (empty once answered).
    if (Array.isArray(d.toolCalls)) this.emit('toolCalls', d.toolCalls);
    this.emit('turn', {
      turnId,
      user: ans.transcript || d.inputTranscription || '',
      reply: ans.response || '',
      turnComplete: !!d.turnComplete,
      interrupted,
    });
    if (interrupted && !this.interruptedTurns.has(turnId)) {
      this.interruptedTurns.add(turnId);
      this.emit('interrupted');
    }
    if (d.audioBuffer && !this.interruptedTurns.has(turnId)) {
      const wav = parseWav(base64ToBytes(d.audioBuffer));
      if (!wav) return;
      const done = this.audioSamplesByTurn.get(turnId) ?? 0;
      if (wav.samples.length > done) {
        this.audioSamplesByTurn.set(turnId, wav.samples.length);
        this.emit('audio', wav.samples.subarray(done), wav.sampleRate, turnId);
      }
    }
  }

  private onPostError(err: unknown): void {
    if (this.ended) return;
    if (err instanceof ApiError && (err.code === 'SESSION_NOT_FOUND' || err.code === 'SESSION_EXPIRED')) {
      void this.pollStatus();
    }
    this.report(fromApiError(err, 'send audio'));
  }

  /** Reports an error, once per run of identical codes (a failing chunk a second must not flood the page). */
  private report(e: PlainError): void {
    if (e.code && e.code === this.lastErrorCode) return;
    this.lastErrorCode = e.code;
    this.emit('error', e);
  }

  private async pollStatus(): Promise<void> {
    if (this.ended) return;
    try {
      const { data } = await this.o.api.status(this.sessionId);
      if (this.ended) return;
      if (data.status === 'active') {
        this.emit('status', {
          status: data.status,
          upstreamConnected: data.upstream?.connected ?? null,
          upstreamState: data.upstream?.state ?? null,
          reconnects: data.upstream?.reconnects ?? null,
        });
        return;
      }
      if (this.isStopping) return;
      // Ended on the server side: time limit, idle timeout, upstream failure, or another tab.
      this.emit('status', { status: data.status, upstreamConnected: false, upstreamState: 'closed', reconnects: null });
      this.finish({ status: data.status, reason: data.endReason ?? data.reason ?? data.status, message: data.endMessage ?? data.message });
    } catch (err) {
      this.report(fromApiError(err, 'read the session status'));
    }
  }

  protected stopCapture(): Promise<void> | undefined {
    return this.recorder?.stop();
  }

  async answerToolCall(id: string, response: Record<string, unknown>): Promise<void> {
    await this.o.api.toolResponse(this.sessionId, [{ id, response }]);
  }

  protected endOnUnload(): void {
    this.o.api.endSessionOnUnload(this.sessionId);
  }

  /** The last partial chunk was posted; answers still on their way are awaited briefly, then the session ends. */
  protected async endOnServer(): Promise<EndInfo> {
    await Promise.race([Promise.allSettled([...this.inflight]), sleep(4000)]);
    try {
      const { data } = await this.o.api.endSession(this.sessionId);
      return { status: data.status, reason: data.reason ?? 'client_end', message: data.message };
    } catch (err) {
      this.emit('error', fromApiError(err, 'end the session'));
      return { status: 'unknown', reason: 'end_failed' };
    }
  }
}

import { base64ToBytes, bytesToBase64, int16ToS16le, s16leToInt16 } from './audio-bytes';
import { ConversationLifecycle } from './conversation-lifecycle';
import { fromMicError, fromSocketClose, fromSocketMessage, PlainFailure } from './plain-errors';
import { PcmCapture } from './microphone-capture';
import type { Conversation, EndInfo, Modality, PlainError, ToolCallView } from './types';
import { LiveSocket, liveSocketUrl, type ServerMessage } from './ws-client';

export interface WsConversationOptions {
  token: string;
  stream: MediaStream;
  sessionId: string;
  modality: Modality;
  /** Per-session options for the start (profile, voice, language, system_instruction). */
  options?: Record<string, unknown>;
  workletUrl: string;
  url?: string;
  /** PCM chunk length per `audio_chunk` message. 200 ms: 300 messages a minute, half the server's default limit. */
  chunkMs?: number;
  statusEveryMs?: number;
}

/** Server answers that end the attempt to start (before `session_started`). */
const FATAL_BEFORE_START = new Set(['auth_failed', 'auth_timeout', 'auth_required', 'rate_limit_exceeded', 'error']);

/**
 * The WebSocket transport: 16 kHz PCM streamed in short chunks, transcription and reply audio pushed by the
 * server as they happen, `interrupted` acted on at once.
 */
export class WsConversation extends ConversationLifecycle implements Conversation {
  readonly transport = 'ws' as const;
  readonly sessionId: string;
  private readonly socket = new LiveSocket();
  private capture: PcmCapture | null = null;
  private startWaiter: { resolve: () => void; reject: (e: PlainFailure) => void } | null = null;
  private endWaiter: (() => void) | null = null;
  private turnId: number | null = null;
  private audioTurn = 0;
  private interruptedTurn: number | null = null;
  private sessionActive = false;
  /** Function calls waiting for the user's answer, in the order the model made them. */
  private readonly pendingCalls = new Map<string, ToolCallView>();

  constructor(private readonly o: WsConversationOptions) {
    super();
    this.sessionId = o.sessionId;
  }

  start(): Promise<void> {
    this.emit('state', 'connecting');
    return new Promise<void>((resolve, reject) => {
      this.startWaiter = { resolve, reject };
      this.socket.on('message', (m) => void this.onMessage(m));
      this.socket.on('close', (code, reason) => this.onClose(code, reason));
      this.socket.connect(this.o.url ?? liveSocketUrl());
    });
  }

  private failStart(e: PlainError): void {
    const w = this.startWaiter;
    this.startWaiter = null;
    this.ended = true;
    this.socket.close(1000, 'start failed');
    void this.capture?.stop();
    this.emit('state', 'failed');
    w?.reject(new PlainFailure(e));
  }

  private async onMessage(m: ServerMessage): Promise<void> {
    switch (m.type) {
      case 'connected':
        this.socket.send({ type: 'auth', token: this.o.token });
        return;
      case 'auth_success':
        this.socket.send({
          type: 'start_session',
          session_id: this.sessionId,
          response_modality: this.o.modality,
          input_transcription: true,
          output_transcription: true,
          ...this.o.options,
        });
        return;
      case 'session_started':
        await this.onSessionStarted(m);
        return;
      case 'transcription_result':
        this.onTranscription(m.data ?? {});
        return;
      case 'audio_output':
        this.onAudio(m);
        return;
      case 'interrupted':
        this.interruptedTurn = typeof m.data?.turnId === 'number' ? m.data.turnId : (this.turnId ?? this.audioTurn);
        this.emit('interrupted');
        return;
      case 'turn_complete':
        if (m.data) this.onTranscription(m.data);
        this.audioTurn++;
        return;
      case 'session_status':
        this.onStatus(m.data ?? {});
        return;
      case 'session_ended': {
        const d = m.data ?? {};
        this.finish({ status: d.status ?? 'ended', reason: d.reason ?? 'ended', message: d.message });
        return;
      }
      case 'session_detached':
        this.finish({ status: 'ended', reason: 'detached', message: 'The session was taken over by another connection (another tab?)' });
        return;
      case 'tool_call':
        for (const c of Array.isArray(m.calls) ? m.calls : []) this.pendingCalls.set(c.id, { id: c.id, name: c.name, args: c.args ?? {} });
        this.emit('toolCalls', [...this.pendingCalls.values()]);
        return;
      case 'tool_call_cancelled':
      case 'tool_call_timed_out':
        for (const id of Array.isArray(m.ids) ? m.ids : []) this.pendingCalls.delete(id);
        this.emit('toolCalls', [...this.pendingCalls.values()]);
        if (m.type === 'tool_call_timed_out') this.emit('error', { message: 'A function call was not answered in time; the model was told it failed.', code: 'TOOL_CALL_TIMED_OUT' });
        return;
      case 'tool_response_dropped':
        this.emit('error', { message: 'An answer to a function call was lost: the model restarted the conversation.', code: 'TOOL_RESPONSE_DROPPED' });
        return;
      case 'tool_response_accepted':
      case 'grounding':
      case 'pong':
      case 'rate_limit_status':
        return;
      default:
        if (m.error !== undefined || FATAL_BEFORE_START.has(m.type)) {
          const plain = fromSocketMessage(m.type, m.error ?? m.message, m.code);
          if (this.startWaiter) this.failStart(plain);
          else this.emit('error', plain);
        }
    }
  }

  private async onSessionStarted(m: ServerMessage): Promise<void> {
    const d = m.data ?? {};
    if (d.expiresAt && d.startTime) {
      const total = Date.parse(d.expiresAt) - Date.parse(d.startTime);
      this.emit('expiry', Date.now() + total, total);
    }
    this.sessionActive = true;
    this.capture = new PcmCapture(this.o.stream, {
      workletUrl: this.o.workletUrl,
      chunkMs: this.o.chunkMs ?? 200,
      onChunk: (pcm, rate) => this.sendPcm(pcm, rate),
    });
    try {
      await this.capture.start();
    } catch (err) {
      this.socket.send({ type: 'end_session' });
      this.failStart(fromMicError(err));
      return;
    }
    const w = this.startWaiter;
    this.startWaiter = null;
    this.emit('state', 'active');
    this.pollStatusEvery(this.o.statusEveryMs ?? 2000, () => this.socket.send({ type: 'get_status' }));
    this.socket.send({ type: 'get_status' });
    w?.resolve();
  }

  private sendPcm(pcm: Int16Array, sampleRate: number): void {
    if (!this.sessionActive || this.ended) return;
    // Far behind (a stalled network): drop rather than build an ever-growing delay.
    if (this.socket.bufferedAmount > 2_000_000) return;
    this.socket.send({
      type: 'audio_chunk',
      audio_data: bytesToBase64(int16ToS16le(pcm)),
      format: 'pcm',
      sample_rate: sampleRate,
      channels: 1,
    });
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
  private onTranscription(d: Record<string, any>): void {
    const turnId = typeof d.turnId === 'number' ? d.turnId : (this.turnId ?? 0);
    if (this.turnId !== null && turnId < this.turnId) return;
    if (turnId !== this.turnId) this.interruptedTurn = null;
    this.turnId = turnId;
    this.emit('turn', {
      turnId,
      user: String(d.transcript ?? d.inputTranscription ?? ''),
      reply: String(d.response ?? ''),
      turnComplete: !!d.turnComplete,
      interrupted: !!d.interrupted,
    });
  }

  private onAudio(m: ServerMessage): void {
    if (typeof m.data !== 'string') return;
    const turn = this.turnId ?? this.audioTurn;
    if (this.interruptedTurn !== null && this.interruptedTurn === turn) return;
    const pcm = s16leToInt16(base64ToBytes(m.data));
    this.emit('audio', pcm, typeof m.sample_rate === 'number' ? m.sample_rate : 24000, turn);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
  private onStatus(d: Record<string, any>): void {
    const up = d.upstream ?? {};
    this.emit('status', {
      status: String(d.status ?? 'unknown'),
      upstreamConnected: typeof up.connected === 'boolean' ? up.connected : null,
      upstreamState: typeof up.state === 'string' ? up.state : null,
      reconnects: typeof up.reconnects === 'number' ? up.reconnects : null,
    });
  }

  private onClose(code: number, reason: string): void {
    if (this.startWaiter) {
      this.failStart(fromSocketClose(code, reason));
      return;
    }
    if (this.ended) return;
    this.emit('error', fromSocketClose(code, reason));
    this.finish({ status: 'ended', reason: 'connection_closed', message: reason || `WebSocket closed (${code})` });
  }

  protected stopCapture(): Promise<void> | undefined {
    return this.capture?.stop(); // flushes the last samples into one more audio_chunk
  }

  protected override beforeEnded(): void {
    this.sessionActive = false;
    this.endWaiter?.();
  }

  protected override afterEnded(): void {
    this.socket.close(1000, 'session ended');
  }

  async answerToolCall(id: string, response: Record<string, unknown>): Promise<void> {
    if (!this.pendingCalls.has(id)) throw new PlainFailure({ message: 'That call is no longer waiting for an answer.', code: 'TOOL_CALL_NOT_PENDING' });
    this.socket.send({ type: 'tool_response', responses: [{ id, response }] });
    this.pendingCalls.delete(id);
    this.emit('toolCalls', [...this.pendingCalls.values()]);
  }

  protected endOnUnload(): void {
    this.socket.send({ type: 'end_session' });
    this.socket.close(1001, 'page closed');
  }

  protected override stopBeforeStart(): boolean {
    if (!this.startWaiter) return false;
    this.failStart({ message: 'Stopped before the session started.', code: 'STOPPED' });
    return true;
  }

  /** Asks the server to end the session and waits (at most 3 s) for its session_ended. */
  protected async endOnServer(): Promise<EndInfo> {
    this.sessionActive = false;
    const endedOnServer = new Promise<void>((resolve) => {
      this.endWaiter = resolve;
      window.setTimeout(resolve, 3000);
    });
    this.socket.send({ type: 'end_session' });
    await endedOnServer;
    return { status: 'ended', reason: 'client_end' };
  }
}

import { FunctionResponseScheduling, type LiveServerMessage, type Session } from '@google/genai';
import type { GroundingInfo, ToolCallAnswer, ToolCallRequest } from '../tools/tool-types';
import type { Logger } from '../../util/logger';
import { TypedEmitter } from '../../util/typed-emitter';
import { describeClose } from './close-codes';
import type { ActivityKind, UpstreamCloseInfo, UpstreamConnection, UpstreamEvents } from './upstream-types';

/** Parses a protobuf Duration string (`"50s"`, `"1.5s"`) into milliseconds. */
export function durationToMs(d: unknown): number {
  if (typeof d === 'number') return d * 1000;
  if (typeof d !== 'string') return 0;
  const m = /^(\d+(?:\.\d+)?)s$/.exec(d.trim());
  return m ? Math.round(Number(m[1]) * 1000) : 0;
}

const rateOf = (mime: string | undefined): number => {
  const m = /rate=(\d+)/.exec(mime ?? '');
  return m ? Number(m[1]) : 24000;
};

/** What arrived before the consumer asked for delivery, in order. */
type HeldEvent = { kind: 'message'; message: LiveServerMessage } | { kind: 'close'; info: UpstreamCloseInfo };

/** Minimal view of the SDK's underlying `ws` socket (internal, but stable across 2.x). */
export interface RawSocket {
  readyState: number;
  bufferedAmount: number;
  terminate(): void;
  ping?(data?: Buffer): void;
  on?(event: 'pong', listener: (data: Buffer) => void): unknown;
  off?(event: 'pong', listener: (data: Buffer) => void): unknown;
}

/** Our own close is confirmed by the server within this long, else the socket is torn down (reported as 1006). */
const CLOSE_CONFIRM_MS = 2000;

/**
 * Safety bound on messages held before `startDelivery()` (the consumer attaches within a few microtasks of
 * `connect()` resolving, so only what arrived with `setupComplete` is ever held).
 */
const MAX_HELD_MESSAGES = 10_000;

/**
 * One Gemini Live connection: a typed event emitter over the SDK `Session`.
 * Reads every field of every server message (parts are not mutually exclusive).
 *
 * Nothing is lost before the consumer listens: SDK 2.32.0 queues the messages that arrive with `setupComplete`
 * (e.g. a `sessionResumptionUpdate` in the same TCP read) and hands them to `onmessage` synchronously just
 * before `live.connect()` resolves, i.e. before any caller could attach a listener. So every message, and the
 * close, is held here until `startDelivery()`, then emitted in arrival order.
 */
export class GeminiLiveConnection extends TypedEmitter<UpstreamEvents> implements UpstreamConnection {
  private session: Session | undefined;
  private closedInfo: UpstreamCloseInfo | undefined;
  private closingByClient = false;
  private closeTimer: NodeJS.Timeout | undefined;
  // Transport-level acknowledgement of audio (WebSocket ping/pong; Gemini itself acks nothing):
  private audioBytesSent = 0;
  private audioBytesAcked = 0;
  private pingSeq = 0;
  /** The ping in flight: its payload and the audio byte count it covers. */
  private pingOut: { payload: Buffer; covers: number } | undefined;
  private pongSocket: RawSocket | undefined;
  private readonly onPong = (data: Buffer) => this.handlePong(data);
  /** Messages (and the close) that arrived before `startDelivery()`; undefined once delivering. */
  private held: HeldEvent[] | undefined = [];
  private heldDropped = 0;

  constructor(
    readonly id: string,
    private readonly log: Logger,
    private readonly rawSocket: () => RawSocket | undefined,
  ) {
    super();
  }

  /** Emits what was held since the setup (in arrival order), then every event as it comes. Idempotent. */
  startDelivery(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    if (this.heldDropped > 0) this.log.warn({ upstreamId: this.id, dropped: this.heldDropped }, 'upstream messages dropped before delivery started');
    for (const e of held) {
      if (e.kind === 'close') this.emitClose(e.info);
      else this.handleMessage(e.message);
    }
  }

  /** Called by the provider once `connect()` resolved. */
  attach(session: Session): void {
    this.session = session;
    const raw = this.rawSocket();
    if (raw?.on && raw.ping && !this.closedInfo) {
      raw.on('pong', this.onPong);
      this.pongSocket = raw;
    }
  }

  get isOpen(): boolean {
    return !this.closedInfo && this.rawSocket()?.readyState === 1;
  }

  get bufferedAmount(): number {
    return this.rawSocket()?.bufferedAmount ?? 0;
  }

  /** Audio bytes the server's WebSocket read before answering one of our pings (undefined: pings unavailable). */
  get ackedAudioBytes(): number | undefined {
    return this.pongSocket ? this.audioBytesAcked : undefined;
  }

  sendAudio(pcm: Buffer): number {
    if (!this.session || !this.isOpen || pcm.length === 0) return 0;
    this.session.sendRealtimeInput({ audio: { data: pcm.toString('base64'), mimeType: 'audio/pcm;rate=16000' } });
    this.audioBytesSent += pcm.length;
    this.maybePing();
    return pcm.length;
  }

  /**
   * One ping in flight at a time, sent after audio: its pong proves the server read every frame written before it
   * (TCP keeps order, and a server answers a ping only while its socket is open). A slow server just means fewer
   * pings. The payload carries a sequence number so an unsolicited pong confirms nothing.
   */
  private maybePing(): void {
    const raw = this.pongSocket;
    if (!raw?.ping || this.pingOut || this.audioBytesAcked >= this.audioBytesSent || !this.isOpen) return;
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(++this.pingSeq >>> 0);
    this.pingOut = { payload, covers: this.audioBytesSent };
    try {
      raw.ping(payload);
    } catch {
      this.pingOut = undefined;
    }
  }

  private handlePong(data: Buffer): void {
    const out = this.pingOut;
    if (!out || !Buffer.isBuffer(data) || !data.equals(out.payload)) return;
    this.pingOut = undefined;
    this.audioBytesAcked = Math.max(this.audioBytesAcked, out.covers);
    this.maybePing();
  }

  sendAudioStreamEnd(): void {
    if (this.session && this.isOpen) this.session.sendRealtimeInput({ audioStreamEnd: true });
  }

  sendActivity(kind: ActivityKind): void {
    if (!this.session || !this.isOpen) return;
    this.session.sendRealtimeInput(kind === 'start' ? { activityStart: {} } : { activityEnd: {} });
  }

  sendText(text: string): void {
    if (this.session && this.isOpen) this.session.sendRealtimeInput({ text });
  }

  sendImage(data: Buffer, mimeType: 'image/jpeg' | 'image/png'): void {
    if (this.session && this.isOpen) this.session.sendRealtimeInput({ video: { data: data.toString('base64'), mimeType } });
  }

  sendToolResponse(answers: ToolCallAnswer[]): void {
    if (!this.session || !this.isOpen || answers.length === 0) return;
    this.session.sendToolResponse({
      functionResponses: answers.map((a) => ({
        id: a.id,
        name: a.name,
        response: a.response,
        ...(a.scheduling ? { scheduling: SCHEDULING[a.scheduling] } : {}),
      })),
    });
  }

  close(): void {
    if (this.closedInfo || this.closingByClient) return;
    this.closingByClient = true;
    try {
      this.session?.close();
    } catch {
      /* already closed */
    }
    const raw = this.rawSocket();
    if (!this.session && raw) raw.terminate();
    // The SDK reports our own close as 1005 once the server answers; do not wait for a silent server. An
    // unanswered close is reported as 1006 (nothing confirms the server read what we sent last).
    this.closeTimer = setTimeout(() => {
      this.closeTimer = undefined;
      if (!this.closedInfo) {
        try {
          this.rawSocket()?.terminate();
        } catch {
          /* ignore */
        }
        this.handleClose(1006, '');
      }
    }, CLOSE_CONFIRM_MS);
    this.closeTimer.unref();
  }

  /** SDK `onclose`. */
  handleClose(code: number, reason: string): void {
    if (this.closedInfo) return;
    clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    this.pongSocket?.off?.('pong', this.onPong);
    this.pingOut = undefined;
    this.closedInfo = describeClose(code, reason ?? '', this.closingByClient);
    if (this.held) this.held.push({ kind: 'close', info: this.closedInfo });
    else this.emitClose(this.closedInfo);
  }

  private emitClose(info: UpstreamCloseInfo): void {
    this.emit('close', info);
    this.removeAllListeners();
  }

  /** SDK `onmessage`. Never throws: a throw here would become an unhandled rejection inside the SDK. */
  handleMessage(msg: LiveServerMessage): void {
    if (this.held) {
      if (this.held.length < MAX_HELD_MESSAGES) this.held.push({ kind: 'message', message: msg });
      else this.heldDropped++;
      return;
    }
    try {
      this.dispatch(msg);
    } catch (err) {
      this.log.error({ err }, 'error while handling a Gemini message');
    }
  }

  private dispatch(msg: LiveServerMessage): void {
    const sc = msg.serverContent;
    if (sc) {
      if (sc.interrupted) this.emit('interrupted');
      for (const part of sc.modelTurn?.parts ?? []) {
        if (part.inlineData?.data && (part.inlineData.mimeType ?? 'audio/pcm').startsWith('audio/')) {
          this.emit('modelAudio', Buffer.from(part.inlineData.data, 'base64'), rateOf(part.inlineData.mimeType));
        } else if (typeof part.text === 'string' && part.text && !part.thought) {
          this.emit('modelText', part.text);
        }
      }
      if (sc.groundingMetadata) this.emit('grounding', groundingOf(sc.groundingMetadata));
      if (sc.inputTranscription?.text) this.emit('inputTranscription', sc.inputTranscription.text);
      if (sc.outputTranscription?.text) this.emit('outputTranscription', sc.outputTranscription.text);
      if (sc.generationComplete) this.emit('generationComplete');
      if (sc.turnComplete) this.emit('turnComplete');
    }
    if (msg.toolCall?.functionCalls?.length) {
      const calls: ToolCallRequest[] = msg.toolCall.functionCalls
        .filter((c) => typeof c.id === 'string' && c.id.length > 0 && typeof c.name === 'string')
        .map((c) => ({ id: c.id!, name: c.name!, args: c.args && typeof c.args === 'object' ? c.args : {} }));
      if (calls.length > 0) this.emit('toolCall', calls);
    }
    if (msg.toolCallCancellation?.ids?.length) this.emit('toolCallCancellation', msg.toolCallCancellation.ids.filter((i) => typeof i === 'string'));
    if (msg.usageMetadata) this.emit('usage', msg.usageMetadata);
    if (msg.sessionResumptionUpdate) {
      const u = msg.sessionResumptionUpdate;
      this.emit('resumptionUpdate', { handle: u.newHandle || undefined, resumable: u.resumable === true });
    }
    if (msg.goAway) this.emit('goAway', durationToMs(msg.goAway.timeLeft));
  }
}

const SCHEDULING: Record<NonNullable<ToolCallAnswer['scheduling']>, FunctionResponseScheduling> = {
  silent: FunctionResponseScheduling.SILENT,
  when_idle: FunctionResponseScheduling.WHEN_IDLE,
  interrupt: FunctionResponseScheduling.INTERRUPT,
};

/** The search queries and web sources of a `groundingMetadata` (bounded: a reply cites a handful). */
export function groundingOf(g: NonNullable<NonNullable<LiveServerMessage['serverContent']>['groundingMetadata']>): GroundingInfo {
  const queries = (g.webSearchQueries ?? []).filter((q): q is string => typeof q === 'string').slice(0, 20);
  const sources = (g.groundingChunks ?? [])
    .map((c) => c.web)
    .filter((w): w is NonNullable<typeof w> => !!w && typeof w.uri === 'string')
    .slice(0, 20)
    .map((w) => ({ uri: w.uri!, ...(typeof w.title === 'string' ? { title: w.title } : {}) }));
  return { queries, sources };
}

import type { UsageMetadata } from '@google/genai';
import type { TypedEmitter } from '../../util/typed-emitter';
import type { GroundingInfo, ToolCallAnswer, ToolCallRequest } from '../tools/tool-types';

/** What a session asks of the model provider. */
export interface UpstreamSessionConfig {
  /** Model id actually used (already mapped through the model table). */
  model: string;
  responseModality: 'text' | 'audio';
  inputTranscription: boolean;
  outputTranscription: boolean;
  systemInstruction?: string;
  voiceName?: string;
  /** Resume an earlier upstream session with this handle. */
  resumptionHandle?: string;
  /** Ask for sessionResumption updates (default true). */
  sessionResumption?: boolean;
  /** Context window compression; `null` turns it off. */
  contextWindowCompression?: { triggerTokens?: number; targetTokens?: number } | null;
}

export interface UpstreamCloseInfo {
  code: number;
  reason: string;
  /** True when we closed it ourselves. */
  byClient: boolean;
  /** True when retrying cannot help (bad key, bad model, quota, invalid argument). */
  fatal: boolean;
  /** Plain-language description for operators and clients. */
  description: string;
}

/** Events of one upstream connection (typed; see `GeminiLiveConnection`). */
export interface UpstreamEvents {
  /** A fragment of the user's words (to be concatenated). */
  inputTranscription: (text: string) => void;
  /** A fragment of the transcription of the model's spoken reply. */
  outputTranscription: (text: string) => void;
  /** A fragment of a text reply (TEXT-modality models only). */
  modelText: (text: string) => void;
  /** Reply audio: 24 kHz mono s16le. */
  modelAudio: (pcm: Buffer, sampleRate: number) => void;
  generationComplete: () => void;
  turnComplete: () => void;
  interrupted: () => void;
  /** The model asks the client to run functions (several at once stay one event, in order). */
  toolCall: (calls: ToolCallRequest[]) => void;
  /** The model no longer wants these calls answered (barge-in). */
  toolCallCancellation: (ids: string[]) => void;
  /** Google Search grounding of the reply in progress. */
  grounding: (info: GroundingInfo) => void;
  /**
   * Token usage the server reported (per turn, or for a connection's setup; never cumulative). Emitted after the
   * `turnComplete` of the same message.
   */
  usage: (metadata: UsageMetadata) => void;
  /** The server will close this connection in `timeLeftMs`. */
  goAway: (timeLeftMs: number) => void;
  resumptionUpdate: (update: { handle?: string; resumable: boolean }) => void;
  /** The connection is gone. Emitted exactly once. */
  close: (info: UpstreamCloseInfo) => void;
}

/**
 * One live connection to the model. Never reused after `close`.
 *
 * Events are held from the setup on until `startDelivery()`: a server may send messages (a resumption handle,
 * usage, even model audio) in the same read as `setupComplete`, before `connect()` has resolved. The consumer
 * attaches its listeners, then calls `startDelivery()`; the held events (the close included) follow in order.
 */
/** A manual activity marker (the client brackets its speech with them when automatic detection is off). */
export type ActivityKind = 'start' | 'end';

export interface UpstreamConnection extends TypedEmitter<UpstreamEvents> {
  readonly id: string;
  readonly isOpen: boolean;
  /** Emits the events held since the setup, in order, then each event as it comes. Idempotent. */
  startDelivery(): void;
  /** 16 kHz mono s16le PCM. Returns the number of bytes handed to the socket (0 if closed). */
  sendAudio(pcm: Buffer): number;
  sendAudioStreamEnd(): void;
  /** Manual activity detection: `realtimeInput.activityStart {}` / `activityEnd {}`. */
  sendActivity(kind: ActivityKind): void;
  sendText(text: string): void;
  sendImage(data: Buffer, mimeType: 'image/jpeg' | 'image/png'): void;
  /** Answers to the model's function calls (`toolResponse`). */
  sendToolResponse(answers: ToolCallAnswer[]): void;
  /** Bytes queued in the socket and not yet sent (backpressure signal). */
  readonly bufferedAmount: number;
  /**
   * Audio bytes (counted as `sendAudio` returned them) that the server's transport confirmed it received,
   * e.g. through a WebSocket ping sent after them whose pong came back. Undefined when the transport cannot
   * tell; the resilient link then assumes nothing was confirmed. Gemini has no application-level ack for audio
   * on the Developer API (`transparent` resumption is Vertex-only).
   */
  readonly ackedAudioBytes?: number;
  /** Closes the connection; a `close` event with `byClient: true` follows (code 1005 when the server answered). */
  close(): void;
}

export interface UpstreamConnectOptions {
  /** Aborting gives up the attempt at once: the socket is torn down and `connect` rejects (not fatal). */
  signal?: AbortSignal;
}

/** The upstream seam. Implementations: `GeminiLiveProvider` (the real SDK, also used against the emulator). */
export interface UpstreamProvider {
  /**
   * Resolves once the server confirmed the setup; rejects with `UpstreamConnectError` otherwise (bounded). The
   * connection holds its events until `startDelivery()` (see `UpstreamConnection`).
   */
  connect(config: UpstreamSessionConfig, opts?: UpstreamConnectOptions): Promise<UpstreamConnection>;
  /** True when replies come from the built-in emulator (offline demo mode). */
  readonly emulated: boolean;
}

export class UpstreamConnectError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
    readonly closeCode?: number,
    readonly closeReason?: string,
  ) {
    super(message);
    this.name = 'UpstreamConnectError';
  }
}

/** Types shared by the page's modules: what a conversation reports to the UI, whichever transport carries it. */

export type Transport = 'ws' | 'rest';
export type Modality = 'text' | 'audio';

/** connecting → active → stopping → ended; `failed` when it could not start. */
export type ConversationState = 'connecting' | 'active' | 'stopping' | 'ended' | 'failed';

/** The current (or last) turn: cumulative texts, as the server sends them. */
export interface TurnView {
  turnId: number;
  /** The user's words. */
  user: string;
  /** The model's reply text. */
  reply: string;
  turnComplete: boolean;
  interrupted: boolean;
}

export interface StatusView {
  /** Server-side session status: active, ended, expired, not_found. */
  status: string;
  upstreamConnected: boolean | null;
  upstreamState: string | null;
  reconnects: number | null;
}

/** An error as the page shows it: a sentence for people, the server's code for support. */
export interface PlainError {
  message: string;
  code?: string;
}

export interface EndInfo {
  status: string;
  reason: string;
  message?: string;
}

/** A function call the model waits on (issue 16): the page lets the user answer it by hand. */
export interface ToolCallView {
  id: string;
  name: string;
  args: Record<string, unknown>;
}

export interface ConversationEvents {
  /** The calls waiting for an answer now (the whole list, every time it changes). */
  toolCalls: (pending: ToolCallView[]) => void;
  state: (s: ConversationState) => void;
  /** When the session ends on the server, on the local clock (ms since epoch), and its full length (ms). */
  expiry: (expiresAtLocalMs: number, totalMs: number) => void;
  turn: (t: TurnView) => void;
  /** Reply audio: 16-bit mono samples at `sampleRate` (24 kHz), tagged with their turn when known. */
  audio: (pcm: Int16Array, sampleRate: number, turnId: number | null) => void;
  /** The model was interrupted (barge-in): stop playing at once. */
  interrupted: () => void;
  status: (s: StatusView) => void;
  error: (e: PlainError) => void;
  ended: (info: EndInfo) => void;
}

/** One live session with the server, over REST or WebSocket. */
export interface Conversation {
  readonly sessionId: string;
  readonly transport: Transport;
  /** Resolves once audio is flowing; rejects with a PlainError-carrying Error if the session cannot start. */
  start(): Promise<void>;
  /** Stops the microphone, flushes the last audio and ends the session on the server. Idempotent. */
  stop(): Promise<void>;
  /** Answers one of the model's function calls (rejects with the server's refusal, e.g. a 409). */
  answerToolCall(id: string, response: Record<string, unknown>): Promise<void>;
  /** Best-effort, synchronous end for page unload: asks the server to end the session, waits for nothing. */
  endNow(): void;
  on<K extends keyof ConversationEvents>(event: K, fn: ConversationEvents[K]): () => void;
}

/** Session ids the server accepts: `^[A-Za-z0-9_-]{1,128}$`. */
export function newSessionId(prefix: string): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return `${prefix}_${Date.now()}_${rand}`;
}

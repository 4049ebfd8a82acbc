import type { TranscriptionData } from '../services/session/session-views';
/** The REST API under /api/v1/live-audio, as the page uses it (same origin, `X-API-Key`). */

/** The server answered with an error (`{success:false, error, code}`) or a non-2xx status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The request never got an answer (server down, network gone). */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

export interface SessionsAnswer {
  success: true;
  data: { sessions: unknown[]; count: number; mode?: 'emulated' | 'gemini'; notice?: string };
}

export interface SessionStartedAnswer {
  success: true;
  data: { sessionId: string; status: string; startTime: string; expiresAt?: string; model: string; responseModality: string; mode?: string };
}

/** The turn state `/transcribe` answers: the server's own type (type-only import, erased from the page bundle). */
export type { TranscriptionData };

export interface TranscribeAnswer {
  success: true;
  transcript: string;
  inputTranscription: string;
  outputTranscription: string;
  response: string;
  turnComplete: boolean;
  data: TranscriptionData;
}

export interface SessionStatusData {
  sessionId: string;
  status: string;
  startTime?: string;
  expiresAt?: string;
  upstream?: { state?: string; connected?: boolean; reconnects?: number };
  endReason?: string;
  endMessage?: string;
  reason?: string;
  message?: string;
}

export interface StartSessionBody {
  session_id: string;
  response_modality: 'text' | 'audio';
  input_transcription: boolean;
  output_transcription: boolean;
  model?: string;
  /** Per-session options (profile, voice, language, system_instruction, …), sent as they are. */
  [option: string]: unknown;
}

/** One turn of `GET /session/:id/transcript`. */
export interface TranscriptTurnView {
  kind: 'greeting' | 'user';
  userText: string;
  replyText: string;
  interrupted: boolean;
}

export interface TranscriptAnswer {
  success: true;
  data: { turns: TranscriptTurnView[]; live: boolean; usage: { totalTokens: number } };
}

export interface TranscribeBody {
  session_id: string;
  audio_data: string;
  format: 'webm' | 'wav' | 'pcm';
  sample_rate: number;
  channels: number;
}

export class ApiClient {
  constructor(
    private readonly apiKey: string,
    private readonly base = '/api/v1/live-audio',
  ) {}

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'X-API-Key': this.apiKey };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new NetworkError('The server did not answer');
    }
    let json: unknown = null;
    try {
      json = await res.json();
    } catch {
      /* not JSON */
    }
    const obj = (json && typeof json === 'object' ? json : {}) as { success?: boolean; error?: unknown; code?: unknown };
    if (!res.ok || obj.success === false) {
      const msg = typeof obj.error === 'string' ? obj.error : `HTTP ${res.status} ${res.statusText}`.trim();
      throw new ApiError(res.status, typeof obj.code === 'string' ? obj.code : undefined, msg);
    }
    return json as T;
  }

  listSessions(): Promise<SessionsAnswer> {
    return this.request('GET', '/sessions');
  }

  startSession(body: StartSessionBody): Promise<SessionStartedAnswer> {
    return this.request('POST', '/session/start', body);
  }

  transcribe(body: TranscribeBody): Promise<TranscribeAnswer> {
    return this.request('POST', '/transcribe', body);
  }

  endSession(sessionId: string): Promise<{ success: true; data: SessionStatusData }> {
    return this.request('POST', '/session/end', { session_id: sessionId });
  }

  /** For page unload: a keepalive request the browser finishes even after the page is gone. */
  endSessionOnUnload(sessionId: string): void {
    void fetch(`${this.base}/session/end`, {
      method: 'POST',
      keepalive: true,
      headers: { 'X-API-Key': this.apiKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ session_id: sessionId }),
      credentials: 'omit',
    }).catch(() => undefined);
  }

  /** Answers function calls the model made (`data.toolCalls` of /transcribe). */
  toolResponse(sessionId: string, responses: { id: string; response: Record<string, unknown> }[]): Promise<{ success: true }> {
    return this.request('POST', '/session/tool-response', { session_id: sessionId, responses });
  }

  transcript(sessionId: string): Promise<TranscriptAnswer> {
    return this.request('GET', `/session/${encodeURIComponent(sessionId)}/transcript`);
  }

  status(sessionId: string): Promise<{ success: true; data: SessionStatusData }> {
    return this.request('GET', `/session/${encodeURIComponent(sessionId)}/status`);
  }
}

import { Emitter } from './emitter';

/**
 * `/ws/live-audio` (README "WebSocket API", with the project's fixes): JSON text frames only. The client authenticates
 * with a first `{type:'auth', token}` message (the key stays out of URLs and logs), then starts a session.
 */

export interface ServerMessage {
  type: string;
  session_id?: string | null;
  error?: string;
  code?: string;
  message?: string;
  required_auth?: boolean;
  sample_rate?: number;
  /** `tool_call`: the calls the model makes. */
  calls?: { id: string; name: string; args?: Record<string, unknown> }[];
  /** `tool_call_cancelled`, `tool_call_timed_out`, `tool_response_dropped`: the call ids. */
  ids?: string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
  data?: any;
}

export type ClientMessage =
  | { type: 'auth'; token: string }
  | {
      type: 'start_session';
      session_id?: string;
      model?: string;
      response_modality: 'text' | 'audio';
      input_transcription: boolean;
      output_transcription: boolean;
    }
  | { type: 'audio_chunk'; audio_data: string; format: 'webm' | 'pcm' | 'wav'; sample_rate: number; channels: number }
  | { type: 'end_session' }
  | { type: 'get_status' }
  | { type: 'text'; text: string }
  | { type: 'interrupt' }
  | { type: 'tool_response'; responses: { id: string; response: Record<string, unknown> }[] };

export interface LiveSocketEvents {
  open: () => void;
  message: (m: ServerMessage) => void;
  close: (code: number, reason: string, wasClean: boolean) => void;
}

export function liveSocketUrl(loc: Location = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws/live-audio`;
}

export class LiveSocket extends Emitter<LiveSocketEvents> {
  private ws: WebSocket | null = null;
  private closed = false;

  connect(url: string = liveSocketUrl()): void {
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => this.emit('open');
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data !== 'string') return;
      let m: unknown;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (m && typeof m === 'object' && typeof (m as ServerMessage).type === 'string') this.emit('message', m as ServerMessage);
    };
    ws.onclose = (ev: CloseEvent) => {
      this.closed = true;
      this.emit('close', ev.code, ev.reason, ev.wasClean);
    };
  }

  get isOpen(): boolean {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued in the browser and not yet sent (back-pressure). */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  send(m: ClientMessage): boolean {
    if (!this.isOpen) return false;
    this.ws!.send(JSON.stringify(m));
    return true;
  }

  close(code = 1000, reason = 'client done'): void {
    if (!this.ws || this.closed) return;
    this.closed = true;
    try {
      this.ws.close(code, reason);
    } catch {
      /* already closing */
    }
  }
}

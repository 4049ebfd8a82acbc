/**
 * Minimal clients for the server under test: REST calls on a keep-alive agent (the frontend's requests) and a
 * WebSocket session client (`/ws/live-audio`).
 */
import http from 'node:http';
import WebSocket from 'ws';

export const API = '/api/v1/live-audio';

export interface RestReply {
  status: number;
  body: any;
  ms: number;
}

export class RestClient {
  readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  /**
   * `maxSockets` 6 with keep-alive is what a browser allows per origin; the load generator gives each session a
   * client of its own, as each user has a browser of their own. (One agent shared by hundreds of sessions keeps
   * hundreds of idle sockets, some of which the server closes after its 5 s keep-alive timeout just as the agent
   * reuses them: `ECONNRESET`, a lost chunk.)
   */
  constructor(
    baseUrl: string,
    private readonly apiKey: string,
    maxSockets = 6,
  ) {
    const u = new URL(baseUrl);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, scheduling: 'fifo' });
  }

  /**
   * POSTs a JSON body (a string, so callers can build large bodies once). `onSent` is called when the request was
   * handed to the socket layer. Never rejects: network errors come back as status 0.
   */
  post(path: string, body: string, onSent?: () => void): Promise<RestReply> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      const payload = Buffer.from(body);
      const req = http.request(
        {
          agent: this.agent,
          host: this.host,
          port: this.port,
          method: 'POST',
          path,
          headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length, 'X-API-Key': this.apiKey },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => {
            let parsed: any;
            try {
              parsed = JSON.parse(Buffer.concat(parts).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - t0 });
          });
          res.on('error', (err) => resolve({ status: 0, body: { error: err.message }, ms: performance.now() - t0 }));
        },
      );
      req.on('error', (err) => resolve({ status: 0, body: { error: err.message }, ms: performance.now() - t0 }));
      req.end(payload);
      onSent?.();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export type WsMsg = Record<string, any> & { type: string };

/** One `/ws/live-audio` connection, authenticated with `?token=`. */
export class WsSessionClient {
  readonly ws: WebSocket;
  private waiters: { pred: (m: WsMsg) => boolean; resolve: (m: WsMsg) => void }[] = [];
  onMessage?: (m: WsMsg, at: number) => void;
  readonly closed: Promise<void>;

  constructor(wsUrl: string, apiKey: string) {
    this.ws = new WebSocket(`${wsUrl}?token=${encodeURIComponent(apiKey)}`, { perMessageDeflate: false });
    this.ws.on('message', (data) => {
      const at = performance.now();
      let m: WsMsg;
      try {
        m = JSON.parse(data.toString());
      } catch {
        return;
      }
      this.onMessage?.(m, at);
      const ready = this.waiters.filter((w) => w.pred(m));
      this.waiters = this.waiters.filter((w) => !ready.includes(w));
      for (const w of ready) w.resolve(m);
    });
    this.ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  /** Resolves with the first message matching `pred` (from now on); rejects on close or after `timeoutMs`. */
  next(pred: (m: WsMsg) => boolean, timeoutMs: number, what: string): Promise<WsMsg> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== entry);
        reject(new Error(`timeout waiting for ${what}`));
      }, timeoutMs);
      const entry = {
        pred,
        resolve: (m: WsMsg) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      this.waiters.push(entry);
      void this.closed.then(() => {
        clearTimeout(timer);
        reject(new Error(`socket closed waiting for ${what}`));
      });
    });
  }

  send(msg: object | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Connects and authenticates (`auth_success`), then starts a session (`session_started`). */
  async open(sessionId: string, timeoutMs = 30_000): Promise<void> {
    const authed = this.next((m) => m.type === 'auth_success' || m.type === 'auth_failed' || m.type === 'error', timeoutMs, 'auth_success');
    const a = await authed;
    if (a.type !== 'auth_success') throw new Error(`auth: ${a.type} ${a.code ?? ''}`);
    const started = this.next((m) => m.type === 'session_started' || m.type === 'error', timeoutMs, 'session_started');
    this.send({ type: 'start_session', session_id: sessionId, response_modality: 'text', input_transcription: true, output_transcription: true });
    const s = await started;
    if (s.type !== 'session_started') throw new Error(`start_session: ${s.code ?? s.type} ${s.error ?? ''}`);
  }

  /** Ends the session (`session_ended`) and closes the socket. */
  async end(timeoutMs = 10_000): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) {
      const ended = this.next((m) => m.type === 'session_ended', timeoutMs, 'session_ended').catch(() => undefined);
      this.send({ type: 'end_session' });
      await ended;
      this.ws.close(1000);
    } else if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
    const t = setTimeout(() => this.ws.terminate(), 5_000);
    await this.closed;
    clearTimeout(t);
  }
}

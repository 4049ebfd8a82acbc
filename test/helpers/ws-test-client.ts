import WebSocket, { type ClientOptions } from 'ws';

export type Msg = Record<string, any> & { type: string };

export interface CloseInfo {
  code: number;
  reason: string;
}

/** The result of an upgrade the server refused with an HTTP answer. */
export interface RefusedUpgrade {
  status: number;
  body: any;
}

/**
 * A real `ws` client that records every server message (with its arrival time) and the close, with helpers to
 * wait for messages in order.
 */
export class WsTestClient {
  readonly messages: Msg[] = [];
  readonly arrivals: number[] = [];
  closeInfo: CloseInfo | undefined;
  readonly closed: Promise<CloseInfo>;
  private cursor = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    let resolveClosed!: (c: CloseInfo) => void;
    this.closed = new Promise((r) => (resolveClosed = r));
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()));
      this.arrivals.push(Date.now());
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      resolveClosed(this.closeInfo);
      this.notify();
    });
    ws.on('error', () => undefined);
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  ofType(type: string): Msg[] {
    return this.messages.filter((m) => m.type === type);
  }

  /** Resolves when `pred` holds (checked on every message and on close); rejects after `timeoutMs`. */
  async until<T>(pred: () => T | undefined | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = pred();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got: ${this.messages.map((m) => m.type).join(', ')}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next message (after those already taken with `next`) matching `type` and `pred`. */
  async next(type: string, pred: (m: Msg) => boolean = () => true, timeoutMs = 5000): Promise<Msg> {
    return this.until(
      () => {
        for (let i = this.cursor; i < this.messages.length; i++) {
          const m = this.messages[i];
          if (m.type === type && pred(m)) {
            this.cursor = i + 1;
            return m;
          }
        }
        return undefined;
      },
      timeoutMs,
      `a ${type} message`,
    );
  }

  /** Sends a message and waits for the next reply of `type`. */
  async request(msg: unknown, type: string, timeoutMs = 5000): Promise<Msg> {
    this.send(msg);
    return this.next(type, () => true, timeoutMs);
  }

  waitClose(timeoutMs = 5000): Promise<CloseInfo> {
    return this.until(() => this.closeInfo, timeoutMs, 'close');
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

export function wsUrl(httpUrl: string, query: Record<string, string> = {}, path = '/ws/live-audio'): string {
  const u = new URL(path, httpUrl.replace(/^http/, 'ws'));
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.toString();
}

/** Opens a socket; resolves once open (messages are recorded from the start). */
export function connect(url: string, opts: ClientOptions = {}): Promise<WsTestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
    const client = new WsTestClient(ws);
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`upgrade refused with ${res.statusCode}`));
      res.resume();
    });
    ws.once('error', reject);
  });
}

/** Opens a socket expecting the upgrade to be refused; resolves with the HTTP status and JSON body. */
export function connectRefused(url: string, opts: ClientOptions = {}): Promise<RefusedUpgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
    ws.once('open', () => {
      ws.close();
      reject(new Error('upgrade unexpectedly accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        let parsed: unknown = body;
        try {
          parsed = JSON.parse(body);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    ws.on('error', () => undefined);
  });
}

/** Connects and authenticates with the token in the query; resolves after auth_success. */
export async function connectAuthed(httpUrl: string, token: string, opts: ClientOptions = {}): Promise<WsTestClient> {
  const c = await connect(wsUrl(httpUrl, { token }), opts);
  await c.next('auth_success');
  return c;
}

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
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      try {
        this.messages.push(JSON.parse(data.toString()));
      } catch {
        // (Fuzzing and attack tests look for this: the server never sends it.)
        this.messages.push({ type: '__unparseable__', raw: data.toString() });
      }
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

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  /** Sends only while the socket is open (attack and fuzz loops that race the server's close). */
  sendIfOpen(msg: unknown): void {
    if (this.isOpen) this.send(msg);
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

  /**
   * The first message at index `from` or later matching `pred` (whatever `next` took); rejects after `timeoutMs`,
   * or at once when the socket closed without one.
   */
  async waitFor(pred: (m: Msg) => boolean, timeoutMs = 5000, from = 0): Promise<Msg> {
    const found = await this.until(
      () => this.messages.slice(from).find(pred) ?? (this.closeInfo ? ('closed' as const) : undefined),
      timeoutMs,
      'a matching message',
    );
    if (found === 'closed') {
      throw new Error(`closed (${JSON.stringify(this.closeInfo)}) without a matching message; got ${JSON.stringify(this.messages.slice(-5))}`);
    }
    return found;
  }

  /** Sends `msg` and waits for the first later message of one of `types`. */
  async ask(msg: unknown, types: string[], timeoutMs = 5000): Promise<Msg> {
    const from = this.messages.length;
    this.sendIfOpen(msg);
    return this.waitFor((m) => types.includes(m.type), timeoutMs, from);
  }

  waitClose(timeoutMs = 5000): Promise<CloseInfo> {
    return this.until(() => this.closeInfo, timeoutMs, 'close');
  }

  /** Closes the socket; resolves once it is closed (terminated if the server has not answered within 1 s). */
  close(): Promise<void> {
    if (this.closeInfo) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000).unref();
    });
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
      reject(new Error(`upgrade refused: ${res.statusCode}`));
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

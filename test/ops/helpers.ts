import fs from 'node:fs';
import WebSocket from 'ws';

/** Child processes of `pid` whose command name is `name` (Linux /proc). */
export function childProcesses(pid: number, name?: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...
      const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
      if (!m || Number(m[3]) !== pid || m[2] === 'Z') continue;
      if (name && m[1] !== name) continue;
      out.push(Number(entry));
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

/** True while `/proc/<pid>` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


export type WsMsg = Record<string, unknown> & { type?: string };

/** A small WebSocket client for `/ws/live-audio` (README "WebSocket API"): collects JSON messages and the close. */
export class WsProbe {
  readonly messages: WsMsg[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      try {
        this.messages.push(JSON.parse(data.toString()) as WsMsg);
      } catch {
        this.messages.push({ type: '__unparseable__', raw: data.toString() });
      }
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on('error', () => undefined);
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<WsProbe> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const p = new WsProbe(ws);
      ws.once('open', () => resolve(p));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(msg: unknown): void {
    if (this.isOpen) this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  /** The first message after index `from` matching `pred`, waiting up to `ms`. */
  async waitFor(pred: (m: WsMsg) => boolean, ms = 5000, from = 0): Promise<WsMsg> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.slice(from).find(pred);
      if (found) return found;
      if (this.closed || Date.now() >= deadline) {
        throw new Error(`no matching message within ${ms} ms (closed: ${JSON.stringify(this.closed)}); got ${JSON.stringify(this.messages.slice(-5))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends `msg` and waits for the next message of one of `types`. */
  async request(msg: unknown, types: string[], ms = 5000): Promise<WsMsg> {
    const from = this.messages.length;
    this.send(msg);
    return this.waitFor((m) => types.includes(String(m.type)), ms, from);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
      setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 1000).unref();
    });
  }
}

export const wsUrlOf = (httpUrl: string, token?: string) =>
  `${httpUrl.replace(/^http/, 'ws')}/ws/live-audio${token ? `?token=${encodeURIComponent(token)}` : ''}`;

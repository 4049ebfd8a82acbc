import net from 'node:net';

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses the first HTTP/1.1 response in `text` that is not `100 Continue` (Content-Length bodies only). */
export function parseResponse(text: string): ParsedResponse | undefined {
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    if (status === 100) {
      rest = rest.slice(end + 4);
      continue;
    }
    const len = Number(headers['content-length'] ?? 0);
    const body = rest.slice(end + 4, end + 4 + len);
    if (Buffer.byteLength(body) < len) return undefined;
    return { status, headers, body };
  }
}

/**
 * A client speaking raw HTTP on one TCP connection, for what well-behaved clients never do: bodies announced and
 * never sent, headers dribbled, sockets held. Records everything received and when the server closed.
 */
export class RawConn {
  private received = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  /** When the server ended or reset the connection (performance.now()), if it did. */
  closedAt: number | undefined;
  closeError: string | undefined;
  /** When the server's FIN arrived (performance.now()), if it did. */
  endedAt: number | undefined;
  /** Bytes this client had written when the first response byte arrived, and when that was. */
  writtenAtFirstByte: number | undefined;
  firstByteAt: number | undefined;
  written = 0;
  readonly openedAt = performance.now();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      if (this.writtenAtFirstByte === undefined) {
        this.writtenAtFirstByte = this.written;
        this.firstByteAt = performance.now();
      }
      this.received = Buffer.concat([this.received, d]);
      this.wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.closeError = e.code ?? e.message;
    });
    socket.on('end', () => {
      this.endedAt = performance.now();
      this.wake();
    });
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.wake();
    });
  }

  /** `allowHalfOpen`: keep sending after the server's FIN (a client that ignores the end of the answer). */
  static open(port: number, opts: { localAddress?: string; host?: string; allowHalfOpen?: boolean } = {}): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress, allowHalfOpen: opts.allowHalfOpen });
      const c = new RawConn(s);
      s.once('connect', () => resolve(c));
      s.once('error', reject);
    });
  }

  get text(): string {
    return this.received.toString('latin1');
  }

  get closed(): boolean {
    return this.closedAt !== undefined;
  }

  write(data: string | Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    this.written += b.length;
    this.socket.write(b);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `pred()` holds (checked on every event), or throws after `ms`. */
  async until(pred: () => boolean, ms: number, what = 'condition'): Promise<void> {
    const deadline = performance.now() + ms;
    while (!pred()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${what} not reached within ${ms} ms; received ${JSON.stringify(this.text.slice(0, 300))}, closed=${this.closed}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The first complete response, waiting up to `ms`. */
  async response(ms = 5000): Promise<ParsedResponse> {
    await this.until(() => parseResponse(this.text) !== undefined, ms, 'a complete response');
    return parseResponse(this.text)!;
  }

  /** Resolves once the server closed the connection; throws after `ms`. */
  async waitClosed(ms = 5000): Promise<number> {
    await this.until(() => this.closed, ms, 'the server closing the connection');
    return this.closedAt!;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A request head (request line and headers, ending with the blank line). */
export function head(method: string, path: string, headers: Record<string, string | number>): string {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
}

/** `depth` nested arrays: `[[[…]]]`. */
export const nestedArrays = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

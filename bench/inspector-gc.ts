/**
 * Forces a full garbage collection in the server from outside, through the V8 inspector
 * (`HeapProfiler.collectGarbage`): the soak starts its server with `--inspect=127.0.0.1:0` (loopback, a random
 * port, a throwaway process) so that memory can be compared without garbage in it. The server needs no code for it.
 */
import WebSocket from 'ws';

/** The inspector URL from the server's stderr ("Debugger listening on ws://…"). */
export function inspectorUrl(output: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
}

interface InspectorReply {
  error?: { message: string };
  result?: unknown;
}

export class InspectorSession {
  private nextId = 1;
  private readonly pending = new Map<number, (msg: InspectorReply) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as InspectorReply & { id?: number };
      if (msg.id !== undefined) this.pending.get(msg.id)?.(msg);
    });
  }

  static connect(url: string): Promise<InspectorSession> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(new InspectorSession(ws)));
      ws.once('error', reject);
    });
  }

  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, (msg) => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (msg.error) reject(new Error(`inspector ${method}: ${msg.error.message}`));
        else resolve(msg.result);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** A full, compacting collection. */
  async collectGarbage(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
  }

  /** Evaluates a JSON-returning expression in the process (its globals: `process`, ...) and returns the value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.call('Runtime.evaluate', { expression, returnByValue: true })) as {
      result?: { value?: T };
      exceptionDetails?: { text: string };
    };
    if (r.exceptionDetails) throw new Error(`inspector evaluate: ${r.exceptionDetails.text}`);
    return r.result?.value as T;
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * A scripted fake of the upstream seam (UpstreamProvider / UpstreamConnection) for fast, deterministic unit tests
 * of ResilientUpstream under jest fake timers.
 */
import { describeClose } from '../../src/services/upstream/close-codes';
import {
  UpstreamConnectError,
  type ActivityKind,
  type UpstreamCloseInfo,
  type UpstreamConnectOptions,
  type UpstreamConnection,
  type UpstreamEvents,
  type UpstreamProvider,
  type UpstreamSessionConfig,
} from '../../src/services/upstream/upstream-types';
import { TypedEmitter } from '../../src/util/typed-emitter';

export class FakeConnection extends TypedEmitter<UpstreamEvents> implements UpstreamConnection {
  readonly audio: Buffer[] = [];
  readonly texts: string[] = [];
  streamEnds = 0;
  closeCalls = 0;
  /** Answer our close with 1005 (like a healthy server); false = never answer. */
  echoClose = true;
  /** What the transport confirmed (undefined = no ack support). */
  acked: number | undefined = 0;
  /** When true, every frame sent is confirmed at once. */
  autoAck = true;
  sentBytes = 0;
  private closed: UpstreamCloseInfo | undefined;
  /** The "socket" died but the close event has not been seen yet (sends still "succeed"). */
  deadSocket = false;
  /** Like the real connection, events wait for `startDelivery()` (undefined once delivering). */
  private held: (() => void)[] | undefined = [];

  constructor(
    readonly id: string,
    readonly config: UpstreamSessionConfig,
  ) {
    super();
  }

  get isOpen(): boolean {
    return !this.closed && this.closeCalls === 0;
  }

  get bufferedAmount(): number {
    return 0;
  }

  get ackedAudioBytes(): number | undefined {
    return this.acked;
  }

  sendAudio(pcm: Buffer): number {
    if (!this.isOpen) return 0;
    this.sentBytes += pcm.length;
    if (!this.deadSocket) {
      this.audio.push(pcm);
      if (this.autoAck && this.acked !== undefined) this.acked = this.sentBytes;
    }
    return pcm.length;
  }

  sendAudioStreamEnd(): void {
    if (this.isOpen) this.streamEnds++;
  }

  /** Activity markers received, in order. */
  readonly activities: ActivityKind[] = [];

  sendActivity(kind: ActivityKind): void {
    if (this.isOpen) this.activities.push(kind);
  }

  sendText(text: string): void {
    if (this.isOpen) this.texts.push(text);
  }

  sendImage(): void {}
  sendToolResponse(): void {}

  startDelivery(): void {
    const held = this.held;
    this.held = undefined;
    for (const emit of held ?? []) emit();
  }

  get delivering(): boolean {
    return this.held === undefined;
  }

  close(): void {
    this.closeCalls++;
    if (this.closed || !this.echoClose) return;
    queueMicrotask(() => this.finish(describeClose(1005, '', true)));
  }

  /** The server (or network) closes the connection. */
  serverClose(code: number, reason = ''): void {
    this.finish(describeClose(code, reason, false));
  }

  get isClosed(): boolean {
    return !!this.closed;
  }

  /** A server event (test helper around the protected emit); held until `startDelivery()`, like the real one. */
  fire<K extends keyof UpstreamEvents & string>(event: K, ...args: Parameters<UpstreamEvents[K]>): void {
    if (this.held) this.held.push(() => this.emit(event, ...args));
    else this.emit(event, ...args);
  }

  private finish(info: UpstreamCloseInfo): void {
    if (this.closed) return;
    this.closed = info;
    const emitClose = () => {
      this.emit('close', info);
      this.removeAllListeners();
    };
    if (this.held) this.held.push(emitClose);
    else emitClose();
  }
}

export type Outcome =
  | 'ok'
  /** never settles until aborted */
  | 'hang'
  | { fail: UpstreamConnectError };

export class FakeProvider implements UpstreamProvider {
  readonly emulated = true;
  readonly calls: { config: UpstreamSessionConfig; at: number }[] = [];
  readonly connections: FakeConnection[] = [];
  /** Outcomes for the next connect() calls, in order; 'ok' once empty. */
  readonly script: Outcome[] = [];
  aborted = 0;
  /** Records the order of close()/connect() across connections. */
  readonly events: string[] = [];
  /** Runs before `connect()` resolves: what the server sends with its setup (held by the connection). */
  onSetup: ((conn: FakeConnection) => void) | undefined;

  async connect(config: UpstreamSessionConfig, opts: UpstreamConnectOptions = {}): Promise<UpstreamConnection> {
    this.calls.push({ config, at: Date.now() });
    this.events.push(`connect#${this.calls.length}`);
    const outcome = this.script.shift() ?? 'ok';
    if (outcome === 'hang') {
      return new Promise((_, reject) => {
        opts.signal?.addEventListener('abort', () => {
          this.aborted++;
          reject(opts.signal!.reason instanceof Error ? opts.signal!.reason : new UpstreamConnectError('aborted', false));
        });
      });
    }
    if (outcome !== 'ok') throw outcome.fail;
    const conn = new FakeConnection(`f${this.connections.length + 1}`, config);
    const close = conn.close.bind(conn);
    conn.close = () => {
      this.events.push(`close:${conn.id}`);
      close();
    };
    this.connections.push(conn);
    this.onSetup?.(conn);
    return conn;
  }

  get last(): FakeConnection {
    return this.connections[this.connections.length - 1];
  }
}

/** 100 ms of 16 kHz s16le PCM whose samples all carry `n` (so order and duplicates are visible). */
export function frame(n: number, ms = 100): Buffer {
  const b = Buffer.alloc(ms * 32);
  for (let i = 0; i < b.length; i += 2) b.writeInt16LE(n, i);
  return b;
}

/** The frame numbers of a list of frames made by `frame()`. */
export function frameIds(frames: Buffer[]): number[] {
  return frames.map((f) => f.readInt16LE(0));
}

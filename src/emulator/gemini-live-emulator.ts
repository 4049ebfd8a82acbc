import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { silentLogger, type Logger } from '../util/logger';
import { EmulatorConnection } from './emulator-connection';
import type { EnergyVadOptions } from './energy-vad';
import { mergeFaults, namedFault, parseKeyDirectives, type FaultOptions } from './faults';
import { defaultModels, type ModelCapabilities } from './models';
import { ConnectionRecorder, createConnectionRecord, FULL_RETENTION, type EmulatorConnectionRecord, type EmulatorRetention } from './connection-records';
import { ResumptionStore } from './resumption';
import { defaultScenario, namedScenario, type Scenario } from './scenario';
import { WriteCoalescer, type EmulatorTiming } from './timing';
import { HTTP_REASONS, parseLiveRequestUrl, type FrameMode, type LiveRequest } from './wire';

export interface EmulatorOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0 (a random free port). */
  port?: number;
  /** Server frames: 'binary' (default, like production) or 'text'; both pretty-printed JSON. */
  frames?: FrameMode;
  /** If set, any other key is closed with 1007 'API key not valid. Please pass a valid API key.' after setup. */
  apiKeys?: string[];
  /** Model table (ids without `models/`). Default: `defaultModels()`. */
  models?: Record<string, ModelCapabilities>;
  /** Default: `defaultScenario()` (the honest offline demo). */
  scenario?: Scenario;
  faults?: FaultOptions;
  /** How long a resumption handle stays valid after its connection ended. Default 2 h. */
  resumptionTtlMs?: number;
  logger?: Logger;
  /** Unknown top-level setup fields close 1007. Default true. */
  strictSetup?: boolean;
  /**
   * What to remember about connections. Default `FULL_RETENTION` (tests: every record, message log and PCM byte);
   * long-running processes (offline demo, CLI) pass `DEMO_RETENTION`: counters only, bounded history, no PCM.
   */
  retention?: Partial<EmulatorRetention>;
  /** Shorthand for `retention.pcm` (kept for existing callers). */
  keepPcm?: boolean;
  /** When messages go out (see `EmulatorTiming`). Default 'spaced'. */
  timing?: EmulatorTiming;
  /** Energy VAD tuning (silenceDurationMs comes from each setup). */
  vad?: Pick<EnergyVadOptions, 'thresholdRms' | 'minSpeechMs' | 'frameMs'>;
  /** Clock for record timestamps and handle expiry. Default Date.now. */
  clock?: () => number;
}

/** One WebSocket upgrade request on the server, with the HTTP status it got (101 = accepted). */
export interface UpgradeRecord {
  at: number;
  path: string;
  key: string | undefined;
  status: number;
}

export interface GeminiLiveEmulator {
  readonly port: number;
  /** 'http://127.0.0.1:<port>': the SDK needs http:// (it maps it to ws://). */
  readonly baseUrl: string;
  /** Every connection ever accepted, in order. */
  readonly connections: readonly EmulatorConnectionRecord[];
  /** Every upgrade request, accepted or not (e.g. to count retries after HTTP 429). */
  readonly upgrades: readonly UpgradeRecord[];
  /** Applies to connections opened afterwards and to the turns not yet answered. */
  setScenario(s: Scenario): void;
  /** Applies to connections opened afterwards and to the replies not yet started (timed faults: new connections only). */
  setFaults(f: FaultOptions): void;
  /** Sends `{goAway:{timeLeft:'Ns'}}`, then closes 1011 'Deadline expired…' after timeLeft (see `faults.afterGoAway`). */
  goAway(connId: string | 'all', timeLeftMs: number): void;
  close(connId: string | 'all', code: number, reason: string): void;
  /** Abrupt TCP drop: the client sees 1006. */
  terminate(connId: string | 'all'): void;
  /** Barge-in on the reply in progress: `interrupted`, then `turnComplete`. */
  interrupt(connId: string | 'all'): void;
  /** Sum over the connections still recorded of realtimeInput audio PCM bytes received. */
  totalAudioBytes(): number;
  /** What the emulator holds right now (to check that a long-running one keeps nothing it does not need). */
  retained(): EmulatorRetained;
  /** All received PCM, concatenated in arrival order across connections. */
  receivedPcm(): Buffer;
  /** Polls `pred` every few ms; rejects after `timeoutMs` (default 5000). */
  waitFor(pred: () => boolean, timeoutMs?: number): Promise<void>;
  /** Closes every socket (1001) and the server; leaves no handles. */
  stop(): Promise<void>;
}

/** Sizes of everything the emulator keeps between connections. */
export interface EmulatorRetained {
  connectionRecords: number;
  openConnections: number;
  upgradeRecords: number;
  /** PCM bytes held (records and `receivedPcm()`). */
  pcmBytes: number;
  /** Entries of the per-message logs over all records. */
  messageLogEntries: number;
  resumptionHandles: number;
}

export async function startGeminiLiveEmulator(opts: EmulatorOptions = {}): Promise<GeminiLiveEmulator> {
  const emulator = new LiveEmulatorServer(opts);
  await emulator.listen(opts.host ?? '127.0.0.1', opts.port ?? 0);
  return emulator;
}

/** Which faults a connection gets: the global ones (if it was within `faultConnections`) plus its key's. */
interface FaultSelection {
  global: boolean;
  fromKey: FaultOptions;
}

const STOP_GRACE_MS = 500;

class LiveEmulatorServer implements GeminiLiveEmulator {
  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly resumption: ResumptionStore;
  private readonly records: EmulatorConnectionRecord[] = [];
  private readonly upgradeLog: UpgradeRecord[] = [];
  private readonly open = new Map<string, { conn: EmulatorConnection; faults: FaultSelection }>();
  private readonly pcmLog: Buffer[] = [];
  private pcmLogBytes = 0;
  private readonly keyAttempts = new Map<string, number>();
  private readonly retention: EmulatorRetention;
  private scenario: Scenario;
  private faults: FaultOptions;
  private faultSlotsLeft: number | undefined;
  private connSeq = 0;
  private sessionSeq = 0;
  private stopping = false;
  private boundPort = 0;
  private boundHost = '127.0.0.1';

  constructor(private readonly opts: EmulatorOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'gemini-live-emulator' });
    this.clock = opts.clock ?? Date.now;
    this.retention = { ...FULL_RETENTION, ...(opts.keepPcm !== undefined ? { pcm: opts.keepPcm } : {}), ...opts.retention };
    this.resumption = new ResumptionStore(opts.resumptionTtlMs ?? 2 * 60 * 60 * 1000, this.clock, this.retention.maxResumptionHandles);
    this.scenario = opts.scenario ?? defaultScenario();
    this.faults = opts.faults ?? {};
    this.faultSlotsLeft = this.faults.faultConnections;
    this.http = createServer((req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' }).end(errorBody(404));
    });
    this.http.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.http.address() as AddressInfo).port;
    this.boundHost = host.includes(':') ? `[${host}]` : host;
    this.log.info({ baseUrl: this.baseUrl }, 'listening');
  }

  get port(): number {
    return this.boundPort;
  }

  get baseUrl(): string {
    return `http://${this.boundHost}:${this.boundPort}`;
  }

  get connections(): readonly EmulatorConnectionRecord[] {
    return this.records;
  }

  get upgrades(): readonly UpgradeRecord[] {
    return this.upgradeLog;
  }

  setScenario(s: Scenario): void {
    this.scenario = s;
  }

  setFaults(f: FaultOptions): void {
    this.faults = f;
    this.faultSlotsLeft = f.faultConnections;
    // Open connections take the new faults only when they are meant for every connection.
    for (const entry of this.open.values()) entry.faults.global = f.faultConnections === undefined;
  }

  goAway(connId: string, timeLeftMs: number): void {
    for (const c of this.targets(connId)) c.goAway(timeLeftMs);
  }

  close(connId: string, code: number, reason: string): void {
    for (const c of this.targets(connId)) c.close(code, reason);
  }

  terminate(connId: string): void {
    for (const c of this.targets(connId)) c.terminate();
  }

  interrupt(connId: string): void {
    for (const c of this.targets(connId)) c.interrupt();
  }

  totalAudioBytes(): number {
    return this.records.reduce((sum, r) => sum + r.audioBytes, 0);
  }

  retained(): EmulatorRetained {
    // Every PCM buffer a record keeps is also in the server-wide log (the same buffers): count them once.
    const pcmBytes = this.pcmLogBytes;
    let messageLogEntries = 0;
    for (const r of this.records) {
      messageLogEntries += r.messages.length + r.sent.length + r.audioChunks.length + r.audioRates.length + r.handles.length;
    }
    return {
      connectionRecords: this.records.length,
      openConnections: this.open.size,
      upgradeRecords: this.upgradeLog.length,
      pcmBytes,
      messageLogEntries,
      resumptionHandles: this.resumption.size,
    };
  }

  receivedPcm(): Buffer {
    return Buffer.concat(this.pcmLog);
  }

  async waitFor(pred: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() >= deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const { conn } of this.open.values()) conn.close(1001, 'Emulator stopped.');
    const deadline = Date.now() + STOP_GRACE_MS;
    while (this.wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.log.info('stopped');
  }

  // ---------------------------------------------------------------- upgrade routing

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'upgrade socket error'));
    const live = parseLiveRequestUrl(req.url);
    const path = (req.url ?? '').split('?')[0];
    if (!live) return this.rejectUpgrade(socket, 404, path, undefined);
    if (this.stopping) return this.rejectUpgrade(socket, 503, path, live.key);
    const selection = this.selectFaults(live.key);
    const status = this.faultsOf(selection).handshakeStatus;
    if (status) return this.rejectUpgrade(socket, status, path, live.key);
    this.logUpgrade({ at: this.clock(), path, key: live.key, status: 101 });
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req, socket, live, selection));
  }

  private logUpgrade(u: UpgradeRecord): void {
    this.upgradeLog.push(u);
    if (this.upgradeLog.length > this.retention.maxUpgrades) this.upgradeLog.splice(0, this.upgradeLog.length - this.retention.maxUpgrades);
  }

  /** Forgets the oldest closed connection records beyond `maxRecords`. */
  private pruneRecords(): void {
    let excess = this.records.length - this.retention.maxRecords;
    for (let i = 0; excess > 0 && i < this.records.length; ) {
      if (this.records[i].closed && !this.open.has(this.records[i].id)) {
        this.records.splice(i, 1);
        excess--;
      } else i++;
    }
  }

  private rejectUpgrade(socket: Duplex, status: number, path: string, key: string | undefined): void {
    this.logUpgrade({ at: this.clock(), path, key, status });
    this.log.info({ status, path }, 'upgrade rejected');
    const body = errorBody(status);
    socket.once('finish', () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        'Connection: close\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  private accept(ws: WebSocket, req: IncomingMessage, socket: Duplex, live: LiveRequest, selection: FaultSelection): void {
    const id = `c${++this.connSeq}`;
    const { apiVersion, method, key } = live;
    const record = createConnectionRecord({ id, apiVersion, method, key, headers: req.headers });
    this.records.push(record);
    const recorder = new ConnectionRecorder(record, this.clock, this.retention, (pcm) => {
      this.pcmLog.push(pcm);
      this.pcmLogBytes += pcm.length;
    });
    const timing = this.opts.timing ?? 'spaced';
    const keyScenario = namedScenario(parseKeyDirectives(live.key).scenario ?? '');
    const conn = new EmulatorConnection({
      id,
      ws,
      request: live,
      recorder,
      frames: this.opts.frames ?? 'binary',
      apiKeys: this.opts.apiKeys,
      models: this.opts.models ?? defaultModels(),
      strictSetup: this.opts.strictSetup ?? true,
      vad: this.opts.vad ?? {},
      resumption: this.resumption,
      scenario: () => keyScenario ?? this.scenario,
      faults: () => this.faultsOf(selection),
      newSessionId: () => `s${++this.sessionSeq}`,
      timing,
      coalescer: timing === 'eager' ? new WriteCoalescer(socket) : undefined,
      logger: this.log,
      onClosed: () => {
        this.open.delete(id);
        this.pruneRecords();
      },
    });
    this.open.set(id, { conn, faults: selection });
    this.pruneRecords();
    this.log.info({ conn: id, apiVersion: live.apiVersion, method: live.method }, 'connection accepted');
  }

  /** Takes one of the `faultConnections` slots (if limited) and resolves the key's `fault:` directives. */
  private selectFaults(key: string | undefined): FaultSelection {
    let global = true;
    if (this.faultSlotsLeft !== undefined) {
      global = this.faultSlotsLeft > 0;
      if (global) this.faultSlotsLeft--;
    }
    const directives = parseKeyDirectives(key).faults;
    if (directives.length === 0 || key === undefined) return { global, fromKey: {} };
    const attempt = this.keyAttempts.get(key) ?? 0;
    this.keyAttempts.set(key, attempt + 1);
    const active = directives.filter((d) => d.firstConnections === undefined || attempt < d.firstConnections);
    return { global, fromKey: mergeFaults(...active.map((d) => namedFault(d.name))) };
  }

  private faultsOf(selection: FaultSelection): FaultOptions {
    return mergeFaults(selection.global ? this.faults : undefined, selection.fromKey);
  }

  private targets(connId: string): EmulatorConnection[] {
    if (connId === 'all') return [...this.open.values()].map((e) => e.conn);
    const entry = this.open.get(connId);
    if (entry) return [entry.conn];
    if (this.records.some((r) => r.id === connId)) return []; // already closed
    throw new Error(`unknown emulator connection ${connId}`);
  }
}

function errorBody(status: number): string {
  const info = HTTP_REASONS[status] ?? { status: 'UNKNOWN', message: STATUS_CODES[status] ?? 'Error' };
  return JSON.stringify({ error: { code: status, message: info.message, status: info.status } });
}

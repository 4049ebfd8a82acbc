import type { Logger } from '../../util/logger';
import { silentLogger } from '../../util/logger';
import { TypedEmitter } from '../../util/typed-emitter';
import { backoffDelay } from './backoff';
import { PcmBacklog } from './pcm-backlog';
import {
  UpstreamConnectError,
  type UpstreamCloseInfo,
  type UpstreamConnection,
  type UpstreamProvider,
  type UpstreamSessionConfig,
} from './upstream-types';
import { UPSTREAM_BYTES_PER_MS } from '../audio/audio-types';

export interface ResilienceOptions {
  /** PCM held while the upstream is down or rotating (default 10 s). */
  backlogMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Give up reconnecting after this long (default 30 s). */
  reconnectBudgetMs: number;
  /** Connections that live less than this count as quick failures (default 5 s)... */
  quickFailureMs: number;
  /** ...and this many in a row fail the session (default 3). */
  quickFailureLimit: number;
  /** How long to wait for the old socket's close before resuming anyway. */
  closeWaitMs: number;
}

export const DEFAULT_RESILIENCE: ResilienceOptions = {
  backlogMs: 10_000,
  backoffBaseMs: 250,
  backoffMaxMs: 8_000,
  reconnectBudgetMs: 30_000,
  quickFailureMs: 5_000,
  quickFailureLimit: 3,
  closeWaitMs: 1_000,
};

export type UpstreamState = 'connecting' | 'open' | 'rotating' | 'reconnecting' | 'failed' | 'closed';
export type RotationCause = 'go_away' | 'go_away_deadline' | 'unexpected_close';

export interface UpstreamStats {
  state: UpstreamState;
  connections: number;
  reconnects: number;
  lastClose: { code: number; reason: string; description: string; at: string } | null;
  droppedAudioMs: number;
  bufferedAudioMs: number;
  sentAudioMs: number;
  hasResumptionHandle: boolean;
}

export interface UpstreamFailure {
  description: string;
  code?: number;
  reason?: string;
}

export interface ResilientUpstreamEvents {
  [event: string]: (...args: any[]) => void;
  inputTranscription: (text: string) => void;
  outputTranscription: (text: string) => void;
  modelText: (text: string) => void;
  modelAudio: (pcm: Buffer, sampleRate: number) => void;
  generationComplete: () => void;
  turnComplete: () => void;
  interrupted: () => void;
  state: (state: UpstreamState) => void;
  /** A connection (first or later) completed its setup. */
  connected: (info: { resumed: boolean; connectionNo: number }) => void;
  /** A connection closed (for metrics/logs); the link may reconnect. */
  connectionClosed: (info: UpstreamCloseInfo) => void;
  rotation: (cause: RotationCause) => void;
  /** The link gave up; no more events follow. */
  failed: (failure: UpstreamFailure) => void;
  /** PCM handed to the socket (bytes), for relay-latency metrics. */
  audioSent: (bytes: number) => void;
}

/**
 * The session's link to the model: one upstream connection at a time, replaced seamlessly on `goAway`
 * (proactive rotation at a turn boundary or before the deadline) and on unexpected closes (backoff with
 * full jitter, bounded), resuming with the latest resumable handle. Audio sent while no connection is
 * ready waits in a bounded backlog and is flushed in order.
 */
export class ResilientUpstream extends TypedEmitter<ResilientUpstreamEvents> {
  private conn: UpstreamConnection | undefined;
  private stateValue: UpstreamState = 'connecting';
  private handle: string | undefined;
  private readonly backlog: PcmBacklog;
  private connections = 0;
  private reconnects = 0;
  private quickFailures = 0;
  private connectedAt = 0;
  private lastClose: UpstreamStats['lastClose'] = null;
  private turnInProgress = false;
  private pendingRotation = false;
  private goAwayTimer: NodeJS.Timeout | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private sleepResolve: (() => void) | undefined;
  private sentBytes = 0;
  private readonly opts: ResilienceOptions;
  private readonly log: Logger;

  constructor(
    private readonly provider: UpstreamProvider,
    private readonly config: UpstreamSessionConfig,
    opts: Partial<ResilienceOptions> = {},
    logger?: Logger,
  ) {
    super();
    this.opts = { ...DEFAULT_RESILIENCE, ...opts };
    this.log = logger ?? silentLogger;
    this.backlog = new PcmBacklog(this.opts.backlogMs * UPSTREAM_BYTES_PER_MS);
  }

  get state(): UpstreamState {
    return this.stateValue;
  }

  /** First connection. Rejects with `UpstreamConnectError` (the session then never starts). */
  async start(): Promise<void> {
    const conn = await this.provider.connect({ ...this.config, resumptionHandle: undefined });
    if (this.stateValue === 'closed') {
      conn.close();
      return;
    }
    this.adopt(conn, false);
  }

  sendAudio(pcm: Buffer): void {
    if (this.stateValue === 'closed' || this.stateValue === 'failed') return;
    if (this.stateValue === 'open' && this.conn?.isOpen && this.backlog.length === 0) {
      const n = this.conn.sendAudio(pcm);
      if (n > 0) {
        this.sentBytes += n;
        this.emit('audioSent', n);
        return;
      }
    }
    this.backlog.push(pcm);
  }

  sendAudioStreamEnd(): void {
    if (this.stateValue === 'open') this.conn?.sendAudioStreamEnd();
  }

  sendText(text: string): void {
    if (this.stateValue === 'open') this.conn?.sendText(text);
  }

  sendImage(data: Buffer, mimeType: 'image/jpeg' | 'image/png'): void {
    if (this.stateValue === 'open') this.conn?.sendImage(data, mimeType);
  }

  /** Socket send buffer of the current connection (backpressure signal). */
  get bufferedAmount(): number {
    return this.conn?.bufferedAmount ?? 0;
  }

  stats(): UpstreamStats {
    return {
      state: this.stateValue,
      connections: this.connections,
      reconnects: this.reconnects,
      lastClose: this.lastClose,
      droppedAudioMs: Math.round(this.backlog.droppedMs),
      bufferedAudioMs: Math.round(this.backlog.bufferedMs),
      sentAudioMs: Math.round(this.sentBytes / UPSTREAM_BYTES_PER_MS),
      hasResumptionHandle: !!this.handle,
    };
  }

  /** Ends the link for good. */
  close(): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    this.clearTimers();
    const c = this.conn;
    this.conn = undefined;
    c?.close();
  }

  /** Closed by us or failed for good (read through a method so the compiler does not narrow across awaits). */
  private isOver(): boolean {
    return this.stateValue === 'closed' || this.stateValue === 'failed';
  }

  private setState(s: UpstreamState): void {
    if (this.stateValue === s) return;
    this.stateValue = s;
    this.emit('state', s);
  }

  private clearTimers(): void {
    clearTimeout(this.goAwayTimer);
    this.goAwayTimer = undefined;
    clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    this.sleepResolve?.();
    this.sleepResolve = undefined;
  }

  private adopt(conn: UpstreamConnection, resumed: boolean): void {
    this.conn = conn;
    this.connections++;
    if (resumed) this.reconnects++;
    this.connectedAt = Date.now();
    this.pendingRotation = false;
    this.turnInProgress = false;
    const mine = () => this.conn === conn;
    const content = () => {
      if (mine()) this.turnInProgress = true;
    };
    conn
      .on('inputTranscription', (t) => this.emit('inputTranscription', t))
      .on('outputTranscription', (t) => {
        content();
        this.emit('outputTranscription', t);
      })
      .on('modelText', (t) => {
        content();
        this.emit('modelText', t);
      })
      .on('modelAudio', (pcm, rate) => {
        content();
        this.emit('modelAudio', pcm, rate);
      })
      .on('generationComplete', () => this.emit('generationComplete'))
      .on('interrupted', () => this.emit('interrupted'))
      .on('turnComplete', () => {
        this.emit('turnComplete');
        if (!mine()) return;
        this.turnInProgress = false;
        if (this.pendingRotation) void this.rotate('go_away');
      })
      .on('resumptionUpdate', (u) => {
        if (u.resumable && u.handle) this.handle = u.handle;
      })
      .on('goAway', (ms) => {
        if (mine()) this.onGoAway(ms);
      })
      .on('close', (info) => this.onConnectionClose(conn, info));
    this.setState('open');
    this.emit('connected', { resumed, connectionNo: this.connections });
    this.flushBacklog();
  }

  private flushBacklog(): void {
    const conn = this.conn;
    if (!conn) return;
    for (const frame of this.backlog.drain()) {
      const n = conn.sendAudio(frame);
      if (n === 0) {
        // The new socket died while flushing: keep the rest for the next connection.
        this.backlog.push(frame);
        continue;
      }
      this.sentBytes += n;
      this.emit('audioSent', n);
    }
  }

  private onGoAway(timeLeftMs: number): void {
    this.log.info({ timeLeftMs, turnInProgress: this.turnInProgress }, 'upstream goAway received');
    if (this.stateValue !== 'open' || this.pendingRotation) return;
    if (!this.turnInProgress) {
      void this.rotate('go_away');
      return;
    }
    // Wait for the turn boundary, but never past the deadline (the server may have gone silent).
    this.pendingRotation = true;
    const margin = Math.min(2_000, Math.floor(timeLeftMs / 2));
    this.goAwayTimer = setTimeout(() => void this.rotate('go_away_deadline'), Math.max(0, timeLeftMs - margin));
  }

  private onConnectionClose(conn: UpstreamConnection, info: UpstreamCloseInfo): void {
    this.emit('connectionClosed', info);
    if (!info.byClient) {
      this.lastClose = { code: info.code, reason: info.reason, description: info.description, at: new Date().toISOString() };
    }
    if (conn !== this.conn) return; // an old, rotated connection
    this.conn = undefined;
    if (this.stateValue === 'closed' || this.stateValue === 'failed') return;
    if (info.fatal) {
      this.fail({ description: info.description, code: info.code, reason: info.reason });
      return;
    }
    const lived = Date.now() - this.connectedAt;
    this.quickFailures = lived < this.opts.quickFailureMs ? this.quickFailures + 1 : 0;
    if (this.quickFailures >= this.opts.quickFailureLimit) {
      this.fail({
        description: `Gemini connection failed ${this.quickFailures} times in a row within ${this.opts.quickFailureMs} ms of connecting (last: ${info.description})`,
        code: info.code,
        reason: info.reason,
      });
      return;
    }
    this.log.warn({ code: info.code, reason: info.reason }, 'upstream closed unexpectedly; reconnecting');
    this.emit('rotation', 'unexpected_close');
    void this.reconnectLoop(true);
  }

  private async rotate(cause: RotationCause): Promise<void> {
    if (this.stateValue !== 'open') return;
    clearTimeout(this.goAwayTimer);
    this.goAwayTimer = undefined;
    this.log.info({ cause, hasHandle: !!this.handle }, 'upstream rotation');
    this.emit('rotation', cause);
    this.setState('rotating');
    const old = this.conn;
    this.conn = undefined;
    if (old) {
      // Gemini refuses a resume while the old connection is open: close it first (bounded wait).
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.opts.closeWaitMs);
        old.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        old.close();
      });
    }
    await this.reconnectLoop(false);
  }

  private async reconnectLoop(afterFailure: boolean): Promise<void> {
    if (this.stateValue === 'closed' || this.stateValue === 'failed') return;
    this.setState(afterFailure ? 'reconnecting' : 'rotating');
    const started = Date.now();
    let attempt = 0;
    let triedWithoutHandle = false;
    for (;;) {
      if (afterFailure || attempt > 0) {
        await this.sleep(backoffDelay(attempt, this.opts.backoffBaseMs, this.opts.backoffMaxMs));
      }
      if (this.isOver()) return;
      try {
        const conn = await this.provider.connect({ ...this.config, resumptionHandle: this.handle });
        if (this.isOver()) {
          conn.close();
          return;
        }
        this.adopt(conn, true);
        return;
      } catch (err) {
        const e = err instanceof UpstreamConnectError ? err : new UpstreamConnectError(String(err), false);
        if (e.fatal && e.closeCode === 1007 && this.handle && !triedWithoutHandle) {
          // The handle was refused (expired or unknown): continue without the old context rather than fail.
          this.log.warn({ reason: e.closeReason }, 'resumption handle refused; reconnecting without it');
          this.handle = undefined;
          triedWithoutHandle = true;
          continue;
        }
        if (e.fatal) {
          this.fail({ description: e.message, code: e.closeCode, reason: e.closeReason });
          return;
        }
        attempt++;
        if (Date.now() - started >= this.opts.reconnectBudgetMs) {
          this.fail({ description: `could not reconnect to Gemini within ${this.opts.reconnectBudgetMs} ms: ${e.message}` });
          return;
        }
        this.log.warn({ attempt, err: e.message }, 'upstream reconnect attempt failed');
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.sleepResolve = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepResolve = undefined;
        resolve();
      }, ms);
    });
  }

  private fail(f: UpstreamFailure): void {
    if (this.stateValue === 'closed' || this.stateValue === 'failed') return;
    this.log.error({ code: f.code, reason: f.reason }, `upstream failed: ${f.description}`);
    this.clearTimers();
    this.setState('failed');
    const c = this.conn;
    this.conn = undefined;
    c?.close();
    this.emit('failed', f);
  }
}

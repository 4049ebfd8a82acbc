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
  /** PCM held while the upstream is down or rotating (default 10 s); the oldest is dropped (and counted) beyond. */
  backlogMs: number;
  /** Reconnect backoff with full jitter: attempt n waits a random time in [0, min(max, base * 2^n)]. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Give up reconnecting after this long (default 30 s); the session then fails with the last error. */
  reconnectBudgetMs: number;
  /** Connections that live less than this count as quick failures (default 5 s)... */
  quickFailureMs: number;
  /** ...and this many in a row fail the session (default 3). */
  quickFailureLimit: number;
  /** How long a rotation waits for the old socket's close before resuming anyway (default 1 s). */
  closeWaitMs: number;
  /**
   * After a close that may have lost audio in flight (any close the relay did not initiate and see confirmed),
   * resend the audio the server had not confirmed receiving that was sent within this long before the close was
   * noticed (default 200 ms; 0 never resends). See `requeueUnconfirmed` for the trade-off.
   */
  replayMs: number;
  /** On goAway, rotate at the latest this long before `timeLeft` runs out (capped at half of it; default 2 s). */
  goAwaySafetyMs: number;
  /** After a turnComplete, how long a pending rotation waits for that turn's resumable handle (default 500 ms). */
  handleWaitMs: number;
  /**
   * Audio sent within this long means the user may be speaking (default 1 s): a goAway then waits for the next
   * turn boundary (or its deadline) instead of rotating at once, so an utterance is not split across connections.
   */
  userActiveMs: number;
  /** Source of randomness for the jitter (tests). */
  random: () => number;
}

export const DEFAULT_RESILIENCE: ResilienceOptions = {
  backlogMs: 10_000,
  backoffBaseMs: 250,
  backoffMaxMs: 8_000,
  reconnectBudgetMs: 30_000,
  quickFailureMs: 5_000,
  quickFailureLimit: 3,
  closeWaitMs: 1_000,
  replayMs: 200,
  goAwaySafetyMs: 2_000,
  handleWaitMs: 500,
  userActiveMs: 1_000,
  random: Math.random,
};

export type UpstreamState = 'connecting' | 'open' | 'rotating' | 'reconnecting' | 'failed' | 'closed';
/**
 * Why a connection was replaced:
 * - `go_away`: the server announced its end and the relay rotated at a turn boundary (or while idle);
 * - `go_away_deadline`: after a goAway no boundary came in time, or the server closed first;
 * - `unexpected_close`: the connection dropped (1006, 1011, network error) without a goAway.
 */
export type RotationCause = 'go_away' | 'go_away_deadline' | 'unexpected_close';

export interface UpstreamStats {
  state: UpstreamState;
  /** Connections that completed their setup (the first one included). */
  connections: number;
  /** Of those, the ones that replaced an earlier connection. */
  reconnects: number;
  /** Connections replaced, whatever the cause (a rotation can still end in failure). */
  rotations: number;
  lastRotation: { cause: RotationCause; at: string } | null;
  /** Last close the relay did not initiate. */
  lastClose: { code: number; reason: string; description: string; at: string } | null;
  /** Audio accepted from the client and never sent upstream (backlog overflow, or lost with a failed link). */
  droppedAudioMs: number;
  bufferedAudioMs: number;
  sentAudioMs: number;
  /** Audio sent a second time after a close that may have lost it in flight (see `replayMs`). */
  replayedAudioMs: number;
  hasResumptionHandle: boolean;
  failure: UpstreamFailure | null;
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
  /** Also emitted (after `interrupted`) when a reply is cut because its connection went away. */
  turnComplete: () => void;
  interrupted: () => void;
  state: (state: UpstreamState) => void;
  /** A connection (first or later) completed its setup. `gapMs`: time without a connection before it. */
  connected: (info: { resumed: boolean; connectionNo: number; gapMs?: number }) => void;
  /** A connection closed (for metrics/logs); the link may reconnect. */
  connectionClosed: (info: UpstreamCloseInfo) => void;
  rotation: (cause: RotationCause) => void;
  /** The link gave up; no more events follow. */
  failed: (failure: UpstreamFailure) => void;
  /** PCM handed to the socket for the first time (bytes; a resend after a drop is not counted again). */
  audioSent: (bytes: number) => void;
}

/** Everything the link tracks about one connection. */
interface Link {
  conn: UpstreamConnection;
  no: number;
  connectedAt: number;
  /** Audio bytes handed to this connection. */
  sentBytes: number;
  /** Frames sent within the last `replayMs` and not yet confirmed by the transport (`at`: send time). */
  inflight: { frame: Buffer; end: number; at: number }[];
  /** User words, model content or a not-resumable update since the last turnComplete. */
  turnActive: boolean;
  /** Model content since the last turnComplete. */
  replyActive: boolean;
  /** The last resumption update's `resumable` (undefined before any). */
  resumable: boolean | undefined;
  /** When the server's goAway arrived. */
  goAwayAt: number | undefined;
  /** A turnComplete came after the goAway: rotate as soon as the turn's handle arrives. */
  awaitingHandle: boolean;
  /** Replaced: its late events are ignored. */
  retired: boolean;
}

type PendingInput =
  | { kind: 'text'; text: string }
  | { kind: 'image'; data: Buffer; mimeType: 'image/jpeg' | 'image/png' };

const MAX_PENDING_INPUTS = 32;

/**
 * The session's link to the model: one upstream connection at a time, replaced seamlessly on `goAway`
 * (proactive rotation at a turn boundary, or before the deadline if none comes) and on unexpected closes
 * (backoff with full jitter within a budget, quick-failure guard), resuming with the latest resumable handle.
 * Rotation is break-then-make: Gemini refuses a resume while the old socket is open.
 *
 * Audio sent while no connection is ready waits in a bounded backlog and is flushed in order. Audio that may have
 * been lost in flight when a connection died (no ack on the Gemini API; see `requeueUnconfirmed`) is resent first.
 * Typed text, images and `audioStreamEnd` wait too. Nothing here loops forever: reconnects are bounded by the
 * budget, and connections that die (or are sent away) quickly are bounded by the quick-failure guard.
 */
export class ResilientUpstream extends TypedEmitter<ResilientUpstreamEvents> {
  private link: Link | undefined;
  private stateValue: UpstreamState = 'connecting';
  private handle: string | undefined;
  private readonly backlog: PcmBacklog;
  private pendingInputs: PendingInput[] = [];
  private pendingStreamEnd = false;
  private connections = 0;
  private reconnects = 0;
  private rotations = 0;
  private lastRotation: UpstreamStats['lastRotation'] = null;
  private quickFailures = 0;
  private lastClose: UpstreamStats['lastClose'] = null;
  private failure: UpstreamFailure | null = null;
  private lastAudioAt = 0;
  private goAwayTimer: NodeJS.Timeout | undefined;
  private handleWaitTimer: NodeJS.Timeout | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private sleepResolve: (() => void) | undefined;
  private closeWaitTimer: NodeJS.Timeout | undefined;
  private closeWaitResolve: ((confirmed: boolean) => void) | undefined;
  private pendingConnect: AbortController | undefined;
  private sentBytes = 0;
  private replayedBytes = 0;
  /** Frames queued again for a resend: sent a second time without counting (or charging) them twice. */
  private readonly resends = new WeakSet<Buffer>();
  private readonly opts: ResilienceOptions;
  private readonly log: Logger;

  constructor(
    private readonly provider: UpstreamProvider,
    private readonly config: UpstreamSessionConfig,
    opts: Partial<ResilienceOptions> = {},
    logger?: Logger,
  ) {
    super();
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULT_RESILIENCE, ...defined };
    this.log = logger ?? silentLogger;
    this.backlog = new PcmBacklog(this.opts.backlogMs * UPSTREAM_BYTES_PER_MS);
  }

  get state(): UpstreamState {
    return this.stateValue;
  }

  /** First connection. Rejects with `UpstreamConnectError` (the session then never starts). */
  async start(): Promise<void> {
    if (this.stateValue !== 'connecting' || this.link || this.pendingConnect) throw new Error('ResilientUpstream.start() called twice');
    const ac = new AbortController();
    this.pendingConnect = ac;
    let conn: UpstreamConnection;
    try {
      conn = await this.provider.connect({ ...this.config, resumptionHandle: undefined }, { signal: ac.signal });
    } finally {
      if (this.pendingConnect === ac) this.pendingConnect = undefined;
    }
    if (this.isOver()) {
      conn.close();
      throw new UpstreamConnectError('the session was closed while connecting', false);
    }
    this.adopt(conn, false);
  }

  sendAudio(pcm: Buffer): void {
    if (this.isOver() || pcm.length === 0) return;
    this.lastAudioAt = Date.now();
    const link = this.link;
    if (this.stateValue === 'open' && link && link.conn.isOpen && this.backlog.length === 0) {
      const n = link.conn.sendAudio(pcm);
      if (n > 0) {
        this.recordSent(link, pcm, n);
        return;
      }
    }
    // Newer audio supersedes a stream end that is still waiting (the session re-arms it after the next gap).
    this.pendingStreamEnd = false;
    this.backlog.push(pcm);
  }

  sendAudioStreamEnd(): void {
    if (this.isOver()) return;
    const link = this.link;
    if (this.stateValue === 'open' && link?.conn.isOpen && this.backlog.length === 0) link.conn.sendAudioStreamEnd();
    else this.pendingStreamEnd = true;
  }

  sendText(text: string): void {
    this.sendInput({ kind: 'text', text });
  }

  sendImage(data: Buffer, mimeType: 'image/jpeg' | 'image/png'): void {
    this.sendInput({ kind: 'image', data, mimeType });
  }

  /** Socket send buffer of the current connection (backpressure signal). */
  get bufferedAmount(): number {
    return this.link?.conn.bufferedAmount ?? 0;
  }

  stats(): UpstreamStats {
    return {
      state: this.stateValue,
      connections: this.connections,
      reconnects: this.reconnects,
      rotations: this.rotations,
      lastRotation: this.lastRotation,
      lastClose: this.lastClose,
      droppedAudioMs: Math.round(this.backlog.droppedMs),
      bufferedAudioMs: Math.round(this.backlog.bufferedMs),
      sentAudioMs: Math.round(this.sentBytes / UPSTREAM_BYTES_PER_MS),
      replayedAudioMs: Math.round(this.replayedBytes / UPSTREAM_BYTES_PER_MS),
      hasResumptionHandle: !!this.handle,
      failure: this.failure,
    };
  }

  /** Ends the link for good (idempotent). Audio still waiting is counted as dropped. */
  close(): void {
    if (this.stateValue === 'closed') return;
    this.setState('closed');
    this.shutdown();
  }

  // ------------------------------------------------------------------ internals

  /** Closed by us or failed for good (a method so the compiler does not narrow across awaits). */
  private isOver(): boolean {
    return this.stateValue === 'closed' || this.stateValue === 'failed';
  }

  private setState(s: UpstreamState): void {
    if (this.stateValue === s) return;
    this.stateValue = s;
    this.emit('state', s);
  }

  private shutdown(): void {
    this.clearTimers();
    this.pendingConnect?.abort(new UpstreamConnectError('the upstream link was closed', false));
    this.pendingConnect = undefined;
    const link = this.link;
    this.link = undefined;
    if (link) link.retired = true;
    link?.conn.close();
    this.backlog.dropAll();
    this.pendingInputs = [];
    this.pendingStreamEnd = false;
  }

  private clearRotationTimers(): void {
    clearTimeout(this.goAwayTimer);
    this.goAwayTimer = undefined;
    clearTimeout(this.handleWaitTimer);
    this.handleWaitTimer = undefined;
  }

  private clearTimers(): void {
    this.clearRotationTimers();
    clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    const wake = this.sleepResolve;
    this.sleepResolve = undefined;
    wake?.();
    clearTimeout(this.closeWaitTimer);
    this.closeWaitTimer = undefined;
    const done = this.closeWaitResolve;
    this.closeWaitResolve = undefined;
    done?.(false);
  }

  private sendInput(input: PendingInput): void {
    if (this.isOver()) return;
    const link = this.link;
    if (this.stateValue === 'open' && link?.conn.isOpen) {
      this.deliverInput(link.conn, input);
      return;
    }
    this.pendingInputs.push(input);
    if (this.pendingInputs.length > MAX_PENDING_INPUTS) {
      this.pendingInputs.shift();
      this.log.warn('upstream down: dropped the oldest queued text/image input');
    }
  }

  private deliverInput(conn: UpstreamConnection, input: PendingInput): void {
    if (input.kind === 'text') conn.sendText(input.text);
    else conn.sendImage(input.data, input.mimeType);
  }

  private recordSent(link: Link, frame: Buffer, n: number): void {
    link.sentBytes += n;
    if (this.opts.replayMs > 0) {
      link.inflight.push({ frame, end: link.sentBytes, at: Date.now() });
      this.trimInflight(link);
    }
    if (this.resends.has(frame)) return; // already counted when it was first sent
    this.sentBytes += n;
    this.emit('audioSent', n);
  }

  /** Forgets frames the server confirmed, and frames sent before the replay window (ending at `until`). */
  private trimInflight(link: Link, until = Date.now()): void {
    const acked = link.conn.ackedAudioBytes ?? 0;
    const oldest = until - this.opts.replayMs;
    const q = link.inflight;
    let drop = 0;
    while (drop < q.length && (q[drop].end <= acked || q[drop].at < oldest)) drop++;
    if (drop > 0) q.splice(0, drop);
  }

  /**
   * A connection ended in a way that may have lost audio in flight: put the frames the server had not confirmed
   * back in front of the backlog, to be sent first on the next connection.
   *
   * The Gemini Developer API acknowledges no audio (`transparent` resumption, which reports the last consumed
   * message, is Vertex-only), so the relay weighs loss against duplication. It resends only audio the transport
   * did not confirm (a WebSocket ping sent after it whose pong came back proves the server read it), and only what
   * was sent in the last `replayMs` before the close was noticed: a dropped TCP connection is noticed within about a
   * round trip, so that is the audio that can have been written into an already-dead socket (a whole decoded chunk
   * can go out in one burst, so the window is in send time, not audio length). Against a server that answers pings
   * at once (the emulator, a healthy link) this resends exactly what was lost: nothing lost, nothing doubled.
   * Against a server whose pongs lag, the audio sent in the last `replayMs` may be doubled; a dead link that went
   * unnoticed for longer than `replayMs` still loses what came before the window. A confirmed close of our own
   * (rotation) resends nothing.
   *
   * `lostAt`: when the connection stopped taking audio (the close was noticed, or our rotation began).
   */
  private requeueUnconfirmed(link: Link, lostAt = Date.now()): void {
    if (this.opts.replayMs <= 0) return;
    this.trimInflight(link, lostAt);
    const frames = link.inflight.map((f) => f.frame);
    link.inflight = [];
    if (frames.length === 0) return;
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    for (const f of frames) this.resends.add(f);
    this.replayedBytes += bytes;
    this.backlog.unshift(frames);
    this.log.info({ connectionNo: link.no, resendMs: Math.round(bytes / UPSTREAM_BYTES_PER_MS) }, 'upstream audio not confirmed before the close; resending it');
  }

  private adopt(conn: UpstreamConnection, resumed: boolean, gapMs?: number): void {
    const link: Link = {
      conn,
      no: this.connections + 1,
      connectedAt: Date.now(),
      sentBytes: 0,
      inflight: [],
      turnActive: false,
      replyActive: false,
      resumable: undefined,
      goAwayAt: undefined,
      awaitingHandle: false,
      retired: false,
    };
    this.link = link;
    this.connections++;
    if (resumed) this.reconnects++;
    const mine = () => this.link === link;
    const content = () => {
      link.turnActive = true;
      link.replyActive = true;
    };
    conn
      .on('inputTranscription', (t) => {
        if (!mine()) return;
        link.turnActive = true;
        this.emit('inputTranscription', t);
      })
      .on('outputTranscription', (t) => {
        if (!mine()) return;
        content();
        this.emit('outputTranscription', t);
      })
      .on('modelText', (t) => {
        if (!mine()) return;
        content();
        this.emit('modelText', t);
      })
      .on('modelAudio', (pcm, rate) => {
        if (!mine()) return;
        content();
        this.emit('modelAudio', pcm, rate);
      })
      .on('generationComplete', () => {
        if (mine()) this.emit('generationComplete');
      })
      .on('interrupted', () => {
        if (mine()) this.emit('interrupted');
      })
      .on('turnComplete', () => {
        if (!mine()) return;
        link.turnActive = false;
        link.replyActive = false;
        this.emit('turnComplete');
        if (link.goAwayAt !== undefined) this.onTurnBoundary(link);
      })
      .on('resumptionUpdate', (u) => this.onResumptionUpdate(link, u))
      .on('goAway', (ms) => {
        if (mine()) this.onGoAway(link, ms);
      })
      .on('close', (info) => this.onConnectionClose(link, info));
    this.setState('open');
    if (resumed) {
      this.log.info(
        { connectionNo: link.no, resumed: this.handle !== undefined, gapMs, backlogMs: Math.round(this.backlog.bufferedMs) },
        'upstream reconnected',
      );
    }
    this.emit('connected', { resumed, connectionNo: link.no, ...(gapMs !== undefined ? { gapMs } : {}) });
    if (mine()) this.flushPending(link);
  }

  /** Sends what waited while no connection was ready: audio in order, then inputs, then a stream end. */
  private flushPending(link: Link): void {
    const conn = link.conn;
    const frames = this.backlog.drain();
    for (let i = 0; i < frames.length; i++) {
      const n = conn.sendAudio(frames[i]);
      if (n === 0) {
        // The new socket died while flushing: keep the rest, in order, for the next connection.
        this.backlog.unshift(frames.slice(i));
        return;
      }
      this.recordSent(link, frames[i], n);
    }
    const inputs = this.pendingInputs;
    this.pendingInputs = [];
    for (const input of inputs) this.deliverInput(conn, input);
    if (this.pendingStreamEnd) {
      this.pendingStreamEnd = false;
      conn.sendAudioStreamEnd();
    }
  }

  private onResumptionUpdate(link: Link, u: { handle?: string; resumable: boolean }): void {
    if (link.retired) return;
    if (u.resumable && u.handle) this.handle = u.handle;
    if (this.link !== link) return;
    link.resumable = u.resumable;
    if (u.resumable && link.goAwayAt !== undefined && !link.turnActive && (link.awaitingHandle || this.idle(link))) {
      void this.rotate('go_away');
    }
  }

  /** No turn in progress, at a resumable point, and the user is not streaming audio. */
  private idle(link: Link): boolean {
    return !link.turnActive && link.resumable !== false && Date.now() - this.lastAudioAt >= this.opts.userActiveMs;
  }

  private onGoAway(link: Link, timeLeftMs: number): void {
    if (this.stateValue !== 'open' || link.goAwayAt !== undefined) return;
    link.goAwayAt = Date.now();
    const margin = Math.min(this.opts.goAwaySafetyMs, Math.floor(timeLeftMs / 2));
    const deadlineMs = Math.max(0, timeLeftMs - margin);
    const idle = this.idle(link);
    this.log.info(
      { connectionNo: link.no, timeLeftMs, rotateWithinMs: deadlineMs, turnActive: link.turnActive, idle },
      'upstream goAway received',
    );
    // Never wait on a server that may have gone silent: a timer, not a message, bounds the wait.
    this.goAwayTimer = setTimeout(() => void this.rotate('go_away_deadline'), deadlineMs);
    if (idle) void this.rotate('go_away');
  }

  /** turnComplete after a goAway: rotate once the turn's resumable handle arrived (bounded wait). */
  private onTurnBoundary(link: Link): void {
    link.awaitingHandle = true;
    clearTimeout(this.handleWaitTimer);
    this.handleWaitTimer = setTimeout(() => void this.rotate('go_away'), this.opts.handleWaitMs);
  }

  /** Emits the end of a reply that its connection took with it, so the turn does not stay open forever. */
  private cutReply(link: Link): void {
    if (!link.replyActive) return;
    link.replyActive = false;
    link.turnActive = false;
    this.log.info({ connectionNo: link.no }, 'reply cut by the connection change; marking the turn interrupted');
    this.emit('interrupted');
    this.emit('turnComplete');
  }

  private noteRotation(link: Link, cause: RotationCause, close?: UpstreamCloseInfo): void {
    this.rotations++;
    this.lastRotation = { cause, at: new Date().toISOString() };
    const fields = {
      cause,
      connectionNo: link.no,
      livedMs: Date.now() - link.connectedAt,
      hasHandle: this.handle !== undefined,
      turnActive: link.turnActive,
      ...(close ? { code: close.code, reason: close.reason } : {}),
    };
    if (cause === 'unexpected_close') this.log.warn(fields, 'upstream rotation');
    else this.log.info(fields, 'upstream rotation');
    this.emit('rotation', cause);
  }

  /** Proactive rotation after a goAway: close the old connection first, then resume on a new one. */
  private async rotate(cause: RotationCause): Promise<void> {
    const link = this.link;
    if (this.stateValue !== 'open' || !link) return;
    this.clearRotationTimers();
    this.link = undefined;
    const detachedAt = Date.now();
    this.setState('rotating');
    this.noteRotation(link, cause);
    this.cutReply(link);
    const confirmed = await this.closeAndWait(link);
    link.retired = true;
    if (this.isOver()) return;
    // Our own close, answered by the server, means it read every frame before it: nothing to resend.
    if (!confirmed) this.requeueUnconfirmed(link, detachedAt);
    if (this.quickFailure(link, `sent away (goAway) ${Date.now() - link.connectedAt} ms after connecting`)) return;
    await this.reconnectLoop(false);
  }

  /** Resolves true when the server answered our close (1005) within `closeWaitMs`. */
  private closeAndWait(link: Link): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const finish = (confirmed: boolean) => {
        clearTimeout(this.closeWaitTimer);
        this.closeWaitTimer = undefined;
        this.closeWaitResolve = undefined;
        resolve(confirmed);
      };
      this.closeWaitResolve = finish;
      this.closeWaitTimer = setTimeout(() => finish(false), this.opts.closeWaitMs);
      link.conn.once('close', (info) => {
        if (this.closeWaitResolve === finish) finish(info.byClient && info.code === 1005);
      });
      link.conn.close();
    });
  }

  private onConnectionClose(link: Link, info: UpstreamCloseInfo): void {
    this.emit('connectionClosed', info);
    if (!info.byClient) {
      this.lastClose = { code: info.code, reason: info.reason, description: info.description, at: new Date().toISOString() };
    }
    if (link !== this.link) return; // an old, rotated connection
    this.link = undefined;
    link.retired = true;
    this.clearRotationTimers();
    if (this.isOver()) return;
    // The server (or the network) ended it: audio written just before may never have been read.
    this.requeueUnconfirmed(link);
    if (info.fatal) {
      this.fail({ description: info.description, code: info.code, reason: info.reason });
      return;
    }
    const afterGoAway = link.goAwayAt !== undefined;
    const cause: RotationCause = afterGoAway ? 'go_away_deadline' : 'unexpected_close';
    this.setState(afterGoAway ? 'rotating' : 'reconnecting');
    this.noteRotation(link, cause, info);
    this.cutReply(link);
    if (this.quickFailure(link, info.description, info)) return;
    // A close announced by goAway is expected: resume at once. Anything else backs off first.
    void this.reconnectLoop(!afterGoAway);
  }

  /** Counts connections that ended soon after connecting; fails the link after `quickFailureLimit` in a row. */
  private quickFailure(link: Link, what: string, info?: UpstreamCloseInfo): boolean {
    const lived = Date.now() - link.connectedAt;
    if (lived >= this.opts.quickFailureMs) {
      this.quickFailures = 0;
      return false;
    }
    this.quickFailures++;
    if (this.quickFailures < this.opts.quickFailureLimit) return false;
    this.fail({
      description: `Gemini connection ended ${this.quickFailures} times in a row within ${this.opts.quickFailureMs} ms of connecting (last: ${what})`,
      code: info?.code,
      reason: info?.reason,
    });
    return true;
  }

  private async reconnectLoop(backoffFirst: boolean): Promise<void> {
    if (this.isOver()) return;
    this.setState(backoffFirst ? 'reconnecting' : 'rotating');
    const started = Date.now();
    const deadline = started + this.opts.reconnectBudgetMs;
    let attempt = 0;
    let triedWithoutHandle = false;
    let retryNow = false;
    let lastError = 'no attempt made';
    for (;;) {
      if ((backoffFirst || attempt > 0) && !retryNow) {
        const delay = backoffDelay(attempt, this.opts.backoffBaseMs, this.opts.backoffMaxMs, this.opts.random);
        await this.sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
        if (this.isOver()) return;
      }
      retryNow = false;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.fail({ description: `could not reconnect to Gemini within ${this.opts.reconnectBudgetMs} ms (last error: ${lastError})` });
        return;
      }
      try {
        const conn = await this.connectWithin(remaining);
        if (this.isOver()) {
          conn.close();
          return;
        }
        this.adopt(conn, true, Date.now() - started);
        return;
      } catch (err) {
        if (this.isOver()) return;
        const e = err instanceof UpstreamConnectError ? err : new UpstreamConnectError(String(err), false);
        if (e.fatal && e.closeCode === 1007 && this.handle && !triedWithoutHandle) {
          // The handle was refused (expired, or the session is past its limit): a fresh session loses the model's
          // memory of the conversation but keeps the user's session (and our turn state) alive. Tried once.
          this.log.warn({ reason: e.closeReason }, 'resumption handle refused; reconnecting without it');
          this.handle = undefined;
          triedWithoutHandle = true;
          retryNow = true;
          continue;
        }
        if (e.fatal) {
          this.fail({ description: e.message, code: e.closeCode, reason: e.closeReason });
          return;
        }
        attempt++;
        lastError = e.message;
        this.log.warn({ attempt, err: e.message }, 'upstream reconnect attempt failed');
        if (Date.now() >= deadline) {
          this.fail({ description: `could not reconnect to Gemini within ${this.opts.reconnectBudgetMs} ms (last error: ${lastError})` });
          return;
        }
      }
    }
  }

  /** One connection attempt, abandoned (socket torn down) when the budget runs out or the link is closed. */
  private async connectWithin(ms: number): Promise<UpstreamConnection> {
    const ac = new AbortController();
    this.pendingConnect = ac;
    const timer = setTimeout(
      () => ac.abort(new UpstreamConnectError(`no connection within the reconnect budget of ${this.opts.reconnectBudgetMs} ms`, false)),
      ms,
    );
    try {
      return await this.provider.connect({ ...this.config, resumptionHandle: this.handle }, { signal: ac.signal });
    } finally {
      clearTimeout(timer);
      if (this.pendingConnect === ac) this.pendingConnect = undefined;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.sleepResolve = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = undefined;
        this.sleepResolve = undefined;
        resolve();
      }, ms);
    });
  }

  private fail(f: UpstreamFailure): void {
    if (this.isOver()) return;
    this.log.error({ code: f.code, reason: f.reason }, `upstream failed: ${f.description}`);
    this.failure = f;
    this.setState('failed');
    this.shutdown();
    this.emit('failed', f);
  }
}

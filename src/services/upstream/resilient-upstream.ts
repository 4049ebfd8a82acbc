import type { Logger } from '../../util/logger';
import { silentLogger } from '../../util/logger';
import { TypedEmitter } from '../../util/typed-emitter';
import type { ToolCallAnswer } from '../tools/tool-types';
import { AudioDelivery, type ConnectionAudio } from './audio-delivery';
import { closeAndConfirm } from './confirmed-close';
import { deliverInput, PendingInputs, type PendingInput } from './pending-inputs';
import { QuickFailureGuard } from './quick-failure-guard';
import { Reconnector } from './reconnector';
import {
  DEFAULT_RESILIENCE,
  type ResilienceOptions,
  type ResilientUpstreamEvents,
  type RotationCause,
  type UpstreamFailure,
  type UpstreamState,
  type UpstreamStats,
} from './resilience-types';
import { RotationPolicy } from './rotation-policy';
import {
  UpstreamConnectError,
  type ActivityKind,
  type UpstreamCloseInfo,
  type UpstreamConnection,
  type UpstreamProvider,
  type UpstreamSessionConfig,
} from './upstream-types';

// The link's options, states, stats and events, for importers of this module.
export * from './resilience-types';

/** Everything the link tracks about one connection. */
interface Link {
  conn: UpstreamConnection;
  no: number;
  connectedAt: number;
  /** Its sent audio that the server has not confirmed yet. */
  audio: ConnectionAudio;
  /** Its turns, and when to leave it after a goAway. */
  rotation: RotationPolicy;
  /** Replaced: its late events are ignored. */
  retired: boolean;
}

/**
 * The session's link to the model: one upstream connection at a time, replaced seamlessly on `goAway`
 * (proactive rotation at a turn boundary, or before the deadline if none comes) and on unexpected closes
 * (backoff with full jitter within a budget, quick-failure guard), resuming with the latest resumable handle.
 * Rotation is break-then-make: Gemini refuses a resume while the old socket is open.
 *
 * Audio sent while no connection is ready waits in a bounded backlog and is flushed in order. Audio that may have
 * been lost in flight when a connection died (no ack on the Gemini API; see `AudioDelivery.requeueUnconfirmed`) is
 * resent first. Typed text, images and `audioStreamEnd` wait too. Nothing here loops forever: reconnects are bounded
 * by the budget, and connections that die (or are sent away) quickly are bounded by the quick-failure guard.
 *
 * This class holds the state machine and passes events on; the parts live next to it:
 * - `AudioDelivery` (audio-delivery.ts): backlog, unconfirmed audio per connection, resends;
 * - `PendingInputs` (pending-inputs.ts): text, images and stream end held while down;
 * - `RotationPolicy` (rotation-policy.ts): turn tracking and when to rotate after a goAway;
 * - `closeAndConfirm` (confirmed-close.ts): the break step of a rotation;
 * - `Reconnector` (reconnector.ts): first connection and the reconnect loop (backoff, budget, abort);
 * - `QuickFailureGuard` (quick-failure-guard.ts): gives up on connections that keep dying young.
 */
export class ResilientUpstream extends TypedEmitter<ResilientUpstreamEvents> {
  private link: Link | undefined;
  private stateValue: UpstreamState = 'connecting';
  private handle: string | undefined;
  private readonly delivery: AudioDelivery;
  private readonly inputs: PendingInputs;
  private readonly reconnector: Reconnector;
  private readonly quickFailures: QuickFailureGuard;
  private connections = 0;
  private reconnects = 0;
  private freshReconnects = 0;
  private lastReconnect: UpstreamStats['lastReconnect'] = null;
  private rotations = 0;
  private lastRotation: UpstreamStats['lastRotation'] = null;
  private lastClose: UpstreamStats['lastClose'] = null;
  private failure: UpstreamFailure | null = null;
  private lastAudioAt = 0;
  /** `startDelivery()` was called: connections pass their events on as soon as they are adopted. */
  private delivering = false;
  /** Ends the wait for the old socket's close during a rotation. */
  private cancelCloseWait: (() => void) | undefined;
  private readonly opts: ResilienceOptions;
  private readonly log: Logger;

  constructor(provider: UpstreamProvider, config: UpstreamSessionConfig, opts: Partial<ResilienceOptions> = {}, logger?: Logger) {
    super();
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULT_RESILIENCE, ...defined };
    this.log = logger ?? silentLogger;
    this.delivery = new AudioDelivery(this.opts, (bytes) => this.emit('audioSent', bytes), this.log);
    this.inputs = new PendingInputs(this.log);
    this.quickFailures = new QuickFailureGuard(this.opts);
    // A session taken over from another instance starts with that instance's latest handle (first connect resumes).
    this.handle = config.resumptionHandle;
    this.reconnector = new Reconnector({
      provider,
      config,
      opts: this.opts,
      log: this.log,
      isOver: () => this.isOver(),
      resumptionHandle: () => this.handle,
      dropResumptionHandle: () => {
        this.handle = undefined;
      },
      connected: (conn, gapMs, resumedWith) => this.adopt(conn, { gapMs, resumedWith }),
      failed: (f) => this.fail(f),
    });
  }

  get state(): UpstreamState {
    return this.stateValue;
  }

  /** The latest resumable handle (what another instance resumes this session with). */
  get resumptionHandle(): string | undefined {
    return this.handle;
  }

  /**
   * First connection. Rejects with `UpstreamConnectError` (the session then never starts). What the server sent
   * with its setup (a handle, a goAway, the model's first words) waits for `startDelivery()`.
   */
  async start(): Promise<void> {
    if (this.stateValue !== 'connecting' || this.link || this.reconnector.connecting) throw new Error('ResilientUpstream.start() called twice');
    const conn = await this.reconnector.connectFirst();
    if (this.isOver()) {
      conn.close();
      throw new UpstreamConnectError('the session was closed while connecting', false);
    }
    this.adopt(conn);
  }

  /**
   * Call once the listeners are attached: the events the first connection held since its setup follow, in order,
   * then every event as it comes (connections adopted later deliver at once). Idempotent.
   */
  startDelivery(): void {
    if (this.delivering) return;
    this.delivering = true;
    const link = this.link;
    if (link && !this.isOver()) this.deliver(link);
  }

  sendAudio(pcm: Buffer): void {
    if (this.isOver() || pcm.length === 0) return;
    this.lastAudioAt = Date.now();
    const link = this.openLink();
    if (link && !this.delivery.waiting && this.delivery.send(link.audio, pcm)) return;
    // Newer audio supersedes a stream end that is still waiting (the session re-arms it after the next gap).
    this.inputs.cancelStreamEnd();
    this.delivery.hold(pcm);
  }

  sendAudioStreamEnd(): void {
    if (this.isOver()) return;
    const link = this.openLink();
    if (link && !this.delivery.waiting) link.conn.sendAudioStreamEnd();
    else this.inputs.holdStreamEnd();
  }

  /**
   * A manual activity marker, in order with the audio: sent at once when nothing waits, else held in its place
   * behind the audio in the backlog (flushed with it on the next connection).
   */
  sendActivity(kind: ActivityKind): void {
    if (this.isOver()) return;
    const link = this.openLink();
    if (link && !this.delivery.waiting) link.conn.sendActivity(kind);
    else this.delivery.holdActivity(kind);
  }

  sendText(text: string): void {
    this.sendInput({ kind: 'text', text });
  }

  sendImage(data: Buffer, mimeType: 'image/jpeg' | 'image/png'): void {
    this.sendInput({ kind: 'image', data, mimeType });
  }

  /**
   * Answers to the model's function calls: sent now when a connection is open, else held (never dropped for room)
   * and sent once on the next connection if it resumes the session; a fresh connection reports them in
   * `toolResponsesDropped` instead. Returns `sent` or `held`.
   */
  sendToolResponse(answers: ToolCallAnswer[]): 'sent' | 'held' | 'closed' {
    if (this.isOver()) return 'closed';
    const link = this.openLink();
    if (link) {
      link.conn.sendToolResponse(answers);
      return 'sent';
    }
    this.inputs.hold({ kind: 'toolResponse', answers });
    return 'held';
  }

  /** The number of the current connection (0 before the first). */
  get connectionNo(): number {
    return this.link?.no ?? this.connections;
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
      resumedReconnects: this.reconnects - this.freshReconnects,
      freshReconnects: this.freshReconnects,
      lastReconnect: this.lastReconnect,
      rotations: this.rotations,
      lastRotation: this.lastRotation,
      lastClose: this.lastClose,
      ...this.delivery.stats(),
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

  /** The current connection if things can be sent on it now. */
  private openLink(): Link | undefined {
    const link = this.link;
    return this.stateValue === 'open' && link?.conn.isOpen ? link : undefined;
  }

  private setState(s: UpstreamState): void {
    if (this.stateValue === s) return;
    this.stateValue = s;
    this.emit('state', s);
  }

  private shutdown(): void {
    const link = this.link;
    link?.rotation.dispose();
    this.cancelCloseWait?.();
    this.cancelCloseWait = undefined;
    this.reconnector.stop();
    this.link = undefined;
    if (link) link.retired = true;
    link?.conn.close();
    this.delivery.dropAll();
    this.inputs.clear();
  }

  private sendInput(input: PendingInput): void {
    if (this.isOver()) return;
    const link = this.openLink();
    if (link) deliverInput(link.conn, input);
    else this.inputs.hold(input);
  }

  /**
   * Makes `conn` the current connection: listeners first, then (once delivering) the events it held since its
   * setup (see `UpstreamConnection.startDelivery`), then what waited while no connection was ready. `reconnect` is set for
   * every connection after the first; `resumedWith` is the handle it resumed with (none: a fresh session).
   */
  private adopt(conn: UpstreamConnection, reconnect?: { gapMs: number; resumedWith: string | undefined }): void {
    const no = this.connections + 1;
    const turn = new RotationPolicy({
      opts: this.opts,
      connectionNo: no,
      lastAudioAt: () => this.lastAudioAt,
      rotate: (cause) => void this.rotate(cause),
      log: this.log,
    });
    const link: Link = { conn, no, connectedAt: Date.now(), audio: this.delivery.attach(conn, no), rotation: turn, retired: false };
    this.link = link;
    this.connections++;
    const resumed = reconnect?.resumedWith !== undefined;
    if (reconnect) {
      this.reconnects++;
      if (!resumed) this.freshReconnects++;
      this.lastReconnect = { resumed, connectionNo: no, gapMs: reconnect.gapMs, at: new Date().toISOString() };
    }
    const mine = () => this.link === link;
    conn
      .on('inputTranscription', (t) => {
        if (!mine()) return;
        turn.userSpoke();
        this.emit('inputTranscription', t);
      })
      .on('outputTranscription', (t) => {
        if (!mine()) return;
        turn.modelReplied();
        this.emit('outputTranscription', t);
      })
      .on('modelText', (t) => {
        if (!mine()) return;
        turn.modelReplied();
        this.emit('modelText', t);
      })
      .on('modelAudio', (pcm, rate) => {
        if (!mine()) return;
        turn.modelReplied();
        this.emit('modelAudio', pcm, rate);
      })
      .on('generationComplete', () => {
        if (mine()) this.emit('generationComplete');
      })
      .on('interrupted', () => {
        if (mine()) this.emit('interrupted');
      })
      .on('toolCall', (calls) => {
        if (!mine()) return;
        turn.modelReplied();
        this.emit('toolCall', calls, link.no);
      })
      .on('toolCallCancellation', (ids) => {
        if (mine()) this.emit('toolCallCancellation', ids, link.no);
      })
      .on('grounding', (g) => {
        if (mine()) this.emit('grounding', g);
      })
      .on('turnComplete', () => {
        if (!mine()) return;
        turn.turnEnded();
        this.emit('turnComplete');
        turn.atTurnBoundary();
      })
      // Usage is billed whichever connection reports it (a replaced one's last turn included): always passed on.
      .on('usage', (u) => {
        if (!this.isOver()) this.emit('usage', u);
      })
      .on('resumptionUpdate', (u) => this.onResumptionUpdate(link, u))
      .on('goAway', (ms) => {
        if (mine() && this.stateValue === 'open') turn.goAway(ms);
      })
      .on('close', (info) => this.onConnectionClose(link, info));
    if (reconnect && !resumed) {
      const dropped = this.inputs.takeToolResponses();
      if (dropped.length > 0) this.emit('toolResponsesDropped', dropped);
    }
    this.setState('open');
    if (reconnect) {
      const fields = { connectionNo: link.no, resumed, gapMs: reconnect.gapMs, backlogMs: this.delivery.stats().bufferedAudioMs };
      // Without a handle the model starts a new conversation: say so, it is not a clean reconnect.
      if (resumed) this.log.info(fields, 'upstream reconnected');
      else this.log.warn(fields, 'upstream reconnected without resumption: the model lost the conversation so far');
    }
    this.emit('connected', { resumed, reconnect: reconnect !== undefined, connectionNo: link.no, ...(reconnect ? { gapMs: reconnect.gapMs } : {}) });
    if (mine() && this.delivering) this.deliver(link);
  }

  /** The connection's held events (see `UpstreamConnection.startDelivery`), then what waited for a connection. */
  private deliver(link: Link): void {
    link.conn.startDelivery();
    if (this.link === link) this.flushPending(link);
  }

  /** Sends what waited while no connection was ready: audio in order, then inputs, then a stream end. */
  private flushPending(link: Link): void {
    if (!this.delivery.flush(link.audio)) return;
    this.inputs.deliver(link.conn);
  }

  private onResumptionUpdate(link: Link, u: { handle?: string; resumable: boolean }): void {
    if (link.retired) return;
    // A connection being closed for a rotation is not retired yet: its handle is still the freshest.
    if (u.resumable && u.handle && u.handle !== this.handle) {
      this.handle = u.handle;
      this.emit('resumptionHandle', u.handle);
    }
    if (this.link !== link) return;
    link.rotation.resumptionUpdate(u.resumable);
  }

  /** Emits the end of a reply that its connection took with it, so the turn does not stay open forever. */
  private cutReply(link: Link): void {
    if (!link.rotation.abandonReply()) return;
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
      turnActive: link.rotation.turnActive,
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
    link.rotation.dispose();
    this.link = undefined;
    const detachedAt = Date.now();
    this.setState('rotating');
    this.noteRotation(link, cause);
    this.cutReply(link);
    const closing = closeAndConfirm(link.conn, this.opts.closeWaitMs);
    this.cancelCloseWait = closing.cancel;
    const confirmed = await closing.confirmed;
    this.cancelCloseWait = undefined;
    link.retired = true;
    if (this.isOver()) return;
    // Our own close, answered by the server, means it read every frame before it: nothing to resend.
    if (!confirmed) this.delivery.requeueUnconfirmed(link.audio, detachedAt);
    if (this.quickFailure(link, `sent away (goAway) ${Date.now() - link.connectedAt} ms after connecting`)) return;
    await this.reconnect(false);
  }

  private onConnectionClose(link: Link, info: UpstreamCloseInfo): void {
    this.emit('connectionClosed', info);
    if (!info.byClient) {
      this.lastClose = { code: info.code, reason: info.reason, description: info.description, at: new Date().toISOString() };
    }
    if (link !== this.link) return; // an old, rotated connection
    this.link = undefined;
    link.retired = true;
    link.rotation.dispose();
    if (this.isOver()) return;
    // The server (or the network) ended it: audio written just before may never have been read.
    this.delivery.requeueUnconfirmed(link.audio);
    if (info.fatal) {
      this.fail({ description: info.description, code: info.code, reason: info.reason });
      return;
    }
    const afterGoAway = link.rotation.sentAway;
    const cause: RotationCause = afterGoAway ? 'go_away_deadline' : 'unexpected_close';
    this.setState(afterGoAway ? 'rotating' : 'reconnecting');
    this.noteRotation(link, cause, info);
    this.cutReply(link);
    if (this.quickFailure(link, info.description, info)) return;
    // A close announced by goAway is expected: resume at once. Anything else backs off first.
    void this.reconnect(!afterGoAway);
  }

  /** Counts connections that ended soon after connecting; fails the link after `quickFailureLimit` in a row. */
  private quickFailure(link: Link, what: string, info?: UpstreamCloseInfo): boolean {
    const failure = this.quickFailures.check(Date.now() - link.connectedAt, what, info);
    if (failure) this.fail(failure);
    return failure !== undefined;
  }

  private async reconnect(backoffFirst: boolean): Promise<void> {
    if (this.isOver()) return;
    this.setState(backoffFirst ? 'reconnecting' : 'rotating');
    await this.reconnector.reconnect(backoffFirst);
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

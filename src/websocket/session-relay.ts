import { toClientAudioError, type LiveAudioService } from '../services/live-audio-service';
import type { LiveSession, LiveSessionEvents, SessionEndInfo } from '../services/session/live-session';
import type { TurnSnapshot } from '../services/session/turn-tracker';
import { ServerMessages } from './server-messages';
import type { SocketSender } from './socket-sender';

/** Where a relay's messages go: the connection's sender and its error reporting. */
export interface RelayOutput {
  sender: Pick<SocketSender, 'send'>;
  reportError(err: unknown, sessionId: string): void;
}

/** What a relay needs of the service: the session's typed events. */
export type SessionEventSource = Pick<LiveAudioService, 'subscribe'>;

/**
 * One session relayed to one socket: listens to the session's events and turns them into server messages
 * (`reply_delta`, `transcription_result`, `audio_output`, `turn_complete`, `interrupted`, `error`, `session_ended`) until it is
 * released.
 */
export class SessionRelay {
  private isActive = true;
  /** Version of the last turn state sent, so one change is never sent twice. */
  private lastVersion: number;
  private readonly off: Array<() => void> = [];

  /** `onEnded` runs after `session_ended` (or `session_detached`) was sent (the owner then releases the relay). */
  constructor(
    readonly session: LiveSession,
    readonly keepAliveOnClose: boolean,
    private readonly out: RelayOutput,
    private readonly onEnded: (b: SessionRelay) => void,
    private readonly events: SessionEventSource,
  ) {
    this.listen('replyText', (piece, turnId) => this.send(ServerMessages.replyDelta(session.id, turnId, piece)));
    this.listen('update', (snap) => this.onUpdate(snap));
    this.listen('replyAudio', (pcm, rate) => {
      // Built (base64) only when it is actually sent.
      if (this.isActive) this.out.sender.send(() => ServerMessages.audioOutput(session.id, pcm, rate), 'droppable', pcm.length);
    });
    this.listen('turnComplete', (snap) => {
      // The final words first, then the event (the session's own `update` for this state is then skipped).
      this.onUpdate(snap);
      this.send(ServerMessages.turnComplete(session, snap));
    });
    this.listen('interrupted', (snap) => this.send(ServerMessages.interrupted(session.id, snap.turnId, 'upstream')));
    this.listen('decodeError', (err) => {
      if (this.isActive) this.out.reportError(toClientAudioError(err), session.id);
    });
    // The owner's audio budget ran out mid-stream: the stream was cut there (same message as a refused chunk).
    this.listen('audioCut', (cut) => this.send(ServerMessages.rateLimited('audio', cut.retryAfterSec)));
    // Rolling deploy: the session goes on on another instance; the client reconnects (anywhere) and resumes it.
    // Resumed by the client on another instance (a newer socket): this socket lets go, as when a second socket on
    // this instance resumes it (the newest socket wins).
    this.listen('handingOver', (why) => {
      if (why === 'redeploy') return this.send(ServerMessages.reconnect(session.id));
      this.send(ServerMessages.sessionDetached(session.id));
      this.onEnded(this);
    });
    // Function calls (issue 16): rendered from the session's ledger events.
    this.listen('toolCall', (calls, turnId) => this.send(ServerMessages.toolCall(session.id, turnId, calls)));
    this.listen('toolCallCancelled', (ids, reason) => this.send(ServerMessages.toolCallCancelled(session.id, ids, reason)));
    this.listen('toolCallTimedOut', (ids) => this.send(ServerMessages.toolCallTimedOut(session.id, ids, session.tools.timeoutMs)));
    this.listen('toolResponseDropped', (ids) => this.send(ServerMessages.toolResponseDropped(session.id, ids)));
    this.listen('grounding', (g, turnId) => this.send(ServerMessages.grounding(session.id, turnId, g)));
    this.listen('ended', (info) => this.handleEnded(info));
    this.lastVersion = session.snapshot().version;
  }

  /** False once released: nothing more is sent for this session. */
  get active(): boolean {
    return this.isActive;
  }

  /**
   * For a session started for this connection whose model already spoke (an opening that came with the setup,
   * before anything could listen): sends that turn's state now (`transcription_result`, then `turn_complete` when
   * it is complete). Reply audio that preceded the relay is not replayed.
   */
  catchUpTurn(): void {
    const snap = this.session.snapshot();
    if (!this.isActive || snap.turnId === 0) return;
    this.send(ServerMessages.transcription(this.session, snap));
    if (snap.turnComplete) this.send(ServerMessages.turnComplete(this.session, snap));
  }

  /**
   * For a session resumed on this socket: the function calls still waiting for an answer (they were announced on
   * the socket the client left), as one `tool_call`.
   */
  catchUpToolCalls(): void {
    if (!this.isActive) return;
    // Taken over from a dead instance without the model's session (no handle): its calls were dropped there and then.
    const dropped = this.session.tools.droppedAtRestore().filter((id) => this.session.tools.get(id)?.state === 'dropped');
    if (dropped.length > 0) this.send(ServerMessages.toolCallCancelled(this.session.id, dropped, 'dropped'));
    const pending = this.session.tools.pending();
    if (pending.length === 0) return;
    this.send(ServerMessages.toolCall(this.session.id, this.session.snapshot().turnId, pending));
  }

  /** For a session that ended before it was bound: sends its `session_ended` now. */
  catchUpEnded(): void {
    if (this.session.ended) this.handleEnded(this.session.endedInfo!);
  }

  /** Stops listening. Returns false when it was already released. */
  release(): boolean {
    if (!this.isActive) return false;
    this.isActive = false;
    for (const off of this.off) off();
    this.off.length = 0;
    return true;
  }

  private listen<K extends keyof LiveSessionEvents & string>(event: K, listener: LiveSessionEvents[K]): void {
    this.off.push(this.events.subscribe(this.session, event, listener));
  }

  private send(message: object): void {
    if (this.isActive) this.out.sender.send(message);
  }

  private onUpdate(snap: TurnSnapshot): void {
    if (snap.version <= this.lastVersion) return;
    this.lastVersion = snap.version;
    this.send(ServerMessages.transcription(this.session, snap));
  }

  private handleEnded(info: SessionEndInfo): void {
    // Handed over to another instance (rolling deploy): the client was told to reconnect; the session goes on there.
    if (info.reason !== 'handed_over') this.send(ServerMessages.sessionEnded(this.session.id, info));
    this.onEnded(this);
  }
}

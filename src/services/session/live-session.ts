import type { Principal } from '../auth/principal';
import { AppError } from '../../util/app-error';
import type { ChunkDescriptor } from '../audio/audio-types';
import { REPLY_SAMPLE_RATE, UPSTREAM_BYTES_PER_MS } from '../audio/audio-types';
import { AudioDecodeError, AudioLimitError, type AudioPathEvent, type SessionAudioDecoder } from '../audio/session-audio-decoder';
import { PcmFramer } from '../audio/pcm-framer';
import { PcmPacer, type PcmPacerOptions } from '../audio/pcm-pacer';
import type { ChunkOutcome } from '../audio/webm/webm-sequencer';
import type { SessionConversation } from '../conversation/session-conversation';
import type { ResilientUpstream, ResilientUpstreamEvents, RotationCause, UpstreamFailure, UpstreamStats } from '../upstream/resilient-upstream';
import type { ActivityKind, UpstreamCloseInfo } from '../upstream/upstream-types';
import { ActivityMarkers } from './activity-markers';
import type { Logger } from '../../util/logger';
import { TypedEmitter } from '../../util/typed-emitter';
import { TurnTracker, type TurnSnapshot } from './turn-tracker';
import { DEFAULT_TOOL_LIMITS, ToolCallLedger, type ClientToolResponse, type ToolLedgerLimits } from '../tools/tool-call-ledger';
import type { GroundingInfo, ToolCallAnswer, ToolCallRequest } from '../tools/tool-types';
import type { ToolBehavior } from '../models/capabilities';
import { StreamEndTimer } from './stream-end-timer';

/** A chunk receive time still unmatched by a sent frame after this long produced no audio. */
const STALE_CHUNK_TIME_MS = 10_000;

/** Why a session leaves this instance for another one (see `LiveSession.beginHandOver`). */
export type HandOverReason = 'redeploy' | 'resumed_elsewhere';

export type SessionEndReason =
  | 'client_end'
  | 'expired'
  | 'idle_timeout'
  | 'replaced'
  | 'upstream_error'
  | 'server_shutdown'
  | 'socket_closed'
  /** The owner's daily token budget is spent (ended at a turn boundary). */
  | 'token_budget_exhausted'
  /** The model's audio cap per session is reached (the transcribe model: 10 minutes). */
  | 'audio_limit_reached'

  /** Cluster mode, rolling deploy: the session continues on another instance (the client reconnects and resumes). */
  | 'handed_over';

export interface SessionEndInfo {
  reason: SessionEndReason;
  message: string;
  endTime: string;
  durationMs: number;
}

export interface LiveSessionParams {
  sessionId: string;
  owner: Principal;
  model: string;
  requestedModel: string | undefined;
  responseModality: 'text' | 'audio';
  inputTranscription: boolean;
  outputTranscription: boolean;
  transport: 'rest' | 'ws';
  /**
   * Manual activity detection (`vad: {manual: true}`): the client brackets its speech with `activity_start` /
   * `activity_end`, relayed in order with its audio; no `audioStreamEnd` is ever sent.
   */
  manualActivity?: boolean;
}

/** Activity markers a session holds at most while its audio is still being decoded (a flood is refused beyond). */
export const MAX_PENDING_ACTIVITY_MARKERS = 8;

/** Why an activity marker was refused (the service turns it into a 409 / 429). */
export type ActivityRefusal =
  | { code: 'MANUAL_ACTIVITY_DISABLED'; message: string }
  | { code: 'ACTIVITY_NOT_STARTED'; message: string }
  | { code: 'ACTIVITY_ALREADY_STARTED'; message: string }
  | { code: 'ACTIVITY_BACKLOG_FULL'; message: string }
  | { code: 'SESSION_ENDED'; message: string };

/**
 * The owner's audio budget as the session relays audio: `take` grants what is left of `seconds` in the current
 * window (and charges it); less than asked means the budget is spent.
 */
export interface AudioBudget {
  take(seconds: number): { granted: number; retryAfterSec: number };
}

/** Framing and pacing of decoded PCM to the upstream (see PcmFramer, PcmPacer). */
export type AudioPacing = Omit<PcmPacerOptions, 'now'> & {
  /**
   * Largest upstream audio message (ms): the framer hands on everything decoded at once in frames up to this size
   * (LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS; default 100; at most `burstMs`, or a frame could never get the credit).
   */
  maxFrameMs?: number;
};

/** The default pacing: at most twice real time, 5 s at once, nothing while 256 KiB wait in the socket, 1 s messages. */
export const DEFAULT_PACING: AudioPacing = { realtimeFactor: 2, burstMs: 5000, maxBufferedBytes: 256 * 1024, maxFrameMs: 1000 };
/** The microphone unheard from for this long (after the end of the audio sent) sends `audioStreamEnd`. */
export const DEFAULT_STREAM_END_GAP_MS = 1500;

/** The stream was cut because the owner's audio budget is spent. */
export interface AudioCut {
  retryAfterSec: number;
  /** Decoded audio dropped with the cut (what was waiting to be sent), ms. */
  droppedMs: number;
}

export interface LiveSessionDeps {
  decoder: SessionAudioDecoder;
  upstream: ResilientUpstream;
  /** Decoded audio is charged here as it is sent; a stream that exceeds it is cut (default: unlimited). */
  audioBudget?: AudioBudget;
  /** Pacing of the upstream audio (default DEFAULT_PACING). */
  pacing?: AudioPacing;
  maxAgeMs: number;
  idleTimeoutMs: number;
  /**
   * A session continued from another instance (cluster takeover or hand-over) keeps its original start, deadline
   * and last client activity: its max age counts from the original start, its idle timer from that activity.
   */
  clock?: SessionClock;
  /** No audio on the input for this long (after the end of the audio sent) sends `audioStreamEnd`, so the model flushes the turn. */
  streamEndGapMs?: number;
  logger: Logger;
  logTranscripts?: boolean;
  /** Called with the relay's added latency (chunk received → PCM handed to the socket), ms. */
  onRelayLatency?: (ms: number) => void;
  /** The conversation record (effective setup, transcript, usage); attached to the upstream by the caller. */
  conversation?: SessionConversation;
  /** Audio the model accepts per session (the transcribe model: 10 min): the session ends when it is sent. */
  maxAudioMs?: number;
  /** Function calls: limits, and the behavior of each declared function on the session's model. */
  tools?: { limits: ToolLedgerLimits; behaviors: ReadonlyMap<string, ToolBehavior> };
}

/** When a session started, when it reaches its max age, and when its client was last active (ms since the epoch). */
export interface SessionClock {
  startedAt: number;
  expiresAt: number;
  lastActivityAt: number;
}

/** Why calls stopped waiting for the client: the model withdrew them, or a fresh upstream session never asked. */
export type ToolWithdrawReason = 'cancelled' | 'dropped';

/** A live session's status (REST `GET /session/:id/status`, WebSocket `session_status`). */
export type LiveSessionStatus = ReturnType<LiveSession['status']>;

export type LiveSessionEvents = {
  /** The turn's texts or flags changed. */
  update: (snap: TurnSnapshot) => void;
  /**
   * A new piece of the reply text (emitted before the `update` carrying the cumulative text): the pieces of a turn,
   * concatenated and trimmed, are its `replyText`.
   */
  replyText: (piece: string, turnId: number) => void;
  /** Reply audio as it arrives (24 kHz mono s16le), only when audio replies were asked for. */
  replyAudio: (pcm: Buffer, sampleRate: number) => void;
  turnComplete: (snap: TurnSnapshot) => void;
  interrupted: (snap: TurnSnapshot) => void;
  decodeError: (err: AudioDecodeError) => void;
  /** Reorder, restart and stall events of the audio path (metrics). */
  audioEvent: (e: AudioPathEvent) => void;
  /** The audio stream was cut at the owner's audio budget. */
  audioCut: (cut: AudioCut) => void;
  /**
   * Cluster mode: this instance is handing the session to another one. `redeploy` (SIGTERM): clients reconnect and
   * resume; `resumed_elsewhere`: the client resumed it on another instance (this instance's sockets let go of it).
   */
  handingOver: (why: HandOverReason) => void;
  /** WebM bytes written to the decoder, in stream order (see `SessionAudioDecoderEvents.webmWritten`). */
  webmWritten: (bytes: Buffer, startsRecording: boolean, durationMs: number | undefined) => void;
  /** The decoder refused a chunk up front (no header, bad WAV, backlog full, ...); `pushAudio` rejects with it too. */
  chunkRefused: (err: AudioDecodeError | AudioLimitError) => void;
  /** An upstream connection (first or later) completed its setup. */
  upstreamConnected: (info: Parameters<ResilientUpstreamEvents['connected']>[0]) => void;
  /** An upstream connection closed (the link may reconnect). */
  upstreamClosed: (info: UpstreamCloseInfo) => void;
  /** The upstream link replaced its connection (go-away, unexpected close, ...). */
  upstreamRotation: (cause: RotationCause) => void;
  /** The upstream link gave up; `ended` (upstream_error) follows. */
  upstreamFailed: (failure: UpstreamFailure) => void;
  /** A new resumable handle from the upstream (cluster mode keeps the latest in the session's record). */
  upstreamResumptionHandle: (handle: string) => void;
  /** The model asks the client to run functions (several at once stay one event, in the model's order). */
  toolCall: (calls: ToolCallRequest[], turnId: number) => void;
  /** Calls no longer to be answered: withdrawn by the model (barge-in), or dropped by a fresh upstream session. */
  toolCallCancelled: (ids: string[], reason: ToolWithdrawReason) => void;
  /** Calls left unanswered for the timeout: the model was answered with an error on the client's behalf. */
  toolCallTimedOut: (ids: string[]) => void;
  /** Answers the client gave that never reached the model (the upstream came back as a fresh session). */
  toolResponseDropped: (ids: string[]) => void;
  /** Google Search grounding of the reply in progress (queries, sources). */
  grounding: (info: GroundingInfo, turnId: number) => void;
  ended: (info: SessionEndInfo) => void;
};

/**
 * One live conversation: the client's audio goes through the session's decoder and framer into the
 * upstream link; upstream events build the turn state that REST and WebSocket clients read.
 */
export class LiveSession extends TypedEmitter<LiveSessionEvents> {
  readonly startTime: Date;
  readonly expiresAt: Date;
  private lastActivityAt: number;
  private lastAudioAt = 0;
  private readonly turn: TurnTracker;
  private readonly framer: PcmFramer;
  private readonly pacer: PcmPacer;
  private endInfo: SessionEndInfo | undefined;
  private maxAgeTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly streamEnd: StreamEndTimer;
  private decodeErrorSeq = 0;
  private lastDecodeError: AudioDecodeError | undefined;
  private cutSeq = 0;
  private lastCut: AudioCut | undefined;
  private cutMs = 0;
  /** PCM handed to the upstream (for the model's per-session audio cap). */
  private sentAudioBytes = 0;
  private chunks = 0;
  private bytesIn = 0;
  private pcmBytesDecoded = 0;
  /** Receive times of chunks whose PCM has not reached the upstream yet (relay latency). */
  private pendingChunkTimes: number[] = [];
  /** Barge-in from the client: drop reply audio until the next turn starts. */
  private suppressReplyTurn = -1;
  private readonly log: Logger;
  /** The session's function calls (issue 16): both transports render from it. */
  readonly tools: ToolCallLedger;
  /** Manual activity: markers placed in the decoded stream (see ActivityMarkers). */
  private readonly markers: ActivityMarkers;
  /** Manual activity: between an accepted `activity_start` and its `activity_end`. */
  private activityOpen = false;
  /** Markers accepted and not yet handed to the upstream. */
  private markersInFlight = 0;
  private readonly activityCounts = { starts: 0, ends: 0 };
  /** Chunks handed to the decoder and not settled yet: a marker waits for the ones before it. */
  private readonly chunksInFlight = new Set<Promise<unknown>>();
  private markerChain: Promise<void> = Promise.resolve();
  /** WebM writes seen (a chunk that caused none had a duration the markers cannot know). */
  private webmWrites = 0;

  constructor(
    readonly params: LiveSessionParams,
    private readonly deps: LiveSessionDeps,
  ) {
    super();
    this.log = deps.logger.child({ sessionId: params.sessionId, owner: params.owner.id });
    const now = Date.now();
    this.startTime = new Date(deps.clock?.startedAt ?? now);
    this.expiresAt = new Date(deps.clock?.expiresAt ?? now + deps.maxAgeMs);
    this.lastActivityAt = Math.min(now, deps.clock?.lastActivityAt ?? now);
    this.turn = new TurnTracker({ keepAudio: params.responseModality === 'audio' });
    const pacing = deps.pacing ?? DEFAULT_PACING;
    this.pacer = new PcmPacer(
      { send: (frame) => this.forwardFrame(frame), bufferedAmount: () => deps.upstream.bufferedAmount },
      { pause: () => deps.decoder.pauseOutput(), resume: () => deps.decoder.resumeOutput() },
      pacing,
    );
    // Audio decoded at the same moment leaves as one message (one base64, one JSON, one WebSocket frame and one
    // socket write instead of ten for a 1 s chunk), never larger than the pacer's burst.
    const maxFrameMs = Math.min(pacing.maxFrameMs ?? DEFAULT_PACING.maxFrameMs!, pacing.burstMs);
    this.framer = new PcmFramer((frame) => this.pacer.push(frame), { maxMs: Math.max(20, maxFrameMs) });
    this.streamEnd = new StreamEndTimer({
      // Manual activity detection: the client's activity_end ends the turn; no audioStreamEnd is ever sent.
      gapMs: params.manualActivity ? 0 : (deps.streamEndGapMs ?? DEFAULT_STREAM_END_GAP_MS),
      onQuiet: () => {
        if (!this.endInfo) deps.upstream.sendAudioStreamEnd();
      },
    });
    this.tools = new ToolCallLedger(deps.tools?.limits ?? DEFAULT_TOOL_LIMITS, deps.tools?.behaviors ?? new Map());
    this.wireTools();
    this.markers = new ActivityMarkers({
      release: (kind) => this.releaseMarker(kind),
      decoderIdle: () => deps.decoder.stats().waiting === 0 && !deps.decoder.inputPending() && !this.pacer.sourceHeld,
    });
    this.wireDecoder();
    this.wireUpstream();
    this.maxAgeTimer = setTimeout(() => this.end('expired', 'Session reached its maximum duration'), Math.max(0, this.expiresAt.getTime() - now));
    this.armIdleTimer();
  }

  get id(): string {
    return this.params.sessionId;
  }

  get ownerId(): string {
    return this.params.owner.id;
  }

  get ended(): boolean {
    return !!this.endInfo;
  }

  get endedInfo(): SessionEndInfo | undefined {
    return this.endInfo;
  }

  get lastActivity(): Date {
    return new Date(this.lastActivityAt);
  }

  /** When the idle timer fires if nothing arrives. */
  get idleExpiresAt(): Date {
    return new Date(this.lastActivityAt + this.deps.idleTimeoutMs);
  }

  /** The upstream's latest resumable handle (what another instance resumes this session with). */
  get resumptionHandle(): string | undefined {
    return this.deps.upstream.resumptionHandle;
  }

  /** The upstream link's numbers (connections, reconnects, audio sent/replayed/dropped, state). */
  upstreamStats(): UpstreamStats {
    return this.deps.upstream.stats();
  }

  /** The conversation record (setup, transcript, usage), when the session keeps one. */
  get conversation(): SessionConversation | undefined {
    return this.deps.conversation;
  }

  private wireDecoder(): void {
    const d = this.deps.decoder;
    d.on('pcm', (pcm) => {
      this.pcmBytesDecoded += pcm.length;
      this.framer.push(pcm);
      this.markers.decoded(pcm.length / UPSTREAM_BYTES_PER_MS);
    });
    d.on('error', (err) => {
      this.decodeErrorSeq++;
      this.lastDecodeError = err;
      this.log.warn({ code: err.code, err: err.message }, 'audio decode error');
      this.emit('decodeError', err);
    });
    d.on('webmWritten', (bytes, starts, ms) => {
      this.webmWrittenMs += ms ?? 0;
      this.webmWrites++;
      this.markers.expect(ms);
      this.emit('webmWritten', bytes, starts, ms);
    });
    d.on('audioEvent', (e) => {
      if (e.kind === 'skipped') this.log.info({ lostMs: Math.round(e.lostMs) }, 'audio gap skipped (a chunk never arrived)');
      this.emit('audioEvent', e);
    });
  }

  private wireUpstream(): void {
    const u = this.deps.upstream;
    const logT = this.deps.logTranscripts;
    u.on('inputTranscription', (t) => {
      this.turn.addUserText(t);
      this.publish();
    });
    u.on('outputTranscription', (t) => {
      this.publishPiece(this.turn.addOutputTranscription(t));
      this.publish();
    });
    u.on('modelText', (t) => {
      this.publishPiece(this.turn.addModelText(t));
      this.publish();
    });
    u.on('modelAudio', (pcm, rate) => {
      if (this.params.responseModality !== 'audio') return;
      const snapBefore = this.turn.snapshot();
      if (this.suppressReplyTurn === snapBefore.turnId && !snapBefore.turnComplete) return;
      this.turn.addReplyAudio(pcm);
      this.emit('replyAudio', pcm, rate || REPLY_SAMPLE_RATE);
    });
    u.on('interrupted', () => {
      this.turn.markInterrupted();
      this.emit('interrupted', this.turn.snapshot());
      this.publish();
    });
    u.on('turnComplete', () => {
      this.turn.markComplete();
      const snap = this.turn.snapshot();
      if (logT) this.log.info({ user: snap.userText, reply: snap.replyText }, 'turn complete');
      else this.log.debug({ turnId: snap.turnId }, 'turn complete');
      this.emit('turnComplete', snap);
      this.publish();
    });
    u.on('toolCall', (calls, connectionNo) => this.tools.asked(calls, connectionNo));
    u.on('toolCallCancellation', (ids) => this.tools.cancelled(ids));
    u.on('toolResponsesDropped', (ids) => {
      const hit = this.tools.responsesDropped(ids);
      for (const id of hit) this.deps.conversation?.toolSettled(id, 'dropped');
      if (hit.length === 0) return;
      this.log.warn({ ids: hit }, 'function answers dropped: the upstream came back as a fresh session');
      this.turn.noteToolActivity();
      this.emit('toolResponseDropped', hit);
    });
    u.on('grounding', (g) => {
      this.turn.addGrounding(g);
      this.deps.conversation?.grounding(g);
      this.emit('grounding', g, this.turn.snapshot().turnId);
      this.publish();
    });
    u.on('connected', (info) => {
      // A fresh upstream session (no resumption) never asked for the calls of the earlier connections.
      if (info.reconnect && !info.resumed) this.tools.freshSessionFrom(info.connectionNo);
      this.emit('upstreamConnected', info);
    });
    u.on('connectionClosed', (info) => this.emit('upstreamClosed', info));
    u.on('rotation', (cause) => this.emit('upstreamRotation', cause));
    u.on('resumptionHandle', (handle) => this.emit('upstreamResumptionHandle', handle));
    u.on('failed', (f: UpstreamFailure) => {
      this.emit('upstreamFailed', f);
      this.end('upstream_error', f.description);
    });
    // Now that we listen: what the server sent with its setup (a handle, the model's first words) follows.
    u.startDelivery();
  }

  /** Ledger → session events, the transcript, and answers the ledger gives on the client's behalf. */
  private wireTools(): void {
    const l = this.tools;
    const c = this.deps.conversation;
    l.on('called', (calls) => {
      this.turn.noteToolActivity();
      const plain = calls.map(({ id, name, args }) => ({ id, name, args }));
      c?.toolCalls(plain);
      this.log.info({ calls: calls.map((x) => ({ id: x.id, name: x.name })) }, 'function calls from the model');
      this.emit('toolCall', plain, this.turn.snapshot().turnId);
    });
    l.on('withdrawn', (ids, reason) => {
      this.turn.noteToolActivity();
      for (const id of ids) c?.toolSettled(id, reason);
      this.log.info({ ids, reason }, 'function calls withdrawn');
      this.emit('toolCallCancelled', ids, reason);
    });
    const answerForClient = (answers: ToolCallAnswer[], event: 'toolCallTimedOut' | undefined) => {
      this.deps.upstream.sendToolResponse(answers);
      for (const a of answers) c?.toolSettled(a.id, 'timed_out', a.response);
      this.turn.noteToolActivity();
      this.log.warn({ ids: answers.map((a) => a.id) }, 'function calls answered with an error on the client\'s behalf');
      if (event) this.emit(event, answers.map((a) => a.id));
    };
    l.on('timedOut', (answers) => answerForClient(answers, 'toolCallTimedOut'));
    // Beyond the pending bound: the model gets an error at once; the client never saw these calls.
    l.on('overflow', (answers) => answerForClient(answers, undefined));
  }

  /**
   * The client's answers to pending calls: checked all-or-nothing by the ledger (409 unknown / not pending, 413
   * too large), then sent (or held for the next connection while the upstream reconnects). Returns what was sent.
   */
  answerToolCalls(responses: ClientToolResponse[]): { id: string; name: string; delivery: 'sent' | 'held' }[] {
    if (this.endInfo) throw new AppError(404, 'SESSION_EXPIRED', 'Session not found or expired');
    this.touchActivity(false);
    const answers = this.tools.answer(responses);
    const delivery = this.deps.upstream.sendToolResponse(answers);
    for (const a of answers) this.deps.conversation?.toolSettled(a.id, 'answered', a.response);
    this.turn.noteToolActivity();
    return answers.map((a) => ({ id: a.id, name: a.name, delivery: delivery === 'held' ? 'held' : 'sent' }));
  }

  /** Google Search grounding of the current turn's reply, if any. */
  get grounding(): GroundingInfo | null {
    return this.turn.grounding;
  }

  private publishPiece(piece: string): void {
    if (this.endInfo || piece === '') return;
    this.emit('replyText', piece, this.turn.snapshot().turnId);
  }

  private publish(): void {
    if (this.endInfo) return;
    this.emit('update', this.turn.snapshot());
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    const left = Math.max(0, this.lastActivityAt + this.deps.idleTimeoutMs - Date.now());
    this.idleTimer = setTimeout(() => this.end('idle_timeout', 'No audio received for too long'), left);
  }

  /** Hands one paced frame to the upstream, within the owner's audio budget (cuts the stream when it is spent). */
  private forwardFrame(frame: Buffer): void {
    if (this.endInfo) return;
    const maxMs = this.deps.maxAudioMs;
    if (maxMs !== undefined) {
      const room = Math.max(0, Math.floor((maxMs * UPSTREAM_BYTES_PER_MS - this.sentAudioBytes) / 2) * 2);
      if (frame.length >= room) {
        // The model closes the connection past its cap: send what fits, then end the session with a clear reason.
        if (room > 0) this.deps.upstream.sendAudio(frame.subarray(0, room));
        this.sentAudioBytes += room;
        if (!this.params.manualActivity) this.deps.upstream.sendAudioStreamEnd();
        else if (this.activityOpen) this.deps.upstream.sendActivity('end');
        const minutes = Math.round((maxMs / 60_000) * 10) / 10;
        queueMicrotask(() => this.end('audio_limit_reached', `The model accepts at most ${minutes} minutes of audio per session`));
        return;
      }
      this.sentAudioBytes += frame.length;
    }
    const budget = this.deps.audioBudget;
    if (budget) {
      const seconds = frame.length / (UPSTREAM_BYTES_PER_MS * 1000);
      const { granted, retryAfterSec } = budget.take(seconds);
      if (granted < seconds) {
        const bytes = Math.floor((granted * UPSTREAM_BYTES_PER_MS * 1000) / 2) * 2;
        if (bytes > 0) this.deps.upstream.sendAudio(frame.subarray(0, bytes));
        this.cutAudio(retryAfterSec, (frame.length - bytes) / UPSTREAM_BYTES_PER_MS);
        return;
      }
    }
    this.deps.upstream.sendAudio(frame);
    // Relay latency: each chunk is timed to the first frame sent after it was received and its predecessors were
    // timed (exact for real-time streams; in a burst, later chunks are timed to earlier frames). A chunk that gave
    // no audio (e.g. a head without blocks) is forgotten after a while instead of timing someone else's frame.
    const now = performance.now();
    while (this.pendingChunkTimes.length && now - this.pendingChunkTimes[0]! > STALE_CHUNK_TIME_MS) this.pendingChunkTimes.shift();
    const t = this.pendingChunkTimes.shift();
    if (t !== undefined) this.deps.onRelayLatency?.(now - t);
    this.streamEnd.frameSent(frame.length / UPSTREAM_BYTES_PER_MS);
  }

  /**
   * The owner's audio budget is spent: the audio waiting to be sent and the stream being decoded are dropped, the
   * decoder will start again (primed) with the next chunk the limits admit, and waiting requests answer 429.
   */
  private cutAudio(retryAfterSec: number, frameRestMs: number): void {
    const droppedMs = this.pacer.clear() + frameRestMs + this.framer.bufferedBytes / UPSTREAM_BYTES_PER_MS;
    this.framer.reset();
    this.deps.decoder.discardStream();
    this.markers.drop();
    this.pendingChunkTimes.length = 0;
    this.cutSeq++;
    this.cutMs += droppedMs;
    this.lastCut = { retryAfterSec, droppedMs };
    this.log.warn({ retryAfterSec, droppedMs: Math.round(droppedMs) }, 'audio budget spent: stream cut');
    this.emit('audioCut', this.lastCut);
  }

  /**
   * Feeds one client chunk. Chunks reach the decoder in call order (timed containers are then put in the order of
   * their own timing by the decoder), even when calls overlap. Resolves with where the chunk went; rejects with
   * `AudioDecodeError` / `AudioLimitError` when it is refused.
   */
  pushAudio(chunk: Buffer, desc: ChunkDescriptor): Promise<ChunkOutcome> {
    const receivedAt = performance.now();
    this.touchActivity(true);
    if (this.endInfo) return Promise.reject(new AudioDecodeError('AUDIO_INVALID', 'Session has ended'));
    this.chunks++;
    this.bytesIn += chunk.length;
    this.pendingChunkTimes.push(receivedAt);
    // The markers' account of the decoder's input: raw PCM by its length, WebM by the writes' timing (webmWritten).
    if (desc.format === 'pcm') this.markers.expect((chunk.length / ((desc.sampleRate ?? 16000) * (desc.channels ?? 1) * 2)) * 1000);
    const webmWritesBefore = this.webmWrites;
    const p = this.deps.decoder.write(chunk, desc).then(
      (outcome) => {
        if (outcome === 'duplicate' || outcome === 'late') this.forgetChunkTime(receivedAt);
        else if (desc.format !== 'pcm' && this.webmWrites === webmWritesBefore) this.markers.expect(undefined);
        return outcome;
      },
      (err: unknown) => {
        this.forgetChunkTime(receivedAt);
        if (err instanceof AudioDecodeError || err instanceof AudioLimitError) this.emit('chunkRefused', err);
        throw err;
      },
    );
    this.chunksInFlight.add(p);
    const settled = () => void this.chunksInFlight.delete(p);
    p.then(settled, settled);
    return p;
  }

  /**
   * Manual activity detection: `activity_start` / `activity_end` from the client, relayed upstream in order with its
   * audio. The marker takes its place after every chunk pushed before this call (a chunk still waiting in the reorder
   * buffer, being decoded or paced keeps its place before the marker). Returns why it was refused, if it was:
   * a session without manual activity (Gemini would close it with 1007), an end without a start, a second start,
   * or too many markers waiting for their audio.
   */
  activity(kind: ActivityKind): ActivityRefusal | undefined {
    const refused = this.activityRefusal(kind);
    if (refused) return refused;
    this.activityOpen = kind === 'start';
    if (kind === 'start') this.activityCounts.starts++;
    else this.activityCounts.ends++;
    this.markersInFlight++;
    this.touchActivity(false);
    if (kind === 'start') {
      // A start goes before the audio that follows it: its place is where the decoder's input ends now (a chunk
      // still waiting in the reorder buffer for an earlier one is then inside the activity, never cut out of it).
      const at = this.markers.position();
      this.markerChain = this.markerChain.then(() => this.markers.place('start', at));
    } else {
      // An end goes after every chunk pushed before it, wherever the reorder buffer puts them.
      const before = [...this.chunksInFlight];
      this.markerChain = this.markerChain.then(() => Promise.allSettled(before)).then(() => this.markers.place('end'));
    }
    return undefined;
  }

  /** Why `activity(kind)` would be refused now (nothing changes). */
  activityRefusal(kind: ActivityKind): ActivityRefusal | undefined {
    if (this.endInfo) return { code: 'SESSION_ENDED', message: 'Session has ended' };
    if (!this.params.manualActivity) {
      return {
        code: 'MANUAL_ACTIVITY_DISABLED',
        message: 'activity_start / activity_end need a session started with vad: {manual: true} (automatic activity detection is on)',
      };
    }
    if (kind === 'end' && !this.activityOpen) return { code: 'ACTIVITY_NOT_STARTED', message: 'activity_end without a preceding activity_start' };
    if (kind === 'start' && this.activityOpen) return { code: 'ACTIVITY_ALREADY_STARTED', message: 'activity_start while an activity is already open (send activity_end first)' };
    if (this.markersInFlight >= MAX_PENDING_ACTIVITY_MARKERS) {
      return { code: 'ACTIVITY_BACKLOG_FULL', message: 'Too many activity markers waiting for their audio' };
    }
    return undefined;
  }

  /** A marker's audio is all decoded: it follows that audio through the framer and the pacer to the upstream. */
  private releaseMarker(kind: ActivityKind): void {
    if (this.endInfo) return;
    this.framer.flush();
    this.pacer.pushMarker(() => {
      this.markersInFlight = Math.max(0, this.markersInFlight - 1);
      if (!this.endInfo) this.deps.upstream.sendActivity(kind);
    });
  }

  /** `status().activity`: manual activity detection's state (null with automatic detection). */
  activityStatus() {
    if (!this.params.manualActivity) return null;
    return { manual: true, open: this.activityOpen, pendingMarkers: this.markersInFlight, starts: this.activityCounts.starts, ends: this.activityCounts.ends };
  }

  private forgetChunkTime(t: number): void {
    const i = this.pendingChunkTimes.indexOf(t);
    if (i >= 0) this.pendingChunkTimes.splice(i, 1);
  }

  /**
   * Puts a fresh decoder where another instance's stood (a session taken over): `bytes` start a WebM stream (init
   * segment, Cluster header, the element the last chunk began), so the client's next continuation chunk decodes.
   */
  prime(bytes: Buffer): Promise<ChunkOutcome> {
    if (this.endInfo) return Promise.reject(new AudioDecodeError('AUDIO_INVALID', 'Session has ended'));
    return this.deps.decoder.write(bytes, { format: 'webm', sampleRate: 16000, channels: 1, resumesStream: true });
  }

  private handOverBegun = false;
  private movedAway = false;
  /** Audio in the WebM written to the decoder so far (accepted, maybe not decoded yet), ms. */
  private webmWrittenMs = 0;

  /** The session is being handed to another instance (it ends here with `handed_over` once its audio is out). */
  get handingOver(): boolean {
    return this.handOverBegun;
  }

  /**
   * The session goes on on another instance (handed over in a rolling deploy, or its record taken over by another
   * instance): ending this copy does not end the session, so nothing is archived for it here (no transcript, no
   * `session.ended`: the instance where it really ends sends the one delivery, with the usage of every owner).
   */
  get continuesElsewhere(): boolean {
    return this.movedAway || this.endInfo?.reason === 'handed_over';
  }

  /** Cluster mode: the session's record is owned elsewhere now; call before ending this copy. */
  markMovedAway(): void {
    this.movedAway = true;
  }

  /**
   * Starts a hand-over: on a redeploy clients are told to reconnect and resume (WebSocket `reconnect`); when the
   * client resumed the session on another instance, this instance's sockets let go of it (`session_detached`).
   */
  beginHandOver(why: HandOverReason = 'redeploy'): void {
    if (this.handOverBegun || this.endInfo) return;
    this.handOverBegun = true;
    this.emit('handingOver', why);
  }

  /** A hand-over that could not complete (the record could not be released): the session goes on here. */
  cancelHandOver(): void {
    this.handOverBegun = false;
  }

  /** Audio decoded and not (yet) handed to the upstream nor cut (framed, paced, waiting for a connection), ms. */
  pendingAudioMs(): number {
    const sent = this.deps.upstream.stats().sentAudioMs;
    const accepted = Math.max(this.pcmBytesDecoded / UPSTREAM_BYTES_PER_MS, this.webmWrittenMs);
    return Math.max(0, accepted - sent - this.cutMs);
  }

  /**
   * Resolves once every chunk received so far has reached the upstream (nothing decoding, framed or paced), or
   * after `timeoutMs` (a hand-over waits for it so that no accepted audio stays behind).
   */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.endInfo && Date.now() < deadline) {
      if (this.pendingChunkTimes.length === 0 && this.pacer.stats().queuedMs === 0 && this.framer.bufferedBytes === 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Typed user input for the model. */
  sendText(text: string): void {
    this.touchActivity(false);
    this.deps.conversation?.typedText(text);
    this.deps.upstream.sendText(text);
  }

  sendImage(data: Buffer, mimeType: 'image/jpeg' | 'image/png'): void {
    this.touchActivity(false);
    this.deps.upstream.sendImage(data, mimeType);
  }

  /** Client barge-in: stop relaying the current reply at once. */
  interrupt(): TurnSnapshot {
    const snap = this.turn.snapshot();
    this.suppressReplyTurn = snap.turnId;
    this.turn.markInterrupted();
    return this.turn.snapshot();
  }

  private touchActivity(audio: boolean): void {
    this.lastActivityAt = Date.now();
    if (audio) this.lastAudioAt = this.lastActivityAt;
    this.armIdleTimer();
  }

  get decodeErrors(): { seq: number; last: AudioDecodeError | undefined } {
    return { seq: this.decodeErrorSeq, last: this.lastDecodeError };
  }

  /** Budget cuts so far and the last one (REST answers 429 when one happened while it waited). */
  get audioCuts(): { seq: number; last: AudioCut | undefined } {
    return { seq: this.cutSeq, last: this.lastCut };
  }

  snapshot(): TurnSnapshot {
    return this.turn.snapshot();
  }

  replyAudio(): Buffer {
    return this.turn.replyAudio();
  }

  /**
   * Resolves when the turn state moves past `sinceVersion`, a decode error happens after `sinceErrorSeq`,
   * the session ends, or `timeoutMs` passes — whichever comes first. A burst of updates is coalesced for
   * `settleMs` so one answer carries several transcription fragments.
   */
  waitForUpdate(sinceVersion: number, sinceErrorSeq: number, timeoutMs: number, settleMs = 60, sinceCutSeq = this.cutSeq): Promise<void> {
    if (
      this.endInfo ||
      this.turn.version > sinceVersion ||
      this.decodeErrorSeq > sinceErrorSeq ||
      this.cutSeq > sinceCutSeq ||
      timeoutMs <= 0
    ) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let settleTimer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        clearTimeout(settleTimer);
        this.off('update', onUpdate);
        this.off('decodeError', finish);
        this.off('audioCut', finish);
        this.off('ended', finish);
        this.off('toolCall', finish);
        this.off('toolCallCancelled', finish);
        this.off('toolCallTimedOut', finish);
        this.off('toolResponseDropped', finish);
        resolve();
      };
      const onUpdate = (snap: TurnSnapshot) => {
        if (snap.turnComplete) return finish();
        if (!settleTimer) settleTimer = setTimeout(finish, settleMs);
      };
      const timer = setTimeout(finish, timeoutMs);
      this.on('update', onUpdate);
      this.on('decodeError', finish);
      this.on('audioCut', finish);
      this.on('ended', finish);
      // A function call is news the client must act on: answer at once.
      this.on('toolCall', finish);
      this.on('toolCallCancelled', finish);
      this.on('toolCallTimedOut', finish);
      this.on('toolResponseDropped', finish);
    });
  }

  status() {
    const up = this.deps.upstream.stats();
    return {
      sessionId: this.id,
      status: this.endInfo ? (this.endInfo.reason === 'expired' ? 'expired' : 'ended') : 'active',
      startTime: this.startTime.toISOString(),
      expiresAt: this.expiresAt.toISOString(),
      idleExpiresAt: this.idleExpiresAt.toISOString(),
      lastActivity: this.lastActivity.toISOString(),
      lastAudioAt: this.lastAudioAt ? new Date(this.lastAudioAt).toISOString() : null,
      model: this.params.model,
      requestedModel: this.params.requestedModel ?? null,
      responseModality: this.params.responseModality,
      transport: this.params.transport,
      audio: this.audioStatus(),
      upstream: {
        state: up.state,
        connected: up.state === 'open',
        connections: up.connections,
        reconnects: up.reconnects,
        lastCloseCode: up.lastClose?.code ?? null,
        lastCloseReason: up.lastClose?.reason ?? null,
        lastClose: up.lastClose,
        rotations: up.rotations,
        lastRotation: up.lastRotation,
        droppedAudioMs: up.droppedAudioMs,
        replayedAudioMs: up.replayedAudioMs,
        bufferedAudioMs: up.bufferedAudioMs,
        sentAudioMs: up.sentAudioMs,
        resumedReconnects: up.resumedReconnects,
        freshReconnects: up.freshReconnects,
        lastReconnect: up.lastReconnect,
        hasResumptionHandle: up.hasResumptionHandle,
      },
      turn: (({ version: _v, ...rest }) => rest)(this.turn.snapshot()),
      activity: this.activityStatus(),
      toolCalls: this.pendingToolCalls(),
      ...(this.deps.conversation ? { setup: this.deps.conversation.echo, usage: this.deps.conversation.usage() } : {}),
      ...(this.endInfo ? { endTime: this.endInfo.endTime, endReason: this.endInfo.reason, endMessage: this.endInfo.message } : {}),
    };
  }

  /** `status().toolCalls`: the function calls waiting for the client's answer, oldest first. */
  pendingToolCalls(): { id: string; name: string; ageMs: number }[] {
    if (this.endInfo) return [];
    const now = Date.now();
    return this.tools.pending().map((c) => ({ id: c.id, name: c.name, ageMs: Math.max(0, now - c.askedAt) }));
  }

  /** `status().audio`: what came in, what the reorder buffer did, decoder restarts and stalls, pacing and cuts. */
  audioStatus() {
    const d = this.deps.decoder.stats();
    const p = this.pacer.stats();
    return {
      chunks: this.chunks,
      bytesIn: this.bytesIn,
      decodedSeconds: Math.round(this.pcmBytesDecoded / UPSTREAM_BYTES_PER_MS) / 1000,
      container: d.container,
      decodeErrors: this.decodeErrorSeq,
      lastDecodeError: this.lastDecodeError ? { code: this.lastDecodeError.code, message: this.lastDecodeError.message } : null,
      reorderedChunks: d.reordered,
      duplicateChunks: d.duplicates,
      skippedChunks: d.skipped,
      lostMs: d.lostMs,
      lateChunks: d.late,
      unplacedChunks: d.unplaced,
      waitingChunks: d.waiting,
      decoderRestarts: d.restarts,
      decoderStalls: d.stalls,
      pacing: { queuedMs: p.queuedMs, maxQueuedMs: p.maxQueuedMs, delayedFrames: p.delayedFrames, sourcePauses: p.pauses },
      budgetCuts: this.cutSeq,
      budgetCutMs: Math.round(this.cutMs),
    };
  }

  /** Ends the session (idempotent): stops timers, kills the decoder, closes the upstream. */
  end(reason: SessionEndReason, message = ''): SessionEndInfo {
    if (this.endInfo) return this.endInfo;
    const now = new Date();
    this.endInfo = {
      reason,
      message: message || reason,
      endTime: now.toISOString(),
      durationMs: now.getTime() - this.startTime.getTime(),
    };
    clearTimeout(this.maxAgeTimer);
    clearTimeout(this.idleTimer);
    this.streamEnd.stop();
    this.tools.close();
    this.pacer.close();
    this.markers.dispose();
    this.deps.decoder.destroy();
    this.deps.upstream.close();
    this.deps.conversation?.end(reason);
    this.log.info({ reason, durationMs: this.endInfo.durationMs }, 'session ended');
    this.emit('ended', this.endInfo);
    this.removeAllListeners();
    return this.endInfo;
  }
}

import type { TranscribeTiming } from '../observability/designed-wait';
import type { Principal } from './auth/principal';
import { AUDIO_FORMATS, type AudioFormat, type ChunkDescriptor } from './audio/audio-types';
import { AudioDecodeError, AudioLimitError, AudioTooLargeError, type DecoderFactory } from './audio/session-audio-decoder';
import type { ChunkOutcome } from './audio/webm/webm-sequencer';
import { rateLimitError } from './limits/limit-errors';
import type { AudioAdmission } from './limits/limits';
import type { ConversationArchive } from './conversation/conversation-archive';
import { SessionConversation } from './conversation/session-conversation';
import { LiveTranscriptBudget } from './conversation/live-transcript-budget';
import type { TranscriptRecord } from './conversation/transcript-types';
import type { SessionConversationOptions } from './conversation/session-conversation';

/** What a session continued from another instance brings along (its transcript and usage so far). */
export type ConversationPrior = NonNullable<SessionConversationOptions['prior']>;

/** What a session continued from another instance brings: its conversation so far and its original clock. */
export type AdoptedPrior = ConversationPrior & { clock?: SessionClock };
import { greetingToSend, toModelSessionConfig } from './session-setup/build-live-connect-config';
import type { PreparedSession, SessionPlanner, StartSessionInput } from './session-setup/session-planner';
import type { SetupEcho } from './session-setup/effective-setup';
import type { UsageMeter } from './usage/usage-meter';
import { ResilientUpstream, type ResilienceOptions } from './upstream/resilient-upstream';
import { UpstreamConnectError, type ActivityKind, type UpstreamProvider } from './upstream/upstream-types';
import {
  LiveSession,
  type AudioBudget,
  type ActivityRefusal,
  type AudioPacing,
  type LiveSessionEvents,
  type SessionEndInfo,
  type SessionClock,
  type SessionEndReason,
} from './session/live-session';
import { endedSessionError } from './session/ended-session-error';
import { SessionRegistry, type Lookup } from './session/session-registry';
import {
  endedSessionStatusView,
  sessionListItemView,
  sessionNotFoundView,
  transcriptionView,
  type EndSessionOutcome,
  type SessionStatus,
  type TranscriptionData,
} from './session/session-views';
import type { TurnSnapshot } from './session/turn-tracker';
import { AppError, Errors, isAppError } from '../util/app-error';
import { DEFAULT_TOOL_LIMITS, type ToolLedgerLimits } from './tools/tool-call-ledger';
import { parseToolResponses } from './tools/tool-responses';
import { decodeBase64Strict, base64DecodedLength } from '../util/strict-base64';
import type { Logger } from '../util/logger';

export type { DecoderFactory };

/**
 * Where a caller of the bounded wait (REST `/transcribe`) keeps the turn-state version it was last answered with,
 * per session: state of the transport, not of the session. The REST adapter holds one (`WeakTurnCursor`).
 */
export interface TurnCursor {
  served(session: LiveSession): number;
  markServed(session: LiveSession, version: number): void;
}

/** A `TurnCursor` that forgets a session with the session. */
export class WeakTurnCursor implements TurnCursor {
  private readonly versions = new WeakMap<LiveSession, number>();

  served(session: LiveSession): number {
    return this.versions.get(session) ?? 0;
  }

  markServed(session: LiveSession, version: number): void {
    this.versions.set(session, version);
  }
}

/** A chunk that passed validation and the owner's audio admission: ready for `pushAudio`. */
export interface AdmittedAudio {
  chunk: Buffer;
  desc: ChunkDescriptor;
}

/**
 * Where sessions are known beyond this process (the cluster's session records in Redis). Without one (the embedded
 * default) the process's registry is the only directory. Implementations: `ClusterSessions` (src/cluster).
 */
export interface SessionDirectory {
  /**
   * Before a new session starts here: claims its id service-wide (the per-key cap counts every instance's sessions).
   * Throws an AppError (429 at the cap, 503 `CLUSTER_UNAVAILABLE` while the directory cannot answer).
   */
  claim(prepared: PreparedSession): Promise<SessionClaim>;
  /**
   * Brings here a session this process does not serve, when that is possible (its owner died or handed it over):
   * resolves with the local session, or without one (unknown, ended, another key's; `aliveOwner` when another live
   * instance serves it).
   */
  bringHere(
    owner: Principal,
    sessionId: string,
    opts?: { waitForRelease?: boolean; fromLiveOwner?: boolean },
  ): Promise<{ session?: LiveSession; aliveOwner?: string }>;
  /**
   * A WebSocket call for a session a live peer serves, asked of that owner (fresh): its answer's data (`end`: an
   * `EndSessionOutcome`, `transcript`: a `TranscriptView`, `status`: a `SessionStatus`), or `none` when no live
   * peer serves it (the caller answers from here, or from the record).
   */
  askOwner(owner: Principal, sessionId: string, query: 'end' | 'transcript' | 'status'): Promise<{ kind: 'answered'; data: unknown } | { kind: 'none' }>;
  /**
   * Ends a session this process does not serve, from its record, when its owner is gone (no upstream is opened);
   * `alive` when another live instance serves it, `local` when the record names this instance.
   */
  endFromRecord(
    owner: Principal,
    sessionId: string,
  ): Promise<{ kind: 'ended'; info: SessionEndInfo; alreadyEnded: boolean } | { kind: 'not_found' } | { kind: 'alive'; owner: string } | { kind: 'local' }>;
}

/** A claimed id: `attach` once the session runs here, `release` when the start failed. */
export interface SessionClaim {
  attach(session: LiveSession): void;
  release(): void;
}

export interface LiveAudioServiceOptions {
  registry: SessionRegistry;
  decoders: DecoderFactory;
  provider: UpstreamProvider;
  /** Checks starts (options, profile, model, budget) into prepared sessions. */
  planner: SessionPlanner;
  /** Usage per key and day, and the daily token budgets (none: usage is kept per session only). */
  usage?: UsageMeter;
  /** Where ended sessions' transcripts go (and the session-end webhook). */
  archive?: ConversationArchive;
  logger: Logger;
  sessionMaxAgeMs: number;
  idleTimeoutMs: number;
  transcribeWaitMs: number;
  /** Function call limits per session (default DEFAULT_TOOL_LIMITS). */
  toolLimits?: ToolLedgerLimits;
  maxChunkBytes: number;
  logTranscripts?: boolean;
  resilience?: Partial<ResilienceOptions>;
  /** `null` turns context window compression off. */
  contextWindowCompression?: { triggerTokens?: number; targetTokens?: number } | null;
  onRelayLatency?: (ms: number) => void;
  /** The audio budget of a session's owner (decoded seconds per window); default: unlimited. */
  audioBudgetFor?: (owner: Principal) => AudioBudget;
  /** Pacing of every session's upstream audio (default: LiveSession's DEFAULT_PACING). */
  pacing?: AudioPacing;
  /** The per-user audio seconds limit (for the 429 message when a stream is cut). */
  audioSecondsPerMinute?: number;
  /** Service-wide session directory (cluster mode); default none. */
  directory?: SessionDirectory;
  /** Admission of client audio (both transports); default: everything admitted. */
  admission?: AudioAdmission;
  /** What the live transcripts of all sessions hold together (default DEFAULT_LIVE_TRANSCRIPT_BUDGET_CHARS). */
  liveTranscriptBudgetChars?: number;
}

export interface AudioInput {
  audioData: unknown;
  format?: unknown;
  sampleRate?: unknown;
  channels?: unknown;
}

/** REST `/transcribe`'s manual activity fields: a start before the request's audio, an end after it. */
export interface ActivityInput {
  start?: unknown;
  end?: unknown;
}

const activityFlag = (v: unknown, field: string): boolean => {
  if (v === undefined || v === null || v === false || v === 'false') return false;
  if (v === true || v === 'true') return true;
  throw Errors.invalidField(field, 'must be a boolean');
};

/** A refused activity marker as the client error both transports send. */
export function activityError(r: ActivityRefusal): AppError {
  if (r.code === 'SESSION_ENDED') return Errors.sessionExpired();
  if (r.code === 'ACTIVITY_BACKLOG_FULL') return new AppError(429, r.code, r.message, { retryAfterSec: 1 });
  return new AppError(409, r.code, r.message);
}

const asInt = (v: unknown, def: number, field: string, min: number, max: number): number => {
  if (v === undefined || v === null || v === '') return def;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw Errors.invalidField(field, `must be an integer between ${min} and ${max}`);
  }
  return n;
};

/**
 * The one door to the session core: every transport (REST, WebSocket, and any later one) starts, feeds, reads,
 * ends and listens to sessions through these methods only, and renders what they return. Client-visible shapes
 * come from `session-views.ts`; errors are `AppError`s with the client's status and code.
 */
export class LiveAudioService {
  /** One budget for the live transcripts of every session: the globally oldest turns are dropped first. */
  readonly transcriptBudget: LiveTranscriptBudget;

  constructor(private readonly o: LiveAudioServiceOptions) {
    this.transcriptBudget = new LiveTranscriptBudget(o.liveTranscriptBudgetChars);
  }

  get emulated(): boolean {
    return this.o.provider.emulated;
  }

  async startSession(owner: Principal, input: StartSessionInput, transport: 'rest' | 'ws'): Promise<LiveSession> {
    return this.startPrepared(await this.prepareSession(owner, input, transport));
  }

  /** Checks a start before anything changes (see `SessionPlanner`): a refused start leaves a running session alone. */
  prepareSession(owner: Principal, input: StartSessionInput, transport: 'rest' | 'ws'): Promise<PreparedSession> {
    return this.o.planner.plan(owner, input, transport);
  }

  /**
   * Starts a prepared session: the service-wide claim (cluster mode), the registry's caps, then the upstream
   * connection (see `createSession`). `replacing`: the session this one replaces, ended only once this one has
   * started (a failed start leaves it running).
   */
  async startPrepared(p: PreparedSession, opts: { replacing?: LiveSession } = {}): Promise<LiveSession> {
    const claim = await this.o.directory?.claim(p);
    let session: LiveSession;
    try {
      session = await this.o.registry.start(p.params.owner, p.params.sessionId, () => this.createSession(p), opts);
    } catch (err) {
      claim?.release();
      throw err;
    }
    claim?.attach(session);
    return session;
  }

  /**
   * The caller's live session `sessionId`, here or (cluster mode) brought here from a dead or departed instance;
   * undefined when there is none to continue here. `fromLiveOwner` (a client re-attaching its socket: WebSocket
   * `resume`, a dialect's attach by id): a live owner elsewhere hands the session over to this instance.
   */
  async locate(owner: Principal, sessionId: string, opts: { fromLiveOwner?: boolean } = {}): Promise<LiveSession | undefined> {
    const l = this.o.registry.lookup(owner, sessionId);
    if (l.kind === 'live') return l.session;
    if (!this.o.directory) return undefined;
    // A client told to `reconnect` may resume before its old instance has released the session (or, after a crash,
    // before the old instance counts as dead): wait for it.
    const r = await this.o.directory.bringHere(owner, sessionId, { waitForRelease: true, ...(opts.fromLiveOwner ? { fromLiveOwner: true } : {}) });
    // (Still served by a live instance that did not let it go in time: try again shortly.)
    if (r.aliveOwner) throw new AppError(409, 'SESSION_BUSY', 'The session is being served on another connection; end it there or try again');
    return r.session;
  }

  /**
   * Continues here a session another instance served (taken over after its death, or handed over): a new upstream
   * connection resumed with `resumptionHandle` (the model keeps the conversation; no greeting), in this process's
   * registry, with the effective setup the session started with.
   */
  adoptSession(p: PreparedSession, resumptionHandle: string | undefined, prior?: AdoptedPrior): Promise<LiveSession> {
    return this.o.registry.start(p.params.owner, p.params.sessionId, () => this.createSession(p, resumptionHandle, prior));
  }

  private async createSession(p: PreparedSession, resumptionHandle?: string, adopted?: AdoptedPrior): Promise<LiveSession> {
    const { clock, ...prior } = adopted ?? {};
    const { params, setup, echo } = p;
    const log = this.o.logger.child({ sessionId: params.sessionId });
    const upstream = new ResilientUpstream(
      this.o.provider,
      toModelSessionConfig(setup, {
        sessionResumption: true,
        ...(resumptionHandle ? { resumptionHandle } : {}),
        contextWindowCompression: this.o.contextWindowCompression === undefined ? {} : this.o.contextWindowCompression,
      }),
      this.o.resilience,
      log,
    );
    try {
      await upstream.start();
    } catch (err) {
      upstream.close();
      if (err instanceof UpstreamConnectError) {
        throw new AppError(err.fatal ? 502 : 503, 'UPSTREAM_UNAVAILABLE', `Could not start the Gemini Live session: ${err.message}`);
      }
      throw err;
    }
    const conversation = new SessionConversation({
      sessionId: params.sessionId,
      owner: params.owner,
      setup,
      echo,
      meter: this.o.usage,
      // Called at a turn boundary, long after `session` below exists.
      onBudgetSpent: (message) => session.end('token_budget_exhausted', message),
      logger: this.o.logger,
      transcriptBudget: this.transcriptBudget,
      ...(adopted ? { prior } : {}),
    });
    // Listening before the held events are delivered (LiveSession starts the delivery).
    conversation.attach(upstream);
    const session: LiveSession = new LiveSession(params, {
      decoder: this.o.decoders.create(params.sessionId),
      upstream,
      maxAgeMs: this.o.sessionMaxAgeMs,
      idleTimeoutMs: this.o.idleTimeoutMs,
      ...(clock ? { clock } : {}),
      logger: this.o.logger,
      logTranscripts: this.o.logTranscripts,
      onRelayLatency: this.o.onRelayLatency,
      audioBudget: this.o.audioBudgetFor?.(params.owner),
      pacing: this.o.pacing,
      conversation,
      maxAudioMs: setup.maxAudioMs,
      tools: {
        limits: this.o.toolLimits ?? DEFAULT_TOOL_LIMITS,
        behaviors: new Map((setup.tools ?? []).map((t) => [t.name, t.effectiveBehavior])),
      },
    });
    const archive = this.o.archive;
    session.on('ended', (info) => {
      // Handed over or moved: the session goes on elsewhere; where it really ends, it is archived (once).
      if (session.continuesElsewhere) return;
      void archive?.sessionEnded(conversation, {
        sessionId: params.sessionId,
        owner: params.owner,
        startedAt: session.startTime.getTime(),
        endedAt: Date.parse(info.endTime),
        reason: info.reason,
      });
    });
    // The model speaks first: the greeting goes once, after the first setup (never again on a reconnect), after
    // what the server sent with its setup was delivered (LiveSession started the delivery).
    const greeting = greetingToSend(setup, { resumed: resumptionHandle !== undefined, greetedBefore: resumptionHandle !== undefined });
    if (greeting !== undefined) {
      conversation.greetingSent();
      upstream.sendText(greeting);
    }
    return session;
  }

  /**
   * The owner's transcript of `sessionId`: the live session's as it is now, else the stored one (kept
   * `LIVE_AUDIO_TRANSCRIPT_RETENTION_MS` after the end). Another owner's id answers exactly like an unknown one.
   */
  async transcriptOf(owner: Principal, sessionIdRaw: unknown): Promise<TranscriptView> {
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    const l = this.o.registry.lookup(owner, sessionId);
    const c = l.kind === 'live' ? l.session.conversation : undefined;
    if (c) return transcriptView(c.snapshot(), c.echo, true);
    const stored = await this.o.archive?.store.get(owner.id, sessionId);
    if (!stored) throw Errors.sessionNotFound();
    return transcriptView(stored, stored.setup ?? null, false);
  }

  /** The caller's own usage: today and the last 30 days, and the daily token budget. */
  async usageOf(owner: Principal): Promise<Record<string, unknown>> {
    const meter = this.o.usage;
    if (!meter) return { key: owner.id, tracked: false };
    const report = await meter.report(owner.id);
    const budget = meter.budgetFor(owner.maxTokensPerDay);
    const spent = report.today.tokens.totalTokens;
    return {
      ...report,
      tracked: true,
      budget: {
        dailyTokens: budget,
        spentToday: spent,
        remainingToday: budget === null ? null : Math.max(0, budget - spent),
        resetsAt: nextUtcMidnight(Date.now()),
      },
    };
  }

  /** Validates and decodes an audio chunk description (shared by REST and WebSocket). */
  parseAudio(input: AudioInput): { chunk: Buffer; desc: ChunkDescriptor } {
    if (input.audioData === undefined || input.audioData === null || input.audioData === '') {
      throw Errors.missingField('audio_data');
    }
    if (typeof input.audioData !== 'string') throw Errors.invalidField('audio_data', 'must be a base64 string');
    const fmt = input.format ?? 'webm';
    if (typeof fmt !== 'string' || !AUDIO_FORMATS.includes(fmt.toLowerCase() as AudioFormat)) {
      throw new AppError(415, 'AUDIO_UNSUPPORTED_FORMAT', `Unsupported audio format: use one of ${AUDIO_FORMATS.join(', ')}`);
    }
    const max = this.o.maxChunkBytes;
    if (base64DecodedLength(input.audioData) > max + 4096) throw Errors.tooLarge('Audio data', max);
    const chunk = decodeBase64Strict(input.audioData, 'audio_data');
    if (chunk.length > max) throw Errors.tooLarge('Audio data', max);
    const desc: ChunkDescriptor = {
      format: fmt.toLowerCase() as AudioFormat,
      sampleRate: asInt(input.sampleRate, 16000, 'sample_rate', 8000, 192000),
      channels: asInt(input.channels, 1, 'channels', 1, 8),
    };
    return { chunk, desc };
  }

  /**
   * Validates a chunk and admits it against its owner's audio budget (one rule for every transport):
   * bad input throws its 4xx, a refusal throws the 429 (`AUDIO_RATE_LIMITED`, with `retryAfterSec`).
   */
  admitAudio(owner: Principal, input: AudioInput): AdmittedAudio {
    const parsed = this.parseAudio(input);
    this.admit(owner, parsed);
    return parsed;
  }

  private admit(owner: Principal, parsed: AdmittedAudio): void {
    const a = this.o.admission?.admitAudio(owner.id, parsed.chunk, parsed.desc);
    if (a && !a.ok) throw a.error;
  }

  /** The owner's live sessions (list item shape). */
  listSessions(owner: Principal): ReturnType<typeof sessionListItemView>[] {
    return this.o.registry.listFor(owner.id).map(sessionListItemView);
  }

  /** The owner's live session of that id, if any (e.g. to resume it on another connection). */
  findLiveSession(owner: Principal, sessionIdRaw: unknown): LiveSession | undefined {
    const l = this.o.registry.lookup(owner, SessionRegistry.validateId(sessionIdRaw));
    return l.kind === 'live' ? l.session : undefined;
  }

  /** Where the owner's session `sessionId` (an already valid id) stands here: live, recently ended, or unknown. */
  lookupSession(owner: Principal, sessionId: string): Lookup {
    return this.o.registry.lookup(owner, sessionId);
  }

  /** The server is shutting down: no new sessions here (the cluster door hands calls to a peer). */
  get draining(): boolean {
    return this.o.registry.isDraining;
  }

  /** A session's status: live, recently ended (tombstone) or not found. Ids are validated (400). */
  sessionStatus(owner: Principal, sessionIdRaw: unknown): SessionStatus {
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    const l = this.o.registry.lookup(owner, sessionId);
    if (l.kind === 'live') return l.session.status();
    if (l.kind === 'ended') return endedSessionStatusView(sessionId, l.tombstone);
    return sessionNotFoundView(sessionId);
  }

  /** Ends one of the owner's sessions by id (idempotent: a recently ended one answers `alreadyEnded`). */
  endSession(owner: Principal, sessionIdRaw: unknown, reason: SessionEndReason = 'client_end'): EndSessionOutcome {
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    const l = this.o.registry.end(owner, sessionId, reason);
    if (l.kind === 'live') return { kind: 'ended', sessionId, info: l.session.endedInfo!, alreadyEnded: false };
    if (l.kind === 'ended') return { kind: 'ended', sessionId, info: l.tombstone.info, alreadyEnded: true };
    return { kind: 'not_found', sessionId };
  }

  /**
   * `endSession` on any instance (WebSocket `end_session` by id): a session not known here is, in cluster mode,
   * ended by the live peer that serves it (asked, its answer is the caller's) or, when its owner is gone, from its
   * record.
   */
  async endSessionAnywhere(owner: Principal, sessionIdRaw: unknown, reason: SessionEndReason = 'client_end'): Promise<EndSessionOutcome> {
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    const l = this.o.registry.lookup(owner, sessionId);
    // Served elsewhere: unknown here, or handed over from here (its tombstone here says nothing of its end).
    const elsewhere = l.kind === 'unknown' || (l.kind === 'ended' && l.tombstone.info.reason === 'handed_over');
    if (!this.o.directory || !elsewhere) return this.endSession(owner, sessionId, reason);
    const asked = await this.o.directory.askOwner(owner, sessionId, 'end');
    if (asked.kind === 'answered') return asked.data as EndSessionOutcome;
    const r = await this.o.directory.endFromRecord(owner, sessionId);
    if (r.kind === 'ended') return { kind: 'ended', sessionId, info: r.info, alreadyEnded: r.alreadyEnded };
    // (Its owner stopped answering but is not yet counted dead: try again shortly.)
    if (r.kind === 'alive') throw new AppError(503, 'CLUSTER_UNAVAILABLE', 'The service is briefly unavailable; try again shortly', { retryAfterSec: 1 });
    return this.endSession(owner, sessionId, reason);
  }

  /**
   * `transcriptOf` on any instance (WebSocket `get_transcript` by id): a session a live peer serves is read from
   * that owner (fresh, the open turn included), otherwise from here or the copy stored at the last turn boundary.
   */
  async transcriptAnywhere(owner: Principal, sessionIdRaw: unknown): Promise<TranscriptView> {
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    if (this.o.directory && this.o.registry.lookup(owner, sessionId).kind !== 'live') {
      const asked = await this.o.directory.askOwner(owner, sessionId, 'transcript');
      if (asked.kind === 'answered') return asked.data as TranscriptView;
    }
    return this.transcriptOf(owner, sessionId);
  }

  /** `sessionStatus` on any instance (WebSocket `get_status` by id): a live peer's session is its owner's status. */
  async statusAnywhere(owner: Principal, sessionIdRaw: unknown): Promise<SessionStatus> {
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    if (this.o.directory && this.o.registry.lookup(owner, sessionId).kind !== 'live') {
      const asked = await this.o.directory.askOwner(owner, sessionId, 'status');
      if (asked.kind === 'answered') return asked.data as SessionStatus;
    }
    return this.sessionStatus(owner, sessionId);
  }

  /** Ends a session the caller holds (a socket's relayed session). Idempotent. */
  endLiveSession(session: LiveSession, reason: SessionEndReason, message?: string): SessionEndInfo {
    return this.o.registry.endSession(session, reason, message);
  }

  /** Typed text for the session's model. */
  sendText(session: LiveSession, text: string): void {
    session.sendText(text);
  }

  /** An image frame (already sniffed) for the session's model. */
  sendImage(session: LiveSession, bytes: Buffer, mimeType: 'image/jpeg' | 'image/png'): void {
    session.sendImage(bytes, mimeType);
  }

  /**
   * Answers to the model's function calls (both transports): validated here (400), then by the session's ledger
   * (409 unknown / not pending, 413 too large). Returns, per call, whether it went out now or waits for the
   * upstream to come back.
   */
  answerToolCalls(session: LiveSession, input: unknown): { id: string; name: string; delivery: 'sent' | 'held' }[] {
    return session.answerToolCalls(parseToolResponses(input));
  }

  /** REST: the owner's session by id (another key's looks unknown), then `answerToolCalls`. */
  answerToolCallsById(owner: Principal, sessionIdRaw: unknown, input: unknown): { id: string; name: string; delivery: 'sent' | 'held' }[] {
    if (sessionIdRaw === undefined || sessionIdRaw === null || sessionIdRaw === '') throw Errors.missingField('session_id');
    const session = this.o.registry.require(owner, SessionRegistry.validateId(sessionIdRaw));
    return this.answerToolCalls(session, input);
  }

  /** Barge-in: stops the current reply; returns the turn it stopped. */
  interrupt(session: LiveSession): TurnSnapshot {
    return session.interrupt();
  }

  /** Listens to one of a session's typed events; returns the function that stops listening. */
  subscribe<K extends keyof LiveSessionEvents & string>(session: LiveSession, event: K, listener: LiveSessionEvents[K]): () => void {
    session.on(event, listener);
    return () => session.off(event, listener);
  }

  /** Feeds a chunk into the session; audio errors become 4xx AppErrors. Resolves with where the chunk went. */
  async pushAudio(session: LiveSession, chunk: Buffer, desc: ChunkDescriptor): Promise<ChunkOutcome> {
    try {
      return await session.pushAudio(chunk, desc);
    } catch (err) {
      throw toClientAudioError(err);
    }
  }

  /**
   * Manual activity detection: relays `activity_start` / `activity_end` upstream in order with the session's audio
   * (after every chunk fed before it). Refused with 409 on a session without manual activity, for an end without a
   * start or a second start, 429 while too many markers wait for their audio.
   */
  activity(session: LiveSession, kind: ActivityKind): void {
    const refused = session.activity(kind);
    if (refused) throw activityError(refused);
  }

  /**
   * REST `/transcribe`: admit and feed the chunk, then answer within the bounded wait with the current turn's
   * state. Never waits for a turn to complete. `cursor` remembers, per session, what this caller was last answered.
   */
  async transcribe(
    owner: Principal,
    sessionIdRaw: unknown,
    audio: AudioInput,
    cursor: TurnCursor,
    activityIn: ActivityInput = {},
    timing?: TranscribeTiming,
  ): Promise<TranscriptionData> {
    const activity = { start: activityFlag(activityIn.start, 'activity_start'), end: activityFlag(activityIn.end, 'activity_end') };
    const hasAudio = !(audio.audioData === undefined || audio.audioData === null || audio.audioData === '');
    if (!hasAudio && (activity.start || activity.end)) return this.activityOnly(owner, sessionIdRaw, activity, cursor, timing);
    if (!hasAudio) throw Errors.missingField('audio_data');
    // Valid audio is admitted before anything else is looked at (a spent budget answers 429 whatever the rest says).
    let parsed: AdmittedAudio | undefined;
    let invalid: unknown;
    try {
      parsed = this.parseAudio(audio);
    } catch (err) {
      if (!isAppError(err)) throw err;
      invalid = err;
    }
    if (parsed) this.admit(owner, parsed);
    if (sessionIdRaw === undefined || sessionIdRaw === null || sessionIdRaw === '') throw Errors.missingField('session_id');
    if (!parsed) throw invalid;
    const sessionId = SessionRegistry.validateId(sessionIdRaw);
    const session = this.o.registry.require(owner, sessionId);
    // Anything that changed since the last answer is news: answer at once. Otherwise wait (bounded).
    const before = Math.min(session.snapshot().version, cursor.served(session));
    const errSeq = session.decodeErrors.seq;
    const cutSeq = session.audioCuts.seq;
    this.checkActivity(session, activity);
    if (activity.start) this.activity(session, 'start');
    const pushed = this.pushAudio(session, parsed.chunk, parsed.desc);
    pushed.catch(() => undefined); // awaited below; never an unhandled rejection if the marker throws first
    // The end takes its place right behind this chunk (wherever the reorder buffer puts it), whatever the chunk's fate.
    if (activity.end) this.activity(session, 'end');
    await pushed;
    const waitStart = performance.now();
    await session.waitForUpdate(before, errSeq, this.o.transcribeWaitMs, undefined, cutSeq);
    if (timing) timing.waitedMs += performance.now() - waitStart;
    const errs = session.decodeErrors;
    if (errs.seq > errSeq && errs.last) throw toClientAudioError(errs.last);
    const cuts = session.audioCuts;
    if (cuts.seq > cutSeq && cuts.last) {
      throw rateLimitError('audio_seconds', this.o.audioSecondsPerMinute ?? 0, cuts.last.retryAfterSec);
    }
    // (Handed over in a rolling deploy: the chunk was relayed before the session moved on; answer as usual.)
    if (session.ended && session.endedInfo!.reason !== 'handed_over') {
      const info = session.endedInfo!;
      const refusal = endedSessionError(info.reason, info.message);
      if (refusal) throw refusal;
      if (info.reason === 'upstream_error') throw new AppError(502, 'UPSTREAM_FAILED', `Live session failed: ${info.message}`);
      if (info.reason === 'server_shutdown') throw Errors.shuttingDown();
      throw Errors.sessionExpired();
    }
    const snap = session.snapshot();
    cursor.markServed(session, snap.version);
    return transcriptionView(session, snap);
  }

  /** Both markers of one request are checked before either is applied (a refused request changes nothing). */
  private checkActivity(session: LiveSession, a: { start: boolean; end: boolean }): void {
    if (!a.start && !a.end) return;
    const refused = session.activityRefusal(a.start ? 'start' : 'end');
    if (refused) throw activityError(refused);
  }

  /** `/transcribe` with activity fields and no audio: the markers go after every chunk sent before. */
  private async activityOnly(
    owner: Principal,
    sessionIdRaw: unknown,
    activity: { start: boolean; end: boolean },
    cursor: TurnCursor,
    timing?: TranscribeTiming,
  ): Promise<TranscriptionData> {
    if (sessionIdRaw === undefined || sessionIdRaw === null || sessionIdRaw === '') throw Errors.missingField('session_id');
    const session = this.o.registry.require(owner, SessionRegistry.validateId(sessionIdRaw));
    const before = Math.min(session.snapshot().version, cursor.served(session));
    this.checkActivity(session, activity);
    if (activity.start) this.activity(session, 'start');
    if (activity.end) this.activity(session, 'end');
    const waitStart = performance.now();
    await session.waitForUpdate(before, session.decodeErrors.seq, this.o.transcribeWaitMs);
    if (timing) timing.waitedMs += performance.now() - waitStart;
    if (session.ended && session.endedInfo!.reason !== 'handed_over') {
      const refusal = endedSessionError(session.endedInfo!.reason, session.endedInfo!.message);
      if (refusal) throw refusal;
      throw Errors.sessionExpired();
    }
    const snap = session.snapshot();
    cursor.markServed(session, snap.version);
    return transcriptionView(session, snap);
  }
}

export interface TranscriptView extends TranscriptRecord {
  live: boolean;
  setup: SetupEcho | null;
}

function transcriptView(r: TranscriptRecord, setup: SetupEcho | null, live: boolean): TranscriptView {
  return { ...r, live, setup };
}

function nextUtcMidnight(nowMs: number): string {
  const d = new Date(nowMs);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)).toISOString();
}

export function toClientAudioError(err: unknown): unknown {
  if (err instanceof AudioTooLargeError) return Errors.tooLarge('Audio data', err.maxBytes);
  if (err instanceof AudioLimitError) return new AppError(429, err.code, err.message, { retryAfterSec: err.retryAfterSec });
  if (err instanceof AudioDecodeError) {
    if (err.code === 'AUDIO_UNSUPPORTED_FORMAT' || err.code === 'AUDIO_UNSUPPORTED_CODEC') return new AppError(415, err.code, err.message);
    return new AppError(422, err.code, err.message);
  }
  return err;
}

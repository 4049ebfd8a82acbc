import type { Principal } from '../services/auth/principal';
import { webmPrimingBytes, WebmResumeTracker } from '../services/audio/webm-resume';
import type { LiveAudioService, SessionClaim, SessionDirectory } from '../services/live-audio-service';
import type { HandOverReason, LiveSession, LiveSessionParams, SessionEndInfo } from '../services/session/live-session';
import { SessionRegistry } from '../services/session/session-registry';
import { AppError, Errors } from '../util/app-error';
import type { Logger } from '../util/logger';
import { TypedEmitter } from '../util/typed-emitter';
import { isClusterUnavailable, PeerUnavailableError } from './cluster-errors';
import type { OwnerAnswer, OwnerCalls, OwnerQuery } from './owner-calls';
import { endedStatusOf, liveStatusOf } from './record-views';
import { compactEcho, type EffectiveSessionSetup, type SetupEcho } from '../services/session-setup/effective-setup';
import type { PreparedSession } from '../services/session-setup/session-planner';
import type { ClusterNode } from './cluster-node';
import type { Ownership, SessionRecord, SessionRef } from './session-records';
import { parseStoredToolCalls, toStoredToolCalls } from './stored-tool-calls';
import type { ConversationUsage } from '../services/conversation/session-conversation';
import type { TranscriptRecord } from '../services/conversation/transcript-types';
import type { ConversationArchive } from '../services/conversation/conversation-archive';
import { emptyUsage } from '../services/usage/usage-figures';

/** What a record's `setup` holds: everything another instance needs to open the same session. */
export interface StoredSetup {
  owner: Principal;
  model: string;
  requestedModel: string | null;
  responseModality: 'text' | 'audio';
  inputTranscription: boolean;
  outputTranscription: boolean;
  transport: 'rest' | 'ws';
  /** The effective setup the session started with (model options, profile, greeting): an adopter opens the same. */
  effective: EffectiveSessionSetup;
  /** Its client-visible echo (`data.setup`). */
  echo: SetupEcho;
}

/** What a record's `turn` holds: the turn state and the audio figures at the last write. */
export interface StoredTurn {
  turnId: number;
  userText: string;
  replyText: string;
  turnComplete: boolean;
  /** Audio decoded and not yet handed to the upstream at the last write: lost if the owner dies now (ms). */
  unsentMs: number;
  /** Audio relayed to the upstream over the session's life, every owner together (ms). */
  sentMs: number;
  /** Audio lost inside instances that died while owning the session (estimated from their last write, ms). */
  lostMs: number;
  /** Takeovers after an owner's death, and hand-overs (rolling deploys). */
  takeovers: number;
  handovers: number;
  /** What the session used so far (tokens, audio seconds, turns), every owner together: status from any instance. */
  usage?: ConversationUsage;
  /** The client's last activity (ms since the epoch): a new owner's idle timer counts from it, not from the takeover. */
  lastActivityAt?: number;
}

/** One session this instance serves, and what it last wrote to its record. */
interface Entry {
  ref: SessionRef;
  session: LiveSession;
  holder: Ownership;
  tracker: WebmResumeTracker;
  /** Figures carried over from earlier owners. */
  base: { sentMs: number; lostMs: number; takeovers: number; handovers: number };
  /** Nothing more is written (handed over, replaced by a new claim of the same id). */
  detached: boolean;
  dirty: boolean;
  writing: boolean;
  headerSent: boolean;
  /** The record may be gone (Redis restarted without persistence): rewrite it whole. */
  needsRestore: boolean;
  /** The function-call ledger's version last written (written again only when it moved). */
  toolsVersion: number;
  /** The transcript's `boundaryVersion` last written beside the record (-1: write it on the next write). */
  transcriptVersion: number;
  /** The client activity time last written (the record follows it, see `StoredTurn.lastActivityAt`). */
  activityWritten: number;
  /** `StoredTurn.unsentMs` last written: once the backlog is out, 0 is written too (a takeover counts no stale loss). */
  unsentWritten: number;
}

export type ClusterSessionsEvents = {
  /** A session of a dead owner (or a released one) now runs here. `lostMs`: audio counted lost in the dead owner. */
  tookOver: (e: { sessionId: string; from: string; lostMs: number; ms: number; released: boolean }) => void;
  /** A dead owner's (or a released) session was ended from its record, without an upstream. */
  endedFromRecord: (e: { sessionId: string; from: string; lostMs: number }) => void;
  handedOver: (e: { sessionId: string }) => void;
};

/** What ending a session from its record did (see `ClusterSessions.endFromRecord`). */
export type RecordEndOutcome =
  | { kind: 'ended'; info: SessionEndInfo; alreadyEnded: boolean }
  | { kind: 'not_found' }
  /** Served by a live instance (`owner`): the caller forwards, or answers that it is served elsewhere. */
  | { kind: 'alive'; owner: string }
  /** The record names this instance: the local registry answers. */
  | { kind: 'local' };

/** The messages the sessions' own ends carry (LiveSession, SessionRegistry), for answers read from a record. */
export const END_MESSAGES: Record<string, string> = {
  client_end: 'Ended by the client',
  expired: 'Session reached its maximum duration',
  idle_timeout: 'No audio received for too long',
  replaced: 'Replaced by a new session with the same id',
  server_shutdown: 'Server is shutting down',
  socket_closed: 'WebSocket closed',
};

/** Record end reasons of sessions that never ran (answered like an unknown id). */
export const NEVER_SESSIONS = new Set(['start_failed', 'unresumable']);

/** How an ended record's session ended, as `SessionEndInfo`. */
export function endInfoOf(rec: SessionRecord): SessionEndInfo {
  const reason = rec.endReason ?? 'ended';
  const endMs = rec.endedAt ?? rec.expiresAt;
  return {
    reason: (rec.status === 'expired' ? 'expired' : reason) as SessionEndInfo['reason'],
    message: END_MESSAGES[reason] ?? reason,
    endTime: new Date(endMs).toISOString(),
    durationMs: endMs - rec.createdAt,
  };
}

export interface ClusterSessionsOptions {
  node: ClusterNode;
  /** Where a session ended from its record goes (transcript kept here too, `session.ended` webhook). */
  archive?: ConversationArchive;
  registry: SessionRegistry;
  /** The service (late-bound: it is built with this directory). */
  service: () => LiveAudioService;
  sessionMaxAgeMs: number;
  logger: Logger;
  /** Calls to the live owner of a session (hand-over on a client's resume elsewhere, WebSocket end/reads). */
  owners?: OwnerCalls;
  /**
   * Charged once per hand-over a client's resume asks of a live owner (it opens a new upstream): throws the 429
   * when the owner's budget is spent (the session-start rate), so ping-ponging resumes cannot reopen upstreams
   * without bound. Returns the refund, for a call the owner did not hand over (it was moving anyway: a redeploy).
   */
  chargeHandOver?: (owner: Principal) => () => void;
  /** Longest wait for a live owner's audio to reach its upstream before it lets a session go (default 5000 ms). */
  liveHandOverSettleMs?: number;
}

/** How often a streaming session's record figures are rewritten (see `track`). */
const RECORD_REFRESH_MS = 500;

const keyOf = (ref: SessionRef) => SessionRegistry.key(ref.principal, ref.sessionId);
const msOf = (n: number | undefined) => Math.max(0, Math.round(n ?? 0));

/**
 * The session side of cluster mode: every session this instance serves has a record in Redis that it keeps
 * current (latest resumption handle, WebM init segment and resume point, turn state, audio figures), fenced by the
 * epoch it holds. Another instance takes a session over from a dead owner (or one that handed it over) with
 * `bringHere`: a new upstream resumed with the stored handle and a decoder primed with the stored WebM bytes.
 */
export class ClusterSessions extends TypedEmitter<ClusterSessionsEvents> implements SessionDirectory {
  private readonly entries = new Map<string, Entry>();
  private readonly ending = new Set<Promise<void>>();
  private readonly bringing = new Map<string, Promise<{ session?: LiveSession; aliveOwner?: string }>>();
  private readonly log: Logger;
  private readonly onRedisState = (state: string) => {
    if (state === 'connected') this.rewriteAll();
  };

  constructor(private readonly o: ClusterSessionsOptions) {
    super();
    this.log = o.logger.child({ component: 'cluster-sessions' });
    o.node.connection.on('state', this.onRedisState);
  }

  get node(): ClusterNode {
    return this.o.node;
  }

  /** Sessions this instance serves (with a record). */
  get size(): number {
    return this.entries.size;
  }

  close(): void {
    this.o.node.connection.off('state', this.onRedisState);
  }

  // ------------------------------------------------------------------ start

  async claim(prepared: PreparedSession): Promise<SessionClaim> {
    const params = prepared.params;
    const ref = { principal: params.owner.id, sessionId: params.sessionId };
    const records = this.o.node.records;
    const self = this.o.node.id;
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await records.get(ref);
      if (existing && existing.status === 'live') await this.retire(ref, existing);
      const r = await records.create({
        ...ref,
        owner: self,
        setup: setupOf(prepared),
        turn: emptyTurn(),
        maxAgeMs: this.o.sessionMaxAgeMs,
      });
      if (r.created) {
        const holder = r.ownership;
        return {
          attach: (session) => this.track(ref, session, holder, { sentMs: 0, lostMs: 0, takeovers: 0, handovers: 0 }),
          release: () => void records.end(ref, holder, 'start_failed').catch(() => undefined),
        };
      }
      if (r.reason === 'cap') throw Errors.tooManySessions('user', 5);
    }
    throw new AppError(409, 'SESSION_BUSY', 'The session is being started elsewhere; try again');
  }

  /** Clears the way for a new session with a live record's id (starting an id you already have replaces it). */
  private async retire(ref: SessionRef, rec: SessionRecord): Promise<void> {
    const records = this.o.node.records;
    const self = this.o.node.id;
    if (rec.owner === self) {
      const local = this.entries.get(keyOf(ref));
      if (local) local.detached = true; // its end must not touch the new record
      await records.end(ref, rec, 'replaced');
      return;
    }
    if (rec.owner !== '' && (await this.o.node.registry.isAlive(rec.owner))) {
      throw new AppError(409, 'SESSION_BUSY', 'The session is being served; try again');
    }
    const t = await records.takeOver(ref, rec.owner, self);
    if (t.taken) await records.end(ref, t.ownership, 'replaced');
  }

  // ------------------------------------------------------------------ takeover

  /**
   * Brings a session served elsewhere here if its owner is dead or released it: exactly one instance wins the
   * record (atomically); it opens the upstream resumed with the stored handle and primes a decoder with the stored
   * WebM bytes. Resolves with the local session, or undefined when there is nothing to take (unknown, ended, or
   * alive elsewhere: `aliveOwner` says where).
   */
  bringHere(owner: Principal, sessionId: string, opts: BringHereOptions = {}): Promise<{ session?: LiveSession; aliveOwner?: string }> {
    // A draining instance takes nothing over (the client's next try lands on another instance).
    if (this.o.registry.isDraining) return Promise.reject(Errors.shuttingDown());
    // Calls for the same session that arrive together (on this instance, or forwarded here by instances that lost
    // the race for the record) wait for the one takeover.
    const key = SessionRegistry.key(owner.id, sessionId);
    const pending = this.bringing.get(key);
    if (pending) return pending;
    // Waiting for a release covers a hand-over (moments) and a crash (until the owner's heartbeat expires).
    const waitMs = opts.waitForRelease ? this.o.node.registry.deadAfterMs + 1000 : 0;
    const p = this.bringHereOnce(owner, sessionId, waitMs, opts.fromLiveOwner === true).finally(() => this.bringing.delete(key));
    this.bringing.set(key, p);
    return p;
  }

  private async bringHereOnce(
    owner: Principal,
    sessionId: string,
    waitForReleaseMs: number,
    fromLiveOwner: boolean,
  ): Promise<{ session?: LiveSession; aliveOwner?: string }> {
    const ref = { principal: owner.id, sessionId };
    const records = this.o.node.records;
    const self = this.o.node.id;
    let waitUntil = Date.now() + waitForReleaseMs;
    let asked = false;
    /** The live owner that handed the session to this instance (its record now names this instance). */
    let handedFrom: string | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const local = this.o.registry.lookup(owner, sessionId);
      if (local.kind === 'live') return { session: local.session };
      const rec = await records.get(ref);
      if (!rec || rec.status !== 'live') return {};
      if (rec.owner !== '' && rec.owner !== self && (await this.o.node.registry.isAlive(rec.owner))) {
        if (fromLiveOwner && !asked && this.o.owners) {
          // The client resumed here while its owner lives (its socket there died, or it opened another): the owner
          // hands the session over (audio flushed, record written, released), once per call, charged first.
          asked = true;
          const refund = this.o.chargeHandOver?.(owner);
          waitUntil = Math.max(waitUntil, Date.now() + (this.o.liveHandOverSettleMs ?? 5000) + 2000);
          let answer: OwnerAnswer | undefined;
          try {
            answer = await this.o.owners.ask(rec.owner, 'release', owner.id, sessionId);
          } catch (err) {
            refund?.();
            // Unreachable (it may just have died): wait for its release or its heartbeat to expire, as after a crash.
            if (!(err instanceof PeerUnavailableError)) throw err;
          }
          // Not handed over by this call (already moving: a redeploy's hand-over, or ended): no upstream on its account.
          if (answer?.kind === 'not_here') refund?.();
          if (answer?.kind === 'answered') handedFrom = rec.owner;
          attempt--;
          continue;
        }
        // A client told to reconnect may be here before its old instance has released the session: wait for it.
        if (Date.now() >= waitUntil) return { aliveOwner: rec.owner };
        await new Promise((r) => setTimeout(r, 50));
        attempt--;
        continue;
      }
      const t0 = performance.now();
      let holder: Ownership;
      if (rec.owner === self) {
        // Handed to this instance by its live owner (released to us, so that no other call takes it meanwhile), or
        // ours on record but not here (this instance restarted under the same id): re-fence it to ourselves.
        const tr = await records.transfer(ref, rec, self);
        if (!tr.ok) continue;
        holder = tr.ownership;
      } else {
        const t = await records.takeOver(ref, rec.owner, self);
        if (!t.taken) {
          if (t.reason === 'gone' || t.reason === 'expired') return {};
          continue; // someone else won; look again
        }
        holder = t.ownership;
      }
      return { session: await this.resume(ref, rec, holder, t0, rec.owner === self ? handedFrom : undefined) };
    }
    throw new AppError(503, 'CLUSTER_UNAVAILABLE', 'The session is changing hands; try again shortly', { retryAfterSec: 1 });
  }

  /** `handedFrom`: the live owner that released the session to this instance (a hand-over, nothing lost). */
  private async resume(ref: SessionRef, rec: SessionRecord, holder: Ownership, t0: number, handedFrom?: string): Promise<LiveSession> {
    const setup = rec.setup as StoredSetup | undefined;
    const turn = (rec.turn as StoredTurn | undefined) ?? emptyTurn();
    if (!setup || !setup.owner || setup.owner.id !== ref.principal || !setup.effective || !setup.echo) {
      await this.o.node.records.end(ref, holder, 'unresumable').catch(() => undefined);
      throw Errors.sessionNotFound();
    }
    const released = rec.owner === '' || handedFrom !== undefined;
    const from = handedFrom ?? rec.owner;
    const lostMs = released ? 0 : msOf(turn.unsentMs);
    const params: LiveSessionParams = {
      sessionId: ref.sessionId,
      owner: setup.owner,
      model: setup.model,
      requestedModel: setup.requestedModel ?? undefined,
      responseModality: setup.responseModality,
      inputTranscription: setup.inputTranscription,
      outputTranscription: setup.outputTranscription,
      transport: setup.transport,
    };
    // The conversation goes on from the transcript and usage the last owner stored (no record of them: from zero).
    const transcript = await this.o.node.records.getTranscript(ref).catch((err: unknown) => {
      this.log.warn({ sessionId: ref.sessionId, err: (err as Error).message }, 'stored transcript unreadable; continuing without it');
      return undefined;
    });
    let session: LiveSession;
    try {
      session = await this.o.service().adoptSession({ params, setup: setup.effective, echo: setup.echo }, rec.resumptionHandle, {
        ...(transcript ? { transcript } : {}),
        ...(turn.usage ? { usage: turn.usage } : {}),
        // The original max age and the client's last activity: a takeover neither extends nor refreshes them.
        clock: { startedAt: rec.createdAt, expiresAt: rec.expiresAt, lastActivityAt: msOf(turn.lastActivityAt ?? rec.createdAt) },
      });
    } catch (err) {
      // Give it back for the next call to try again (released: anyone may take it).
      await this.o.node.records.transfer(ref, holder, '').catch(() => undefined);
      throw err;
    }
    // The calls the dead owner's model was waiting on: still expected when the new upstream resumed the model's
    // session with the stored handle, else reported dropped (before the first record write below).
    if (rec.tools !== undefined) session.tools.restore(parseStoredToolCalls(rec.tools), rec.resumptionHandle !== undefined);
    this.track(ref, session, holder, {
      sentMs: msOf(turn.sentMs),
      lostMs: msOf(turn.lostMs) + lostMs,
      takeovers: (turn.takeovers ?? 0) + (released ? 0 : 1),
      handovers: (turn.handovers ?? 0) + (released ? 1 : 0),
    });
    if (rec.webmHeader && rec.webmResume) {
      const priming = webmPrimingBytes(rec.webmHeader, rec.webmResume);
      await session.prime(priming).catch((err: unknown) => this.log.warn({ sessionId: ref.sessionId, err: (err as Error).message }, 'could not prime the decoder'));
    }
    const ms = performance.now() - t0;
    this.log.info({ sessionId: ref.sessionId, from: from || '(released)', epoch: holder.epoch, lostMs, ms: Math.round(ms), resumed: !!rec.resumptionHandle }, 'session taken over');
    this.emit('tookOver', { sessionId: ref.sessionId, from, lostMs, ms, released });
    return session;
  }

  // ------------------------------------------------------------------ ending without an owner

  /**
   * Ends a session whose owner is dead (or that was released) from its record, without opening an upstream: the
   * record is won like a takeover (atomically: exactly one instance ends it, a live owner is never deposed), then
   * ended under that fence with the stored transcript (closed now) and the usage the owner last recorded; the
   * archive keeps the transcript and sends the `session.ended` webhook. Audio that was inside the dead owner is
   * counted lost as in a takeover. An ended record answers `alreadyEnded`.
   */
  async endFromRecord(owner: Principal, sessionId: string, reason: SessionEndInfo['reason'] = 'client_end'): Promise<RecordEndOutcome> {
    const ref = { principal: owner.id, sessionId };
    const records = this.o.node.records;
    const self = this.o.node.id;
    for (let attempt = 0; attempt < 3; attempt++) {
      const rec = await records.get(ref);
      if (!rec || NEVER_SESSIONS.has(rec.endReason ?? '')) return { kind: 'not_found' };
      if (rec.status !== 'live') return { kind: 'ended', info: endInfoOf(rec), alreadyEnded: true };
      if (rec.owner === self) return { kind: 'local' };
      if (rec.owner !== '' && (await this.o.node.registry.isAlive(rec.owner))) return { kind: 'alive', owner: rec.owner };
      const t = await records.takeOver(ref, rec.owner, self);
      if (!t.taken) continue; // ended, expired or taken meanwhile: read it again
      const setup = rec.setup as StoredSetup | undefined;
      const turn = (rec.turn as StoredTurn | undefined) ?? emptyTurn();
      const endedAt = Date.now();
      const stored = await records.getTranscript(ref).catch(() => undefined);
      const transcript = stored ? closedTranscript(stored, endedAt, reason) : undefined;
      const summary: Record<string, string> = {
        ...(setup ? { model: setup.model, responseModality: setup.responseModality, transport: setup.transport } : {}),
        ...(setup?.echo ? { setup: JSON.stringify(compactEcho(setup.echo)) } : {}),
        ...(turn.usage ? { usage: JSON.stringify(turn.usage) } : {}),
      };
      const r = await records.end(ref, t.ownership, reason, summary, transcript);
      if (r !== 'ok') continue;
      const lostMs = rec.owner === '' ? 0 : msOf(turn.unsentMs);
      this.log.info({ sessionId, from: rec.owner || '(released)', lostMs }, 'session ended from its record (owner gone)');
      this.emit('endedFromRecord', { sessionId, from: rec.owner, lostMs });
      const info: SessionEndInfo = { reason, message: END_MESSAGES[reason] ?? reason, endTime: new Date(endedAt).toISOString(), durationMs: endedAt - rec.createdAt };
      if (this.o.archive && setup?.owner && setup.echo) {
        const record = transcript ?? closedTranscript(emptyTranscript(ref, rec.createdAt), endedAt, reason);
        void this.o.archive.storedSessionEnded(record, setup.echo, { sessionId, owner: setup.owner, startedAt: rec.createdAt, endedAt, reason });
      }
      return { kind: 'ended', info, alreadyEnded: false };
    }
    throw new AppError(503, 'CLUSTER_UNAVAILABLE', 'The session is changing hands; try again shortly', { retryAfterSec: 1 });
  }

  // ------------------------------------------------------------------ keeping records current

  private track(ref: SessionRef, session: LiveSession, holder: Ownership, base: Entry['base']): Entry {
    const key = keyOf(ref);
    const e: Entry = {
      ref,
      session,
      holder,
      tracker: new WebmResumeTracker(),
      base,
      detached: false,
      dirty: true,
      writing: false,
      headerSent: false,
      needsRestore: false,
      toolsVersion: -1,
      transcriptVersion: -1,
      activityWritten: 0,
      unsentWritten: 0,
    };
    this.entries.set(key, e);
    session.on('webmWritten', (bytes, startsRecording) => {
      if (startsRecording) e.headerSent = false;
      e.tracker.push(bytes);
      this.touch(e);
    });
    session.on('upstreamResumptionHandle', () => this.touch(e));
    session.on('turnComplete', () => this.touch(e));
    // Function calls asked, answered, withdrawn: the record follows, so a takeover carries them on.
    session.tools.on('changed', () => this.touch(e));
    // While audio is on its way upstream the record's figures are refreshed, so that what a sudden death loses
    // is counted from a recent state (the cost: one small write per session per interval, only while it streams).
    // The transcript's copy is rewritten at turn boundaries (a usage report follows its turn's end: caught here).
    const refresh = setInterval(() => {
      if (e.session.pendingAudioMs() > 0 || msOf(e.session.pendingAudioMs()) !== e.unsentWritten || transcriptChanged(e) || e.session.lastActivity.getTime() !== e.activityWritten) this.touch(e);
    }, RECORD_REFRESH_MS);
    refresh.unref();
    session.once('ended', (info) => {
      clearInterval(refresh);
      this.onEnded(key, e, info);
    });
    this.touch(e);
    return e;
  }

  /** Marks the record stale and writes it (one write in flight per session; the latest state wins). */
  private touch(e: Entry): void {
    if (e.detached) return;
    e.dirty = true;
    if (!e.writing) void this.write(e);
  }

  private turnOf(e: Entry): StoredTurn {
    const snap = e.session.snapshot();
    const up = e.session.upstreamStats();
    return {
      turnId: snap.turnId,
      userText: snap.userText.slice(-4000),
      replyText: snap.replyText.slice(-4000),
      turnComplete: snap.turnComplete,
      unsentMs: msOf(e.session.pendingAudioMs()),
      sentMs: e.base.sentMs + msOf(up.sentAudioMs),
      lostMs: e.base.lostMs,
      takeovers: e.base.takeovers,
      handovers: e.base.handovers,
      ...(e.session.conversation ? { usage: e.session.conversation.usage() } : {}),
      lastActivityAt: e.session.lastActivity.getTime(),
    };
  }

  private async write(e: Entry): Promise<void> {
    e.writing = true;
    try {
      while (e.dirty && !e.detached && !e.session.ended) {
        e.dirty = false;
        if (e.needsRestore) await this.restore(e);
        const init = e.tracker.initSegment;
        const toolsVersion = e.session.tools.version;
        const conversation = e.session.conversation;
        const version = conversation?.transcript.boundaryVersion ?? -1;
        const transcript = conversation && transcriptChanged(e) ? storedTranscriptOf(e.session) : undefined;
        e.activityWritten = e.session.lastActivity.getTime();
        const turn = this.turnOf(e);
        const r = await this.o.node.records.update(e.ref, e.holder, {
          ...(transcript ? { transcript } : {}),
          turn,
          ...(toolsVersion !== e.toolsVersion ? { tools: toStoredToolCalls(e.session.tools.snapshot()) } : {}),
          ...(e.session.resumptionHandle ? { resumptionHandle: e.session.resumptionHandle } : {}),
          ...(init && !e.headerSent ? { webmHeader: init } : {}),
          ...(init ? { webmResume: e.tracker.resumePoint() } : {}),
        });
        if (init) e.headerSent = true;
        if (r === 'ok') e.toolsVersion = toolsVersion;
        if (r === 'ok') e.unsentWritten = turn.unsentMs;
        if (r === 'ok' && transcript) e.transcriptVersion = version;
        if (r === 'not_owner') {
          // Someone took it over (we were thought dead): the session is theirs now; stop serving it here.
          this.log.warn({ sessionId: e.ref.sessionId }, 'session record owned elsewhere now; ending the local copy');
          e.detached = true;
          e.session.markMovedAway();
          e.session.end('replaced', 'The session moved to another instance');
        } else if (r === 'gone') {
          e.needsRestore = true;
        }
      }
    } catch (err) {
      if (!isClusterUnavailable(err)) this.log.warn({ sessionId: e.ref.sessionId, err: (err as Error).message }, 'session record write failed');
      e.dirty = true;
      e.needsRestore = true; // Redis may come back empty
    } finally {
      e.writing = false;
    }
  }

  private async restore(e: Entry): Promise<void> {
    const now = Date.now();
    const r = await this.o.node.records.restore({
      ...e.ref,
      owner: e.holder.owner,
      epoch: e.holder.epoch,
      status: 'live',
      setup: setupOf({ params: e.session.params, setup: e.session.conversation!.setup, echo: e.session.conversation!.echo }),
      turn: this.turnOf(e),
      tools: toStoredToolCalls(e.session.tools.snapshot()),
      ...(e.session.resumptionHandle ? { resumptionHandle: e.session.resumptionHandle } : {}),
      ...(e.tracker.initSegment ? { webmHeader: e.tracker.initSegment, webmResume: e.tracker.resumePoint() } : {}),
      createdAt: e.session.startTime.getTime(),
      updatedAt: now,
      expiresAt: e.session.expiresAt.getTime(),
      takeovers: e.base.takeovers,
    });
    e.needsRestore = false;
    if (r === 'restored') this.log.info({ sessionId: e.ref.sessionId }, 'session record rewritten after Redis lost it');
  }

  /** Redis is back: every record this instance holds is written again (restored when Redis lost it). */
  private rewriteAll(): void {
    for (const e of this.entries.values()) {
      e.needsRestore = true;
      e.headerSent = false;
      e.transcriptVersion = -1;
      this.touch(e);
    }
  }

  private onEnded(key: string, e: Entry, info: SessionEndInfo): void {
    if (this.entries.get(key) === e) this.entries.delete(key);
    if (e.detached) return;
    e.detached = true;
    const p = this.o.node.records
      .end(e.ref, e.holder, info.reason, endSummary(e.session), e.session.conversation ? storedTranscriptOf(e.session, info.reason) : undefined)
      .then(() => undefined)
      .catch((err: unknown) => {
        if (!isClusterUnavailable(err)) this.log.warn({ sessionId: e.ref.sessionId, err: (err as Error).message }, 'could not end the session record');
      })
      .finally(() => this.ending.delete(p));
    this.ending.add(p);
  }

  /** Resolves once the records of ended sessions are written (or after `timeoutMs`). */
  async idle(timeoutMs: number): Promise<void> {
    await Promise.race([Promise.all([...this.ending]), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  // ------------------------------------------------------------------ rolling deploys

  /**
   * SIGTERM with other instances alive: each session's pending audio is sent upstream (bounded wait), its record
   * written a last time and released for any instance to take over on the client's next call, then the local copy
   * ends with `handed_over` (WebSocket clients get `reconnect`). Returns how many were handed over.
   */
  async handOver(settleMs: number): Promise<number> {
    if (this.o.node.registry.peers().length === 0) return 0;
    // (A session already being handed to a client's resume elsewhere finishes that hand-over; drain waits for its end.)
    const moving = [...this.entries.values()].filter((e) => !e.session.handingOver);
    const results = await Promise.all(moving.map((e) => this.handOverEntry(e, settleMs, 'redeploy')));
    return results.filter(Boolean).length;
  }

  /**
   * The client resumed one of this instance's sessions on another instance (`ref.principal`'s session; any other
   * key's id is simply not here): the session is handed over as on a redeploy (break-then-make: its accepted audio
   * is flushed upstream, its record written a last time with the latest handle, pending calls and WebM header,
   * released, and the local copy ends with `handed_over`, closing its upstream), and its sockets here get
   * `session_detached` (the newest socket wins). The record is released to `to`, the instance the client resumed
   * on, so that no other call (a REST call waiting here) takes it meanwhile. `not_here` when it is not live here
   * (ended, moving, unknown).
   */
  async releaseLive(ref: SessionRef, to: string): Promise<'released' | 'not_here'> {
    const e = this.entries.get(keyOf(ref));
    if (!e || e.detached || e.session.ended || e.session.handingOver) return 'not_here';
    const t0 = performance.now();
    const released = await this.handOverEntry(e, this.o.liveHandOverSettleMs ?? 5000, 'resumed_elsewhere', to);
    this.log.info({ sessionId: ref.sessionId, to, released, ms: Math.round(performance.now() - t0) }, 'session handed over to a client resuming it elsewhere');
    return released ? 'released' : 'not_here';
  }

  /**
   * One session's hand-over: pending audio sent upstream (bounded wait), the record written a last time and
   * released for any instance (`to` '') or for instance `to` to take over, then the local copy ends with
   * `handed_over`. False when the record could not be released (Redis down, or another instance holds it now).
   */
  private async handOverEntry(e: Entry, settleMs: number, why: HandOverReason, to = ''): Promise<boolean> {
    e.session.beginHandOver(why);
    // Audio the client sent before it read `reconnect` is still on its way: let it arrive, then let it out.
    await new Promise((r) => setTimeout(r, 150));
    await e.session.settle(settleMs);
    while (e.writing) await new Promise((r) => setTimeout(r, 5));
    e.dirty = true;
    await this.write(e);
    if (e.detached || e.session.ended) return false; // lost meanwhile (owned elsewhere now, or ended)
    e.detached = true;
    let released = false;
    try {
      released = (await this.o.node.records.transfer(e.ref, e.holder, to)).ok;
    } catch {
      // Redis down: on a redeploy the session ends here as without a cluster; a live one stays here
    }
    if (!released) {
      if (why === 'resumed_elsewhere' && !e.session.ended) {
        e.detached = false;
        e.session.cancelHandOver();
        this.touch(e);
      }
      return false;
    }
    this.emit('handedOver', { sessionId: e.ref.sessionId });
    e.session.end('handed_over', 'Reconnect and resume');
    return true;
  }

  // ------------------------------------------------------------------ the live owner, asked by its peers

  /**
   * For a WebSocket call naming a session a live peer serves (`end_session`, `get_transcript`, `get_status`): asks
   * that owner (fresh) and resolves with its answer; `none` when no live peer serves it (unknown, another key's,
   * ended, this instance's, or the owner is dead or unreachable: the caller answers from here or the record). A
   * status without a live owner is answered from the record (ended, or live with `upstream.state: 'detached'`).
   */
  async askOwner(owner: Principal, sessionId: string, query: OwnerQuery): Promise<{ kind: 'answered'; data: unknown } | { kind: 'none' }> {
    const calls = this.o.owners;
    if (!calls) return { kind: 'none' };
    const ref = { principal: owner.id, sessionId };
    for (let attempt = 0; attempt < 3; attempt++) {
      const rec = await this.o.node.records.get(ref);
      if (!rec || NEVER_SESSIONS.has(rec.endReason ?? '') || rec.owner === this.o.node.id) return { kind: 'none' };
      // A status needs no owner: an ended session's is its record's (as on every instance), a dead owner's live
      // session's is read from its record (nothing is taken over for a read).
      const fromRecord = query === 'status' ? { kind: 'answered' as const, data: rec.status === 'live' ? liveStatusOf(rec) : endedStatusOf(rec) } : { kind: 'none' as const };
      if (rec.status !== 'live' || rec.owner === '') return fromRecord;
      if (!(await this.o.node.registry.isAlive(rec.owner))) return fromRecord;
      let a;
      try {
        a = await calls.ask(rec.owner, query, owner.id, sessionId);
      } catch (err) {
        if (err instanceof PeerUnavailableError) return fromRecord;
        throw err;
      }
      if (a.kind === 'answered') return a;
      // Not there any more (ended, or handed over while the call travelled): read the record again.
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new AppError(503, 'CLUSTER_UNAVAILABLE', 'The session is changing hands; try again shortly', { retryAfterSec: 1 });
  }

  // ------------------------------------------------------------------ listing

  /** The caller's live sessions on every instance (`GET /sessions`), as list items. */
  async listFor(principal: string): Promise<RemoteSessionItem[]> {
    const recs = await this.o.node.records.listByPrincipal(principal);
    return recs.map((r) => {
      const s = (r.setup as StoredSetup | undefined) ?? ({} as Partial<StoredSetup>);
      return {
        sessionId: r.sessionId,
        status: 'active' as const,
        startTime: new Date(r.createdAt).toISOString(),
        lastActivity: new Date(r.updatedAt).toISOString(),
        expiresAt: new Date(r.expiresAt).toISOString(),
        model: s.model ?? null,
        responseModality: s.responseModality ?? null,
        transport: s.transport ?? null,
        userId: s.owner?.userId ?? null,
      };
    });
  }
}

/** How `bringHere` may bring a session here. */
export interface BringHereOptions {
  /** Wait for an owner that is letting the session go (a hand-over) or dying (until its heartbeat expires). */
  waitForRelease?: boolean;
  /** Ask a live owner to hand the session over (a client's resume on this instance). */
  fromLiveOwner?: boolean;
}

export type RemoteSessionItem = {
  sessionId: string;
  status: 'active';
  startTime: string;
  lastActivity: string;
  expiresAt: string;
  model: string | null;
  responseModality: string | null;
  transport: string | null;
  userId: string | number | null;
};

function setupOf(prepared: PreparedSession): StoredSetup {
  const p = prepared.params;
  return {
    effective: prepared.setup,
    echo: prepared.echo,
    owner: p.owner,
    model: p.model,
    requestedModel: p.requestedModel ?? null,
    responseModality: p.responseModality,
    inputTranscription: p.inputTranscription,
    outputTranscription: p.outputTranscription,
    transport: p.transport,
  };
}

/** The transcript changed at a turn boundary since its copy was last written. */
function transcriptChanged(e: Entry): boolean {
  const c = e.session.conversation;
  return c !== undefined && c.transcript.boundaryVersion !== e.transcriptVersion;
}

/** The session's transcript as stored beside its record (with the compact setup, as the archive stores it). */
function storedTranscriptOf(session: LiveSession, endReason?: string): TranscriptRecord {
  const c = session.conversation!;
  const t = c.snapshot();
  if (endReason !== undefined && t.endedAt === null) {
    t.endedAt = Date.now();
    t.endReason = endReason;
  }
  return { ...t, setup: compactEcho(c.echo) };
}

/** A stored transcript as the session's end leaves it: the open turn closed (interrupted if it was replying). */
export function closedTranscript(t: TranscriptRecord, endedAt: number, reason: string): TranscriptRecord {
  const turns = t.turns.map((x) => (x.endedAt === null ? { ...x, endedAt, interrupted: x.interrupted || x.replyText !== '' } : x));
  return { ...t, turns, endedAt: t.endedAt ?? endedAt, endReason: t.endReason ?? reason };
}

export function emptyTranscript(ref: SessionRef, startedAt: number): TranscriptRecord {
  return { sessionId: ref.sessionId, owner: ref.principal, startedAt, endedAt: null, endReason: null, turns: [], usage: emptyUsage(), overheadUsage: emptyUsage(), droppedTurns: 0 };
}

function emptyTurn(): StoredTurn {
  return { turnId: 0, userText: '', replyText: '', turnComplete: false, unsentMs: 0, sentMs: 0, lostMs: 0, takeovers: 0, handovers: 0 };
}

/**
 * What an ended session's record keeps for its status on any instance (the same as the owner's tombstone): model,
 * modality, transport, the compact setup echo and the final usage (JSON; a few hundred bytes).
 */
function endSummary(session: LiveSession): Record<string, string> {
  const c = session.conversation;
  return {
    model: session.params.model,
    responseModality: session.params.responseModality,
    transport: session.params.transport,
    ...(c ? { setup: JSON.stringify(compactEcho(c.echo)), usage: JSON.stringify(c.usage()) } : {}),
  };
}

import type { ConversationArchive } from '../services/conversation/conversation-archive';
import type { TranscriptRecord } from '../services/conversation/transcript-types';
import { compactEcho } from '../services/session-setup/effective-setup';
import type { Logger } from '../util/logger';
import { TypedEmitter } from '../util/typed-emitter';
import { isClusterUnavailable } from './cluster-errors';
import { closedTranscript, emptyTranscript, type StoredSetup, type StoredTurn } from './cluster-sessions';
import type { SessionRecord, SessionRecordStore } from './session-records';

/** Where the sweep stands in the cluster: this instance's id, whether it is registered, who is alive. */
export interface SweepMembership {
  readonly id: string;
  /** This instance's heartbeat was written at the last attempt (only live instances sweep). */
  readonly registered: boolean;
  isAlive(id: string): Promise<boolean>;
  /** Instances that stopped heartbeating lately (the registry's view): their sessions are looked at first. */
  deadPeers(): string[];
}

/** What one sweep pass did. */
export interface SweepPassStats {
  /** Pages of owner sets looked at (a dead owner's, the released set's). */
  pages: number;
  /** Records read. */
  examined: number;
  /** Sessions ended by this pass. */
  ended: number;
  /** Wall time of the pass (ms). */
  ms: number;
}

export type OrphanSweeperEvents = {
  /** An abandoned session was ended from its record by this instance. */
  swept: (e: { sessionId: string; from: string; reason: 'idle_timeout' | 'expired'; lateMs: number }) => void;
  /** A pass finished. */
  pass: (s: SweepPassStats) => void;
};

export interface OrphanSweeperOptions {
  records: SessionRecordStore;
  membership: SweepMembership;
  /** The session idle timeout every instance applies (`LIVE_AUDIO_IDLE_TIMEOUT_MS`). */
  idleTimeoutMs: number;
  /** Mean time between passes (`LIVE_AUDIO_CLUSTER_SWEEP_INTERVAL_MS`); each wait is jittered ±25 %. */
  periodMs: number;
  /** Records read per pass at most (default 1000): a Redis full of records costs a bounded pass, the rest waits. */
  maxRecordsPerPass?: number;
  /** Sessions ended per pass at most (default 100; each stores a transcript and queues a webhook). */
  maxEndsPerPass?: number;
  /** Where a swept session's transcript goes and its `session.ended` webhook is sent from. */
  archive?: ConversationArchive;
  logger: Logger;
  random?: () => number;
}

/** SCAN's COUNT hint for the owner sets (there are few: one per instance that holds sessions). */
const SCAN_COUNT = 100;
/** SCAN steps per pass at most. */
const SCAN_STEPS = 20;
/** Records read in one pipeline. */
const PAGE = 100;

/**
 * Ends the sessions nobody comes back for, in cluster mode. A session whose owner died (kill -9) or that was handed
 * over on SIGTERM (released) lives on only as its Redis record; on one instance it would end at its idle timeout or
 * max age and send `session.ended`. Every live instance sweeps now and then (jittered): it scans the owner sets for
 * dead owners' and released sessions, and ends each one whose deadline has passed (the client's last activity plus
 * the idle timeout: `idle_timeout`; its max age: `expired`) from its record, as a dead owner's session is ended on a
 * client's call: tombstone, usage kept, transcript closed and archived, one signed `session.ended`. Claim and end
 * are one Redis script that re-checks everything (owner still dead, record untouched, deadline passed), so two
 * sweepers, or a sweeper and a client's takeover, end a session once and never end one a client just took back.
 * Work per pass is bounded (SCAN with COUNT, a cap on records read and sessions ended); the rest waits for the
 * next pass, where the scan goes on from where it stopped.
 */
export class OrphanSweeper extends TypedEmitter<OrphanSweeperEvents> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepPassStats> | undefined;
  /** Not started, or stopped (no passes are scheduled). */
  private stopped = true;
  /** `stop()` was called: a pass in flight stops early. */
  private halted = false;
  private scanCursor = '0';
  /** The owners (dead, or '' for the released set) still to page through, and where each page starts. */
  private queue: { owner: string; offset: number }[] = [];
  private readonly log: Logger;
  private readonly random: () => number;

  constructor(private readonly o: OrphanSweeperOptions) {
    super();
    this.log = o.logger.child({ component: 'orphan-sweeper' });
    this.random = o.random ?? Math.random;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.halted = false;
    this.schedule();
  }

  /** Stops sweeping; resolves once a pass in flight is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.halted = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    const wait = this.o.periodMs * (0.75 + this.random() * 0.5);
    this.timer = setTimeout(() => {
      void this.sweep()
        .catch((err: unknown) => {
          if (!isClusterUnavailable(err)) this.log.warn({ err: (err as Error).message }, 'sweep pass failed');
        })
        .finally(() => this.schedule());
    }, wait);
    this.timer.unref();
  }

  /** One pass (passes never overlap: a call while one runs answers that one). */
  sweep(): Promise<SweepPassStats> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<SweepPassStats> {
    const t0 = performance.now();
    const stats: SweepPassStats = { pages: 0, examined: 0, ended: 0, ms: 0 };
    const m = this.o.membership;
    if (!m.registered) return stats; // not live in the registry (Redis away, stopping): others sweep
    const maxRecords = this.o.maxRecordsPerPass ?? 1000;
    const maxEnds = this.o.maxEndsPerPass ?? 100;
    if (this.queue.length === 0) await this.refill();
    while (this.queue.length > 0 && stats.examined < maxRecords && stats.ended < maxEnds && !this.halted) {
      const q = this.queue[0];
      if (q.owner !== '' && (q.owner === m.id || (await m.isAlive(q.owner)))) {
        this.queue.shift(); // its owner serves them (or came back)
        continue;
      }
      stats.pages++;
      const limit = Math.min(PAGE, maxRecords - stats.examined);
      const page = await this.o.records.ownedPage(q.owner, q.offset, limit);
      const recs = await this.o.records.getMany(page.refs);
      stats.examined += page.refs.length;
      let kept = page.refs.length;
      for (const rec of recs) {
        if (stats.ended >= maxEnds || this.halted) break;
        if (await this.endIfDue(rec)) {
          stats.ended++;
          kept--;
        }
      }
      if (page.more && stats.ended < maxEnds) q.offset += Math.max(0, kept);
      else if (!page.more) this.queue.shift();
    }
    stats.ms = Math.round(performance.now() - t0);
    if (stats.ended > 0) this.log.info(stats, 'sweep: abandoned sessions ended');
    this.emit('pass', stats);
    return stats;
  }

  /**
   * The next owner sets to look at: the instances that died lately (the registry lists them), the released set, and
   * the owners a bounded stretch of the SCAN finds (it goes on from there next time: owners forgotten by the
   * registry, long dead, are found that way).
   */
  private async refill(): Promise<void> {
    const owners = new Set<string>(this.o.membership.deadPeers());
    owners.add('');
    for (let step = 0; step < SCAN_STEPS; step++) {
      const r = await this.o.records.scanOwners(this.scanCursor, SCAN_COUNT);
      for (const id of r.owners) owners.add(id);
      this.scanCursor = r.cursor;
      if (r.cursor === '0') break;
    }
    this.queue = [...owners].map((owner) => ({ owner, offset: 0 }));
  }

  /** Ends `rec` if it is abandoned and past its deadline; true when this instance ended it. */
  private async endIfDue(rec: SessionRecord): Promise<boolean> {
    if (rec.status === 'ended') return false;
    const now = Date.now();
    const turn = rec.turn as StoredTurn | undefined;
    const lastActivity = turn?.lastActivityAt ?? rec.createdAt;
    const idleDeadline = lastActivity + this.o.idleTimeoutMs;
    const reason = rec.expiresAt <= now ? 'expired' : idleDeadline <= now ? 'idle_timeout' : undefined;
    if (!reason) return false; // its client may still resume it
    const setup = rec.setup as StoredSetup | undefined;
    const stored = await this.o.records.getTranscript(rec).catch(() => undefined);
    const transcript = stored ? withUsage(closedTranscript(stored, now, reason), turn) : undefined;
    const summary: Record<string, string> = {
      ...(setup ? { model: setup.model, responseModality: setup.responseModality, transport: setup.transport } : {}),
      ...(setup?.echo ? { setup: JSON.stringify(compactEcho(setup.echo)) } : {}),
      ...(turn?.usage ? { usage: JSON.stringify(turn.usage) } : {}),
    };
    const r = await this.o.records.endAbandoned(rec, { sweeper: this.o.membership.id, reason, idleTimeoutMs: this.o.idleTimeoutMs, summary, transcript });
    if (r !== 'ended') return false; // taken back, written, ended elsewhere, or its owner is back: not ours to end
    const deadline = reason === 'expired' ? rec.expiresAt : idleDeadline;
    const lateMs = Math.max(0, now - deadline);
    this.log.info({ sessionId: rec.sessionId, from: rec.owner || '(released)', reason, lateMs }, 'abandoned session ended from its record');
    this.emit('swept', { sessionId: rec.sessionId, from: rec.owner, reason, lateMs });
    if (this.o.archive && setup?.owner && setup.echo) {
      const record = transcript ?? withUsage(closedTranscript(emptyTranscript(rec, rec.createdAt), now, reason), turn);
      void this.o.archive.storedSessionEnded(record, setup.echo, { sessionId: rec.sessionId, owner: setup.owner, startedAt: rec.createdAt, endedAt: now, reason });
    }
    return true;
  }
}

/**
 * The transcript's usage, or the record's when that is more recent (the record is written more often than the
 * transcript's copy, which follows turn boundaries: a usage report that came after the last one is in the record).
 */
function withUsage(t: TranscriptRecord, turn: StoredTurn | undefined): TranscriptRecord {
  const tokens = turn?.usage?.tokens;
  return tokens && tokens.reports > t.usage.reports ? { ...t, usage: tokens } : t;
}

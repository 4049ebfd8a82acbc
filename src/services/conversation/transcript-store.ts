import type { TranscriptRecord } from './transcript-types';
import type { SetupEcho } from '../session-setup/effective-setup';
import { ValueInterner } from '../../util/value-interner';
import { FairRetention, type EvictionCounts } from '../../util/fair-retention';
import { flatJson } from '../../util/flat-json';

/**
 * Where transcripts live while a session runs and for a retention time after it ends. Async and plain-JSON so a
 * shared (Redis) implementation can replace the memory one; reads are by owner (another caller's session id is
 * indistinguishable from an unknown one).
 */
export interface TranscriptStore {
  /** Inserts or replaces the transcript of (owner, sessionId). */
  put(record: TranscriptRecord): Promise<void>;
  get(owner: string, sessionId: string): Promise<TranscriptRecord | undefined>;
}

export interface MemoryTranscriptStoreOptions {
  /** `LIVE_AUDIO_TRANSCRIPT_RETENTION_MS`: how long an ended session's transcript is kept. Default 1 h. */
  retentionMs?: number;
  /** Transcripts held at most; beyond, the key holding the most gives its soonest-expiring one. Default 10,000. */
  maxRecords?: number;
  /** Approximate bytes (UTF-16 characters × 2 + per-turn overhead) held at most; beyond, the key holding the most bytes gives. Default 64 MiB. */
  maxBytes?: number;
  /** Transcripts one key or user may hold at most (cluster mode: `LIVE_AUDIO_CLUSTER_TRANSCRIPTS_PER_KEY`, as in Redis). Default: no own cap. */
  maxPerOwner?: number;
  now?: () => number;
}

/**
 * A stored transcript: the record as one JSON string (its setup apart, shared with equal setups). Thousands of
 * ended sessions' records are kept for their retention time: one flat string costs less than the objects of a
 * structured copy (its property arrays, boxed numbers, one object per usage figure set; measured per stored record,
 * map entry included: 952 → 823 B without turns, 1,530 → 1,276 B with one), and `get` parses a fresh copy from it as
 * it cloned one before.
 */
interface Entry {
  json: string;
  setup: SetupEcho | null | undefined;
}

/** Rough size of a record in memory, linear in its text. */
export function transcriptBytes(r: TranscriptRecord): number {
  let chars = 256;
  for (const t of r.turns) chars += 256 + t.userText.length + t.replyText.length + t.toolCalls.length * 256;
  return chars * 2;
}

/**
 * In-process transcripts with a retention after the session ends, bounded in count and bytes, fair between keys
 * (`FairRetention`): one key holder's flood of ended sessions evicts its own transcripts, not another key's.
 */
export class MemoryTranscriptStore implements TranscriptStore {
  private readonly records: FairRetention<Entry>;
  private readonly retentionMs: number;
  private readonly now: () => number;
  /** Stored transcripts share one frozen copy of each distinct setup (`get` hands out copies). */
  private readonly setups = new ValueInterner<SetupEcho>();

  constructor(opts: MemoryTranscriptStoreOptions = {}) {
    this.retentionMs = Math.max(0, opts.retentionMs ?? 60 * 60 * 1000);
    this.now = opts.now ?? Date.now;
    this.records = new FairRetention<Entry>({
      maxRecords: Math.max(1, opts.maxRecords ?? 10_000),
      maxWeight: Math.max(1024, opts.maxBytes ?? 64 * 1024 * 1024),
      maxPerOwner: opts.maxPerOwner,
      now: this.now,
    });
  }

  async put(record: TranscriptRecord): Promise<void> {
    const { setup, ...rest } = record;
    const expiresAt = record.endedAt === null ? Infinity : record.endedAt + this.retentionMs;
    const entry: Entry = { json: flatJson(rest), setup: setup ? this.setups.intern(setup) : setup };
    this.records.set(keyOf(record.owner, record.sessionId), record.owner, entry, { expiresAt, weight: transcriptBytes(record) });
  }

  async get(owner: string, sessionId: string): Promise<TranscriptRecord | undefined> {
    const e = this.records.get(keyOf(owner, sessionId));
    if (!e) return undefined;
    const record = JSON.parse(e.json) as TranscriptRecord;
    if (e.setup !== undefined) record.setup = e.setup && structuredClone(e.setup);
    return record;
  }

  /** What is held (tests, /metrics): expired transcripts are taken out first. */
  stats(): { records: number; bytes: number; evicted: number; evictions: EvictionCounts } {
    this.records.expire();
    const evictions = this.records.evictions();
    return { records: this.records.size, bytes: this.records.weight, evicted: evictions.records + evictions.bytes + evictions.per_key, evictions };
  }
}

function keyOf(owner: string, sessionId: string): string {
  return `${owner}\u0000${sessionId}`;
}

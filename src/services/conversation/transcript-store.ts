import type { TranscriptRecord } from './transcript-types';
import type { SetupEcho } from '../session-setup/effective-setup';
import { ValueInterner } from '../../util/value-interner';
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
  /** Transcripts held at most; beyond, the ended ones that end soonest go first, then the oldest. Default 10,000. */
  maxRecords?: number;
  /** Approximate bytes (UTF-16 characters × 2 + per-turn overhead) held at most. Default 64 MiB. */
  maxBytes?: number;
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
  bytes: number;
  expiresAt: number; // Infinity while the session lives
}

/** Rough size of a record in memory, linear in its text. */
export function transcriptBytes(r: TranscriptRecord): number {
  let chars = 256;
  for (const t of r.turns) chars += 256 + t.userText.length + t.replyText.length + t.toolCalls.length * 256;
  return chars * 2;
}

/** In-process transcripts with a retention after the session ends, bounded in count and bytes. */
export class MemoryTranscriptStore implements TranscriptStore {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly retentionMs: number;
  private readonly maxRecords: number;
  private readonly maxBytes: number;
  private readonly now: () => number;
  /** Stored transcripts share one frozen copy of each distinct setup (`get` hands out copies). */
  private readonly setups = new ValueInterner<SetupEcho>();
  /** Transcripts dropped before their time to stay within the bounds. */
  evicted = 0;

  constructor(opts: MemoryTranscriptStoreOptions = {}) {
    this.retentionMs = Math.max(0, opts.retentionMs ?? 60 * 60 * 1000);
    this.maxRecords = Math.max(1, opts.maxRecords ?? 10_000);
    this.maxBytes = Math.max(1024, opts.maxBytes ?? 64 * 1024 * 1024);
    this.now = opts.now ?? Date.now;
  }

  async put(record: TranscriptRecord): Promise<void> {
    this.prune();
    const key = keyOf(record.owner, record.sessionId);
    this.remove(key);
    const { setup, ...rest } = record;
    const bytes = transcriptBytes(record);
    const expiresAt = record.endedAt === null ? Infinity : record.endedAt + this.retentionMs;
    if (expiresAt <= this.now()) return;
    this.entries.set(key, { json: flatJson(rest), setup: setup ? this.setups.intern(setup) : setup, bytes, expiresAt });
    this.bytes += bytes;
    this.enforceBounds(key);
  }

  async get(owner: string, sessionId: string): Promise<TranscriptRecord | undefined> {
    this.prune();
    const e = this.entries.get(keyOf(owner, sessionId));
    if (!e) return undefined;
    const record = JSON.parse(e.json) as TranscriptRecord;
    if (e.setup !== undefined) record.setup = e.setup && structuredClone(e.setup);
    return record;
  }

  /** What is held (tests, status). */
  stats(): { records: number; bytes: number; evicted: number } {
    return { records: this.entries.size, bytes: this.bytes, evicted: this.evicted };
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.bytes -= e.bytes;
    this.entries.delete(key);
  }

  private prune(): void {
    const t = this.now();
    for (const [k, e] of this.entries) if (e.expiresAt <= t) this.remove(k);
  }

  /** Over a bound: ended transcripts first (soonest to expire), then the oldest live ones; never `keep` alone. */
  private enforceBounds(keep: string): void {
    if (this.entries.size <= this.maxRecords && this.bytes <= this.maxBytes) return;
    const order = [...this.entries.entries()]
      .filter(([k]) => k !== keep)
      .sort((a, b) => a[1].expiresAt - b[1].expiresAt);
    for (const [k] of order) {
      if (this.entries.size <= this.maxRecords && this.bytes <= this.maxBytes) break;
      this.remove(k);
      this.evicted++;
    }
  }
}

function keyOf(owner: string, sessionId: string): string {
  return `${owner}\u0000${sessionId}`;
}

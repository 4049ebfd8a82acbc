import type { TranscriptTurn } from './transcript-types';

/** What the live transcripts of all sessions may hold together by default (characters of text, plus a per-turn overhead). */
export const DEFAULT_LIVE_TRANSCRIPT_BUDGET_CHARS = 32 * 1024 * 1024;
/** What one turn costs beyond its text (times, flags, usage figures), in characters. */
export const TURN_OVERHEAD_CHARS = 512;

/** A transcript that holds turns charged to the budget (it drops its oldest turn when told). */
export interface BudgetedTranscript {
  /** Drops `turn` (its oldest) from the transcript and counts it as dropped. */
  dropOldest(turn: TranscriptTurn): void;
}

interface Entry {
  owner: BudgetedTranscript;
  turn: TranscriptTurn;
  chars: number;
  live: boolean;
}

/**
 * One budget for the live transcripts of every session (issue 14: bounded globally, not only per session). Each
 * transcript charges its turns' text as it grows; when the total passes the budget, the globally oldest turns are
 * dropped first (from whichever session holds them, counted in that transcript's `droppedTurns` and in `dropped`
 * here), never a turn still open. Dropping beats refusing: a refusal would end or stall conversations in progress
 * for the sake of old turns nobody reads while the session runs, and the session's usage figures, kept apart from
 * the turns, stay exact. Ended sessions release their turns (the stored transcripts have their own bound).
 */
export class LiveTranscriptBudget {
  private readonly entries: Entry[] = [];
  private head = 0;
  private readonly byTurn = new Map<TranscriptTurn, Entry>();
  private total = 0;
  private droppedTurns = 0;

  constructor(private readonly maxChars: number = DEFAULT_LIVE_TRANSCRIPT_BUDGET_CHARS) {}

  /** Characters charged now. */
  get usedChars(): number {
    return this.total;
  }

  /** Turns dropped across sessions to stay within the budget. */
  get dropped(): number {
    return this.droppedTurns;
  }

  /** A new turn (charged its overhead). */
  open(owner: BudgetedTranscript, turn: TranscriptTurn): void {
    const e: Entry = { owner, turn, chars: TURN_OVERHEAD_CHARS, live: true };
    this.entries.push(e);
    this.byTurn.set(turn, e);
    this.total += e.chars;
    this.enforce(turn);
  }

  /** `chars` more text in `turn`. */
  grow(turn: TranscriptTurn, chars: number): void {
    const e = this.byTurn.get(turn);
    if (!e || chars <= 0) return;
    e.chars += chars;
    this.total += chars;
    this.enforce(turn);
  }

  /** The transcript dropped or no longer holds `turn` (its own bound, or the session ended). */
  release(turn: TranscriptTurn): void {
    const e = this.byTurn.get(turn);
    if (!e) return;
    this.byTurn.delete(turn);
    e.live = false;
    this.total -= e.chars;
    this.compact();
  }

  /** Drops the oldest closed turns until the total fits (the turn being written, `growing`, is never dropped). */
  private enforce(growing: TranscriptTurn): void {
    let i = this.head;
    while (this.total > this.maxChars && i < this.entries.length) {
      const e = this.entries[i++]!;
      if (!e.live || e.turn === growing || e.turn.endedAt === null) continue;
      this.release(e.turn);
      this.droppedTurns++;
      e.owner.dropOldest(e.turn);
    }
    this.compact();
  }

  private compact(): void {
    while (this.head < this.entries.length && !this.entries[this.head]!.live) this.head++;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    // Released entries behind live ones: rebuilt when they are most of the list.
    if (this.entries.length > 4096 && this.byTurn.size * 4 < this.entries.length - this.head) {
      const live = this.entries.slice(this.head).filter((e) => e.live);
      this.entries.length = 0;
      this.entries.push(...live);
      this.head = 0;
    }
  }
}

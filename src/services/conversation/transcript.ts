import type { GroundingInfo } from '../tools/tool-types';
import { addUsage, emptyUsage, fromUsageMetadata, type UsageFigures } from '../usage/usage-figures';
import type { BudgetedTranscript, LiveTranscriptBudget } from './live-transcript-budget';
import type { TranscriptRecord, TranscriptToolCall, TranscriptTurn } from './transcript-types';

export interface TranscriptLimits {
  /** Turns kept per session; beyond, the oldest are dropped (counted in `droppedTurns`). Default 500. */
  maxTurns: number;
  /** Characters kept of each side of one turn (user words, reply). Default 16,384. */
  maxTurnChars: number;
}

export const DEFAULT_TRANSCRIPT_LIMITS: TranscriptLimits = { maxTurns: 500, maxTurnChars: 16_384 };

/**
 * The transcript of one live session, fed by the upstream events through a small event API. Turns open on the
 * first event of a turn (`greetingSent`, `userText`, `replyText`) and close on `turnComplete`; `usage` goes to the
 * open turn, else to the last closed turn still without usage, else to the session's overhead (a connection's
 * setup). Bounded: turns per session and characters per turn, and (with a `LiveTranscriptBudget`) the text of all
 * live sessions' transcripts together: the globally oldest turns are dropped first.
 */
export class Transcript implements BudgetedTranscript {
  private readonly record: TranscriptRecord;
  private open: TranscriptTurn | undefined;
  private nextIndex = 0;
  private readonly limits: TranscriptLimits;
  private boundaries = 0;

  constructor(
    init: { sessionId: string; owner: string; startedAt: number },
    private readonly now: () => number = Date.now,
    limits: Partial<TranscriptLimits> = {},
    private readonly budget?: LiveTranscriptBudget,
  ) {
    this.limits = { ...DEFAULT_TRANSCRIPT_LIMITS, ...limits };
    this.record = {
      ...init,
      endedAt: null,
      endReason: null,
      turns: [],
      usage: emptyUsage(),
      overheadUsage: emptyUsage(),
      droppedTurns: 0,
    };
  }

  /**
   * Continues the transcript of a session another instance served (cluster takeover): its turns (the last
   * `maxTurns`; a turn left open by the dead instance is closed now, as interrupted if it had begun replying),
   * usage and counts; new turns are numbered after them. Call before any event.
   */
  restore(prior: TranscriptRecord): void {
    if (this.record.turns.length > 0 || this.nextIndex > 0) return;
    const turns = structuredClone(prior.turns).slice(-this.limits.maxTurns);
    for (const t of turns) {
      if (t.endedAt === null) {
        t.endedAt = this.now();
        if (t.replyText !== '') t.interrupted = true;
      }
    }
    this.record.startedAt = prior.startedAt;
    this.record.turns = turns;
    this.record.usage = structuredClone(prior.usage);
    this.record.overheadUsage = structuredClone(prior.overheadUsage);
    this.record.droppedTurns = prior.droppedTurns + (prior.turns.length - turns.length);
    this.nextIndex = turns.reduce((m, t) => Math.max(m, t.index + 1), 0);
    for (const t of [...turns]) {
      this.budget?.open(this, t);
      this.budget?.grow(t, t.userText.length + t.replyText.length);
    }
    this.boundaries++;
  }

  /**
   * Changes at turn boundaries so far (a turn closed, usage, a tool call settled, turns dropped, the end): what a
   * copy kept elsewhere (the cluster's session record) is rewritten on, rather than on every fragment of text.
   */
  get boundaryVersion(): number {
    return this.boundaries;
  }

  /** The greeting (the model's cue to speak first) was sent: the model's opening is a turn of its own. */
  greetingSent(): void {
    this.closeOpenTurn();
    this.turn('greeting');
  }

  /** A fragment of the user's words (Gemini's input transcription, concatenated). */
  userText(fragment: string): void {
    const t = this.open && this.open.replyText === '' && this.open.kind === 'user' ? this.open : this.startUserTurn();
    t.userText = this.append(t, t.userText, fragment);
  }

  /** Typed user input (a WebSocket `text` message): a user turn with these words. */
  typedText(text: string): void {
    this.userText(text);
  }

  /** A fragment of the model's reply (output transcription or text parts). */
  replyText(fragment: string): void {
    const t = this.open ?? this.turn('user');
    t.replyText = this.append(t, t.replyText, fragment);
  }

  /** The model was interrupted (barge-in): the open turn is marked; it still closes on `turnComplete`. */
  interrupted(): void {
    if (this.open) this.open.interrupted = true;
    else {
      const last = this.record.turns.at(-1);
      if (last && last.endedAt !== null && this.now() - last.endedAt < 1000) last.interrupted = true;
    }
  }

  turnComplete(): void {
    this.closeOpenTurn();
  }

  /** One `usageMetadata` message (per turn, not cumulative). */
  usage(metadata: Parameters<typeof fromUsageMetadata>[0]): void {
    const u = fromUsageMetadata(metadata);
    this.boundaries++;
    this.record.usage = addUsage(this.record.usage, u);
    const target = this.open ?? this.lastClosedWithoutUsage();
    if (target) target.usage = target.usage ? addUsage(target.usage, u) : u;
    else this.record.overheadUsage = addUsage(this.record.overheadUsage, u);
  }

  /** Calls the model made in the open turn (one opens if none is). */
  toolCall(calls: TranscriptToolCall[]): void {
    const t = this.open ?? this.turn('user');
    for (const c of calls.slice(0, 64)) if (t.toolCalls.length < 64) t.toolCalls.push({ ...c });
  }

  /** What became of a call (answered, timed out, cancelled, dropped), in whichever recent turn holds it. */
  toolSettled(id: string, state: NonNullable<TranscriptToolCall['state']>, response?: unknown): void {
    for (let i = this.record.turns.length - 1, seen = 0; i >= 0 && seen < 8; i--, seen++) {
      const c = this.record.turns[i]!.toolCalls.find((x) => x.id === id);
      if (!c) continue;
      this.boundaries++;
      c.state = state;
      if (state === 'cancelled') c.cancelled = true;
      if (response !== undefined) c.response = response;
      return;
    }
  }

  /** Google Search grounding of the open turn's reply (merged, bounded). */
  grounding(g: GroundingInfo): void {
    const t = this.open ?? this.turn('user');
    const cur = t.grounding ?? { queries: [], sources: [] };
    t.grounding = {
      queries: [...new Set([...cur.queries, ...g.queries])].slice(0, 20),
      sources: [...cur.sources, ...g.sources.filter((s) => !cur.sources.some((c) => c.uri === s.uri))].slice(0, 20),
    };
  }

  /** The session ended: the open turn closes (as interrupted if it had started replying). */
  end(reason: string): void {
    if (this.record.endedAt !== null) return;
    if (this.open && this.open.replyText !== '') this.open.interrupted = true;
    this.closeOpenTurn();
    this.record.endedAt = this.now();
    this.record.endReason = reason;
    this.boundaries++;
    // No longer live: the stored transcripts have their own bound.
    for (const t of this.record.turns) this.budget?.release(t);
  }

  /** The live transcripts' budget drops this transcript's oldest turn. */
  dropOldest(turn: TranscriptTurn): void {
    const i = this.record.turns.indexOf(turn);
    if (i < 0) return;
    this.record.turns.splice(i, 1);
    this.record.droppedTurns++;
    this.boundaries++;
  }

  get ended(): boolean {
    return this.record.endedAt !== null;
  }

  /** Session usage so far (all reports summed). */
  get totalUsage(): UsageFigures {
    return this.record.usage;
  }

  /** A deep copy of the transcript as it is now (the open turn included, `endedAt: null`). */
  snapshot(): TranscriptRecord {
    return structuredClone(this.record);
  }

  // ---------------------------------------------------------------- internals

  private startUserTurn(): TranscriptTurn {
    this.closeOpenTurn();
    return this.turn('user');
  }

  private turn(kind: TranscriptTurn['kind']): TranscriptTurn {
    const t: TranscriptTurn = {
      index: this.nextIndex++,
      kind,
      userText: '',
      replyText: '',
      interrupted: false,
      startedAt: this.now(),
      endedAt: null,
      usage: null,
      toolCalls: [],
      truncated: false,
    };
    this.open = t;
    this.record.turns.push(t);
    if (this.record.turns.length > this.limits.maxTurns) {
      for (const old of this.record.turns.splice(0, this.record.turns.length - this.limits.maxTurns)) this.budget?.release(old);
      this.record.droppedTurns++;
    }
    if (this.record.endedAt === null) this.budget?.open(this, t);
    return t;
  }

  private closeOpenTurn(): void {
    if (!this.open) return;
    this.open.endedAt = this.now();
    this.open = undefined;
    this.boundaries++;
  }

  private lastClosedWithoutUsage(): TranscriptTurn | undefined {
    const last = this.record.turns.at(-1);
    return last && last.endedAt !== null && last.usage === null ? last : undefined;
  }

  private append(t: TranscriptTurn, current: string, fragment: string): string {
    if (typeof fragment !== 'string' || fragment.length === 0) return current;
    const room = this.limits.maxTurnChars - current.length;
    if (room <= 0) {
      t.truncated = true;
      return current;
    }
    if (fragment.length > room) t.truncated = true;
    const added = fragment.slice(0, room);
    this.budget?.grow(t, added.length);
    return current + added;
  }
}

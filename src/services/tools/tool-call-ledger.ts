import { AppError } from '../../util/app-error';
import { TypedEmitter } from '../../util/typed-emitter';
import type { ToolBehavior } from '../models/capabilities';
import type { ToolCallAnswer, ToolCallRequest, ToolResponseScheduling } from './tool-types';

/** Where a call stands. Only `pending` calls can be answered. */
export type ToolCallState = 'pending' | 'answered' | 'cancelled' | 'timed_out' | 'dropped';

/** One call the model made in this session. */
export interface ToolCallEntry extends ToolCallRequest {
  /** The upstream connection it came on (1 = the first). */
  connectionNo: number;
  state: ToolCallState;
  askedAt: number;
  settledAt?: number;
  /** What the model was answered (by the client, or the timeout's error). */
  response?: Record<string, unknown>;
}

/** A client's answer before the ledger fills in the name. */
export interface ClientToolResponse {
  id: string;
  response: Record<string, unknown>;
  scheduling?: ToolResponseScheduling;
}

export interface ToolLedgerLimits {
  /** A call left unanswered this long is answered with an error on the client's behalf. */
  timeoutMs: number;
  /** Calls pending at once; a call beyond it is answered with an error at once (the model does not hang). */
  maxPending: number;
  /** JSON bytes of one answer's `response`. */
  maxResponseBytes: number;
}

export const DEFAULT_TOOL_LIMITS: ToolLedgerLimits = { timeoutMs: 30_000, maxPending: 16, maxResponseBytes: 64 * 1024 };

/** Settled calls remembered (so a late re-answer is a 409, not an unknown id); older ones are forgotten. */
const MAX_SETTLED_REMEMBERED = 256;

export type ToolLedgerEvents = {
  /** New calls, in the order the model sent them (one event per upstream `toolCall`). */
  called: (calls: ToolCallEntry[]) => void;
  /** Calls the model withdrew (`cancelled`), or that a fresh upstream session no longer knows (`dropped`). */
  withdrawn: (ids: string[], reason: 'cancelled' | 'dropped') => void;
  /** Calls left unanswered for `timeoutMs`: `answers` is what goes to the model on the client's behalf. */
  timedOut: (answers: ToolCallAnswer[]) => void;
  /** Calls refused at once because too many were pending: `answers` go to the model. */
  overflow: (answers: ToolCallAnswer[]) => void;
};

/**
 * A session's function calls (issue 16): id → name, args, the connection it came on, and its state. The session
 * core owns it; both transports render from it. Bounded: pending calls (`maxPending`), answer size
 * (`maxResponseBytes`), settled calls remembered. Ids are per session: another session's id is simply unknown.
 */
export class ToolCallLedger extends TypedEmitter<ToolLedgerEvents> {
  private readonly calls = new Map<string, ToolCallEntry>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly limits: ToolLedgerLimits,
    /** The behavior each declared function has on this model (scheduling is passed for non-blocking ones only). */
    private readonly behaviors: ReadonlyMap<string, ToolBehavior>,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  get timeoutMs(): number {
    return this.limits.timeoutMs;
  }

  /** Calls waiting for an answer, oldest first. */
  pending(): ToolCallEntry[] {
    return [...this.calls.values()].filter((c) => c.state === 'pending');
  }

  get(id: string): ToolCallEntry | undefined {
    return this.calls.get(id);
  }

  /** The model asks. A repeated id (a message delivered twice) is ignored. */
  asked(requests: ToolCallRequest[], connectionNo: number): void {
    if (this.closed) return;
    const fresh: ToolCallEntry[] = [];
    const overflow: ToolCallAnswer[] = [];
    for (const r of requests) {
      if (this.calls.has(r.id)) continue;
      const entry: ToolCallEntry = { ...r, connectionNo, state: 'pending', askedAt: this.now() };
      this.calls.set(r.id, entry);
      if (this.pending().length > this.limits.maxPending) {
        const response = { error: `Too many function calls pending (at most ${this.limits.maxPending}); not run` };
        this.settle(entry, 'timed_out', response);
        overflow.push({ id: r.id, name: r.name, response });
        continue;
      }
      fresh.push(entry);
      const t = setTimeout(() => this.timeOut(r.id), this.limits.timeoutMs);
      t.unref?.();
      this.timers.set(r.id, t);
    }
    this.forgetOld();
    if (fresh.length > 0) this.emit('called', fresh);
    if (overflow.length > 0) this.emit('overflow', overflow);
  }

  /** The model withdrew calls (barge-in): the known pending ones are cancelled. */
  cancelled(ids: string[]): void {
    const hit = this.settleIds(ids, 'cancelled');
    if (hit.length > 0) this.emit('withdrawn', hit, 'cancelled');
  }

  /** A fresh (not resumed) upstream session: calls asked on earlier connections will never be expected. */
  freshSessionFrom(connectionNo: number): void {
    const ids = this.pending()
      .filter((c) => c.connectionNo < connectionNo)
      .map((c) => c.id);
    const hit = this.settleIds(ids, 'dropped');
    if (hit.length > 0) this.emit('withdrawn', hit, 'dropped');
  }

  /** Answers that were waiting for a connection and never reached the model. */
  responsesDropped(ids: string[]): string[] {
    const hit: string[] = [];
    for (const id of ids) {
      const c = this.calls.get(id);
      if (c && c.state === 'answered') {
        c.state = 'dropped';
        hit.push(id);
      }
    }
    return hit;
  }

  /**
   * The client answers: all-or-nothing. 400 for a repeated id in one request, 413 for an answer over
   * `maxResponseBytes`, 409 `TOOL_CALL_UNKNOWN` for an id this session never saw (another session's, made up) and
   * 409 `TOOL_CALL_NOT_PENDING` for one already answered, cancelled, timed out or dropped. Returns what goes upstream.
   */
  answer(responses: ClientToolResponse[]): ToolCallAnswer[] {
    const seen = new Set<string>();
    for (const r of responses) {
      if (seen.has(r.id)) throw new AppError(400, 'INVALID_FIELD', `Invalid field responses: call id ${short(r.id)} is answered twice`, { fields: ['responses'] });
      seen.add(r.id);
      const bytes = Buffer.byteLength(JSON.stringify(r.response), 'utf8');
      if (bytes > this.limits.maxResponseBytes) {
        throw new AppError(413, 'TOOL_RESPONSE_TOO_LARGE', `The response to ${short(r.id)} is ${bytes} bytes; at most ${this.limits.maxResponseBytes}`);
      }
      const c = this.calls.get(r.id);
      if (!c) throw new AppError(409, 'TOOL_CALL_UNKNOWN', `No function call ${short(r.id)} in this session`);
      if (c.state !== 'pending') throw new AppError(409, 'TOOL_CALL_NOT_PENDING', `Function call ${short(r.id)} is ${c.state.replace('_', ' ')}, not waiting for an answer`);
    }
    return responses.map((r) => {
      const c = this.calls.get(r.id)!;
      this.settle(c, 'answered', r.response);
      const nonBlocking = this.behaviors.get(c.name) === 'non_blocking';
      return { id: c.id, name: c.name, response: r.response, ...(r.scheduling && nonBlocking ? { scheduling: r.scheduling } : {}) };
    });
  }

  /** Stops the timers (the session ended). */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** The call's time is up: it and every call asked with or before it go out together, as one answer. */
  private timeOut(id: string): void {
    this.timers.delete(id);
    const c = this.calls.get(id);
    if (!c || c.state !== 'pending' || this.closed) return;
    const due = this.pending().filter((x) => x.askedAt <= c.askedAt);
    const response = { error: `The client did not answer within ${this.limits.timeoutMs} ms` };
    for (const x of due) this.settle(x, 'timed_out', response);
    this.emit('timedOut', due.map((x) => ({ id: x.id, name: x.name, response })));
  }

  private settleIds(ids: string[], state: ToolCallState): string[] {
    const hit: string[] = [];
    for (const id of ids) {
      const c = this.calls.get(id);
      if (c && c.state === 'pending') {
        this.settle(c, state);
        hit.push(id);
      }
    }
    return hit;
  }

  private settle(c: ToolCallEntry, state: ToolCallState, response?: Record<string, unknown>): void {
    c.state = state;
    c.settledAt = this.now();
    if (response !== undefined) c.response = response;
    const t = this.timers.get(c.id);
    if (t) clearTimeout(t);
    this.timers.delete(c.id);
  }

  private forgetOld(): void {
    let settled = this.calls.size - this.pending().length;
    for (const [id, c] of this.calls) {
      if (settled <= MAX_SETTLED_REMEMBERED) break;
      if (c.state === 'pending') continue;
      this.calls.delete(id);
      settled--;
    }
  }
}

/** An id as it may appear in an error message (client-supplied: bounded). */
function short(id: string): string {
  return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id);
}

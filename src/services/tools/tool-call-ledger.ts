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

/**
 * What another instance needs to carry a session's calls on (cluster takeover): the calls still waiting, and the
 * latest settled ones (so a late re-answer is a 409 naming its state there too). Plain JSON.
 */
export interface ToolLedgerSnapshot {
  pending: { id: string; name: string; args: Record<string, unknown>; askedAt: number }[];
  settled: { id: string; name: string; state: Exclude<ToolCallState, 'pending'> }[];
}

/** Settled calls a snapshot carries (the newest). */
export const SNAPSHOT_SETTLED_MAX = 32;

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
  /** Anything changed (asked, answered, withdrawn, timed out, restored): `version` grew. */
  changed: () => void;
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
  private versionNo = 0;
  /** Calls restored from another instance that the new upstream session never asked (reported `dropped`). */
  private readonly droppedOnRestore: string[] = [];

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

  /** Grows with every change (a writer that stores snapshots writes only when it moved). */
  get version(): number {
    return this.versionNo;
  }

  /** The calls still waiting and the newest settled ones (see `ToolLedgerSnapshot`). */
  snapshot(): ToolLedgerSnapshot {
    const pending: ToolLedgerSnapshot['pending'] = [];
    const settled: ToolLedgerSnapshot['settled'] = [];
    for (const c of this.calls.values()) {
      if (c.state === 'pending') pending.push({ id: c.id, name: c.name, args: c.args, askedAt: c.askedAt });
      else settled.push({ id: c.id, name: c.name, state: c.state });
    }
    return { pending, settled: settled.slice(-SNAPSHOT_SETTLED_MAX) };
  }

  /**
   * Carries on the calls of a session taken over from another instance (before anything else happened here).
   * `resumed`: the new upstream resumed the model's session (it still expects the answers), so pending calls stay
   * pending with the time they have left; otherwise the model never asked this session for them: they are
   * `dropped` (reported by `withdrawn`, and to clients that attach later by `droppedAtRestore`).
   */
  restore(s: ToolLedgerSnapshot, resumed: boolean): void {
    if (this.closed) return;
    for (const x of s.settled) {
      if (!this.calls.has(x.id)) this.calls.set(x.id, { id: x.id, name: x.name, args: {}, connectionNo: 0, state: x.state, askedAt: 0, settledAt: this.now() });
    }
    const restored: string[] = [];
    for (const x of s.pending.slice(0, this.limits.maxPending)) {
      if (this.calls.has(x.id)) continue;
      this.calls.set(x.id, { id: x.id, name: x.name, args: x.args, connectionNo: 0, state: 'pending', askedAt: x.askedAt });
      restored.push(x.id);
    }
    this.forgetOld();
    this.versionNo++;
    if (!resumed) {
      const hit = this.settleIds(restored, 'dropped');
      this.droppedOnRestore.push(...hit);
      if (hit.length > 0) this.emit('withdrawn', hit, 'dropped');
      this.emit('changed');
      return;
    }
    for (const id of restored) {
      const c = this.calls.get(id)!;
      const left = Math.max(0, c.askedAt + this.limits.timeoutMs - this.now());
      const t = setTimeout(() => this.timeOut(id), left);
      t.unref?.();
      this.timers.set(id, t);
    }
    this.emit('changed');
  }

  /** Calls restored from another instance and dropped because the new upstream session never asked them. */
  droppedAtRestore(): string[] {
    return [...this.droppedOnRestore];
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
    if (fresh.length + overflow.length > 0) this.changed();
  }

  /** The model withdrew calls (barge-in): the known pending ones are cancelled. */
  cancelled(ids: string[]): void {
    const hit = this.settleIds(ids, 'cancelled');
    if (hit.length > 0) this.emit('withdrawn', hit, 'cancelled');
    if (hit.length > 0) this.changed();
  }

  /** A fresh (not resumed) upstream session: calls asked on earlier connections will never be expected. */
  freshSessionFrom(connectionNo: number): void {
    const ids = this.pending()
      .filter((c) => c.connectionNo < connectionNo)
      .map((c) => c.id);
    const hit = this.settleIds(ids, 'dropped');
    if (hit.length > 0) this.emit('withdrawn', hit, 'dropped');
    if (hit.length > 0) this.changed();
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
    if (hit.length > 0) this.changed();
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
    const answers = responses.map((r) => {
      const c = this.calls.get(r.id)!;
      this.settle(c, 'answered', r.response);
      const nonBlocking = this.behaviors.get(c.name) === 'non_blocking';
      return { id: c.id, name: c.name, response: r.response, ...(r.scheduling && nonBlocking ? { scheduling: r.scheduling } : {}) };
    });
    this.changed();
    return answers;
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
    this.changed();
  }

  private changed(): void {
    this.versionNo++;
    this.emit('changed');
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

/**
 * The ledger's snapshot and restore (cluster takeover, issue 16 §4) and the record's bounded form of it: what a
 * taker carries on (pending calls with the time they have left, settled states for a 409), what a fresh model
 * session drops, and what a model (or a forged record) can make us store.
 */
import { parseStoredToolCalls, STORED_ARGS_MAX_BYTES, STORED_ARGS_TOTAL_BYTES, toStoredToolCalls } from '../../src/cluster/stored-tool-calls';
import { ToolCallLedger } from '../../src/services/tools/tool-call-ledger';

const limits = { timeoutMs: 1000, maxPending: 4, maxResponseBytes: 1024 };

function ledgerAt(clock: { t: number }): ToolCallLedger {
  return new ToolCallLedger(limits, new Map([['f', 'blocking' as const]]), () => clock.t);
}

describe('tool ledger snapshot and restore', () => {
  afterEach(() => jest.useRealTimers());

  it('a resumed takeover keeps pending calls answerable, with the time they had left; settled ones answer 409 with their state', () => {
    jest.useFakeTimers();
    const clock = { t: 10_000 };
    const a = ledgerAt(clock);
    a.asked([{ id: 'c1', name: 'f', args: { x: 1 } }, { id: 'c2', name: 'f', args: {} }], 1);
    a.answer([{ id: 'c2', response: { ok: true } }]);
    const snap = a.snapshot();
    a.close();
    expect(snap).toEqual({ pending: [{ id: 'c1', name: 'f', args: { x: 1 }, askedAt: 10_000 }], settled: [{ id: 'c2', name: 'f', state: 'answered' }] });

    clock.t = 10_900; // 900 ms of the 1000 ms timeout spent before the takeover
    const b = ledgerAt(clock);
    const timedOut: string[][] = [];
    b.on('timedOut', (answers) => timedOut.push(answers.map((x) => x.id)));
    const v0 = b.version;
    b.restore(snap, true);
    expect(b.version).toBeGreaterThan(v0);
    expect(b.pending().map((c) => c.id)).toEqual(['c1']);
    expect(() => b.answer([{ id: 'c2', response: {} }])).toThrow(expect.objectContaining({ status: 409, code: 'TOOL_CALL_NOT_PENDING' }));
    // The remaining 100 ms run out here (not a fresh 1000 ms).
    jest.advanceTimersByTime(99);
    expect(timedOut).toEqual([]);
    jest.advanceTimersByTime(2);
    expect(timedOut).toEqual([['c1']]);
    b.close();
  });

  it('a fresh takeover drops the restored calls (reported once, kept for late clients), and an answer is a 409 naming "dropped"', () => {
    const clock = { t: 0 };
    const b = ledgerAt(clock);
    const withdrawn: [string[], string][] = [];
    b.on('withdrawn', (ids, reason) => withdrawn.push([ids, reason]));
    b.restore({ pending: [{ id: 'c1', name: 'f', args: {}, askedAt: 0 }], settled: [] }, false);
    expect(withdrawn).toEqual([[['c1'], 'dropped']]);
    expect(b.droppedAtRestore()).toEqual(['c1']);
    expect(b.pending()).toEqual([]);
    expect(() => b.answer([{ id: 'c1', response: {} }])).toThrow(/dropped/);
    b.close();
  });

  it('restores at most maxPending calls (a forged or stale record cannot grow the ledger)', () => {
    const b = ledgerAt({ t: 0 });
    b.restore({ pending: Array.from({ length: 50 }, (_, i) => ({ id: `c${i}`, name: 'f', args: {}, askedAt: 0 })), settled: [] }, true);
    expect(b.pending()).toHaveLength(limits.maxPending);
    b.close();
  });
});

describe('the record form of the calls', () => {
  it('keeps args within the per-call and total budgets, naming the calls whose args were left out', () => {
    const big = { blob: 'x'.repeat(STORED_ARGS_MAX_BYTES) };
    const mid = { blob: 'y'.repeat(STORED_ARGS_MAX_BYTES - 100) };
    const pending = [{ id: 'big', name: 'f', args: big, askedAt: 1 }, ...Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, name: 'f', args: mid, askedAt: 1 }))];
    const stored = toStoredToolCalls({ pending, settled: [] });
    expect(stored.pending.map((c) => c.id)).toEqual(pending.map((c) => c.id));
    expect(stored.argsOmitted).toContain('big');
    expect(Buffer.byteLength(JSON.stringify(stored))).toBeLessThan(STORED_ARGS_TOTAL_BYTES + 4096);
    expect(stored.argsOmitted!.length).toBeGreaterThan(1);
  });

  it('reads anything malformed as no calls', () => {
    expect(parseStoredToolCalls(undefined)).toEqual({ pending: [], settled: [] });
    expect(parseStoredToolCalls({ pending: [{ id: 1 }], settled: [] })).toEqual({ pending: [], settled: [] });
    expect(parseStoredToolCalls({ pending: [], settled: [{ id: 'a', name: 'f', state: 'pending' }] })).toEqual({ pending: [], settled: [] });
    expect(parseStoredToolCalls({ pending: [{ id: 'a', name: 'f', args: {}, askedAt: 5 }], settled: [] }).pending).toHaveLength(1);
  });
});

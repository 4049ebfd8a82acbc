/**
 * Issue 14: live transcripts are bounded globally, not only per session. One LiveTranscriptBudget for every live
 * session: past it the globally oldest closed turns are dropped first (counted in the session's droppedTurns and in
 * the budget's counter), never a turn still open; ended sessions give their share back. Seeded interleavings of
 * several sessions check the bound and the order after every step.
 */
import { LiveTranscriptBudget, TURN_OVERHEAD_CHARS } from '../../src/services/conversation/live-transcript-budget';
import { Transcript } from '../../src/services/conversation';
import { suiteSeed, withSeed } from '../conversation-e2e/helpers';
import { prng } from '../ops/helpers';

const SEED = suiteSeed();

function clock() {
  let t = 1_000;
  return () => ++t;
}

describe(`LiveTranscriptBudget (seed ${SEED})`, () => {
  it('drops the oldest closed turns across sessions, never the open one, and counts them', () => {
    const budget = new LiveTranscriptBudget(4 * (TURN_OVERHEAD_CHARS + 100));
    const now = clock();
    const a = new Transcript({ sessionId: 'a', owner: 'k', startedAt: 0 }, now, {}, budget);
    const b = new Transcript({ sessionId: 'b', owner: 'k', startedAt: 0 }, now, {}, budget);
    const turn = (t: Transcript, text: string) => {
      t.userText(text.padEnd(50, '.'));
      t.replyText('r'.repeat(50));
      t.turnComplete();
    };
    turn(a, 'a1');
    turn(b, 'b1');
    turn(a, 'a2');
    turn(b, 'b2');
    expect(budget.dropped).toBe(0);
    turn(a, 'a3'); // one turn over: a1 (the oldest of all) goes
    expect(a.snapshot().turns.map((x) => x.userText.slice(0, 2))).toEqual(['a2', 'a3']);
    expect(a.snapshot().droppedTurns).toBe(1);
    turn(a, 'a4'); // then b1
    expect(b.snapshot().turns.map((x) => x.userText.slice(0, 2))).toEqual(['b2']);
    expect(budget.dropped).toBe(2);
    expect(budget.usedChars).toBeLessThanOrEqual(4 * (TURN_OVERHEAD_CHARS + 100));
    // An open turn that grows past everything: only closed turns are dropped, the open one stays whole.
    b.userText('x'.repeat(10_000));
    expect(b.snapshot().turns.at(-1)!.userText).toHaveLength(10_000);
    expect(a.snapshot().turns).toEqual([]);
    // An ended session gives its share back.
    const before = budget.usedChars;
    b.end('client_end');
    expect(budget.usedChars).toBeLessThan(before);
    expect(budget.usedChars).toBe(0);
    expect(b.snapshot().turns.length).toBeGreaterThan(0); // the record itself keeps them (the store bounds those)
  });

  it('seeded interleavings of 6 sessions: the bound holds after every step and drops go oldest first', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED);
      const max = 20_000;
      const budget = new LiveTranscriptBudget(max);
      const now = clock();
      const ts = Array.from({ length: 6 }, (_, i) => new Transcript({ sessionId: `s${i}`, owner: 'k', startedAt: 0 }, now, { maxTurns: 40 }, budget));
      const alive = new Set(ts);
      const starts = (closedOnly: boolean) =>
        new Set([...alive].flatMap((x) => x.snapshot().turns.filter((y) => !closedOnly || y.endedAt !== null).map((y) => y.startedAt)));
      const droppedSum = () => ts.reduce((n, x) => n + x.snapshot().droppedTurns, 0);
      let budgetDropSteps = 0;
      for (let step = 0; step < 3000; step++) {
        const list = [...alive];
        if (list.length === 0) break;
        const t = list[Math.floor(rnd() * list.length)]!;
        const r = rnd();
        const before = starts(false);
        const [droppedBefore, sumBefore] = [budget.dropped, droppedSum()];
        let ended = false;
        if (r < 0.45) t.userText('u'.repeat(1 + Math.floor(rnd() * 800)));
        else if (r < 0.9) t.replyText('r'.repeat(1 + Math.floor(rnd() * 800)));
        else if (r < 0.995) t.turnComplete();
        else {
          t.end('client_end');
          alive.delete(t);
          ended = true;
        }
        const open = [...alive].map((x) => x.snapshot().turns.at(-1)).filter((o) => o && o.endedAt === null);
        const openChars = open.reduce((n, o) => n + TURN_OVERHEAD_CHARS + o!.userText.length + o!.replyText.length, 0);
        // Over the bound only by what open turns hold (they are never dropped).
        expect(budget.usedChars).toBeLessThanOrEqual(max + openChars);
        const liveChars = [...alive].reduce(
          (n, x) => n + x.snapshot().turns.reduce((m, y) => m + TURN_OVERHEAD_CHARS + y.userText.length + y.replyText.length, 0),
          0,
        );
        expect(budget.usedChars).toBe(liveChars);
        // A step whose drops are all the budget's: every dropped turn is older than every closed turn kept anywhere.
        const budgetDrops = budget.dropped - droppedBefore;
        if (!ended && budgetDrops > 0 && droppedSum() - sumBefore === budgetDrops) {
          budgetDropSteps++;
          const after = starts(false);
          const gone = [...before].filter((x) => !after.has(x));
          expect(gone).toHaveLength(budgetDrops);
          const keptClosed = starts(true);
          if (keptClosed.size) expect(Math.max(...gone)).toBeLessThan(Math.min(...keptClosed));
        }
      }
      expect(budgetDropSteps).toBeGreaterThan(0);
      expect(budget.dropped).toBeGreaterThan(0);
    }));
});

/** The ledger that decides what a stalled decoder's replacement is fed again (and what of it to drop). */
import { OutputLedger } from '../../src/services/audio/output-ledger';

const ms = (n: number) => n * 32; // bytes of 16 kHz mono s16le

describe('OutputLedger', () => {
  it('confirms writes in order once the output covers their duration (with the pre-skip slack)', () => {
    const l = new OutputLedger(1 << 20);
    l.record(Buffer.from('a'), 1000);
    l.record(Buffer.from('b'), 1000);
    expect(l.pending).toBe(2);
    l.delivered(ms(995)); // 5 ms short of the first write: within the slack
    expect(l.pending).toBe(1);
    l.delivered(ms(500));
    expect(l.pending).toBe(1);
    l.delivered(ms(500));
    expect(l.owed).toBe(false);
  });

  it('replays what was not delivered and drops the part of the first write that was', () => {
    const l = new OutputLedger(1 << 20);
    l.record(Buffer.from('a'), 1000);
    l.record(Buffer.from('b'), 1000);
    l.record(Buffer.from('c'), 1000);
    l.delivered(ms(1400)); // all of a, 400 ms of b
    const r = l.takeForReplay();
    expect(r.writes.map((w) => w.bytes.toString())).toEqual(['b', 'c']);
    expect(r.discardBytes).toBe(ms(400));
    expect(l.owed).toBe(false);
  });

  it('a write of unknown duration is confirmed by any output after it', () => {
    const l = new OutputLedger(1 << 20);
    l.record(Buffer.from('x'), undefined);
    expect(l.owed).toBe(true);
    l.delivered(2);
    expect(l.owed).toBe(false);
  });

  it('keeps at most maxBytes for replay, giving up the oldest writes', () => {
    const l = new OutputLedger(10);
    for (let i = 0; i < 5; i++) l.record(Buffer.alloc(4, i), 100);
    const r = l.takeForReplay();
    expect(r.writes.map((w) => w.bytes[0])).toEqual([3, 4]);
    expect(r.discardBytes).toBe(0);
  });
});

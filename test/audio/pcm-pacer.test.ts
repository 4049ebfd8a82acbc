/**
 * The pacer on a fake clock: real-time streams pass inside push() (no timer), whatever their bunching; a decode
 * bomb spends the burst and is then held to the factor; the upstream socket's bufferedAmount holds everything; the
 * source is paused while frames wait and resumed when they drain; clear() drops what waits.
 */
import { PcmPacer } from '../../src/services/audio/pcm-pacer';

const FRAME = Buffer.alloc(3200); // 100 ms at 16 kHz mono s16le

function harness(opts: { factor?: number; burstMs?: number; maxBufferedBytes?: number } = {}) {
  let clock = 0;
  const sent: Array<{ at: number; bytes: number }> = [];
  let buffered = 0;
  const source = { paused: false, pauses: 0, pause() { this.paused = true; this.pauses++; }, resume() { this.paused = false; } };
  const pacer = new PcmPacer(
    { send: (f) => sent.push({ at: clock, bytes: f.length }), bufferedAmount: () => buffered },
    source,
    { realtimeFactor: opts.factor ?? 2, burstMs: opts.burstMs ?? 5000, maxBufferedBytes: opts.maxBufferedBytes ?? 256 * 1024, now: () => clock },
  );
  return {
    pacer,
    sent,
    source,
    sentMs: () => sent.reduce((n, s) => n + s.bytes, 0) / 32,
    setBuffered: (n: number) => (buffered = n),
    advance(ms: number, step = 10) {
      for (let t = 0; t < ms; t += step) {
        clock += step;
        jest.advanceTimersByTime(step);
      }
    },
  };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('PcmPacer', () => {
  it('a real-time stream (1 s chunks decoded at once) is never delayed', () => {
    const h = harness();
    for (let sec = 0; sec < 120; sec++) {
      for (let f = 0; f < 10; f++) {
        const before = h.sent.length;
        h.pacer.push(FRAME);
        expect(h.sent.length).toBe(before + 1); // sent inside push
      }
      h.advance(1000, 100);
    }
    expect(h.pacer.stats()).toMatchObject({ delayedFrames: 0, queuedMs: 0, pauses: 0 });
  });

  it('a bunch after a reorder wait (2.5 s at once) still goes at once', () => {
    const h = harness();
    for (let f = 0; f < 25; f++) h.pacer.push(FRAME);
    expect(h.sentMs()).toBe(2500);
    expect(h.pacer.stats().delayedFrames).toBe(0);
  });

  it('a decode bomb spends the burst, then never goes faster than the factor; the source is paused meanwhile', () => {
    const h = harness({ factor: 2, burstMs: 5000 });
    // 15 minutes decoded at once (as fast as ffmpeg makes it), offered frame by frame while not paused.
    let offered = 0;
    const offer = () => {
      while (!h.source.paused && offered < 9000) {
        h.pacer.push(FRAME);
        offered++;
      }
    };
    offer();
    expect(h.sentMs()).toBe(5000);
    expect(h.source.paused).toBe(true);
    for (let s = 1; s <= 30; s++) {
      h.advance(1000);
      offer();
      // Never more than the burst plus factor x elapsed time.
      expect(h.sentMs()).toBeLessThanOrEqual(5000 + 2 * 1000 * s + 100);
      expect(h.sentMs()).toBeGreaterThanOrEqual(5000 + 2 * 1000 * s - 200);
      // What waits stays small: the source is paused instead.
      expect(h.pacer.queuedMs).toBeLessThanOrEqual(1100);
    }
    expect(h.source.pauses).toBeGreaterThan(1);
  });

  it('nothing is sent while the upstream socket holds more than its bound', () => {
    const h = harness({ maxBufferedBytes: 100_000 });
    h.setBuffered(200_000);
    h.pacer.push(FRAME);
    h.pacer.push(FRAME);
    h.advance(500);
    expect(h.sent).toHaveLength(0);
    h.setBuffered(50_000);
    h.advance(30);
    expect(h.sent).toHaveLength(2);
  });

  it('clear() drops what waits and releases the source', () => {
    const h = harness({ burstMs: 200 });
    for (let f = 0; f < 20; f++) h.pacer.push(FRAME);
    expect(h.sentMs()).toBe(200);
    expect(h.source.paused).toBe(true);
    expect(Math.round(h.pacer.clear())).toBe(1800);
    expect(h.source.paused).toBe(false);
    h.advance(2000);
    expect(h.sentMs()).toBe(200);
  });
});

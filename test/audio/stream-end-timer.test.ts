/**
 * The stream-end timer on a fake clock: `audioStreamEnd` goes only after a whole gap without a frame, however the
 * frames are bunched (a REST client's 1 s chunks arrive as one burst a second) and however often the timer had to
 * wait on; then once per quiet gap; never after stop(); never with gap 0 (manual activity detection).
 * Burst spacings are drawn from a seeded generator (the seed is printed).
 */
import { StreamEndTimer } from '../../src/services/session/stream-end-timer';
import { prng } from '../ops/helpers';
import { suiteSeed } from '../helpers/seed';

const SEED = suiteSeed();
const GAP = 1500;

function harness(gapMs = GAP) {
  let clock = 0;
  const ends: number[] = [];
  const timer = new StreamEndTimer({ gapMs, onQuiet: () => ends.push(clock), now: () => clock });
  return {
    timer,
    ends,
    get clock() {
      return clock;
    },
    advance(ms: number) {
      for (let t = 0; t < ms; t++) {
        clock++;
        jest.advanceTimersByTime(1);
      }
    },
    /** A burst of `n` frames at once (one decoded chunk). */
    burst(n = 10) {
      for (let i = 0; i < n; i++) timer.frameSent();
    },
  };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe(`StreamEndTimer (seed ${SEED})`, () => {
  it("a REST client's 1 s chunks, one burst a second for a minute: no stream end until the gap after the last", () => {
    const h = harness();
    for (let i = 0; i < 60; i++) {
      h.burst();
      h.advance(1000);
    }
    expect(h.ends).toEqual([]);
    h.advance(GAP);
    // Exactly the gap after the last burst (sent at 59 s).
    expect(h.ends).toEqual([59_000 + GAP]);
  });

  it('seeded spacings below the gap never end the stream; every quiet gap ends it once, a whole gap after the last frame', () => {
    const rnd = prng(SEED);
    const h = harness();
    const lastFrames: number[] = [];
    for (let run = 0; run < 8; run++) {
      for (let i = 0; i < 40; i++) {
        h.burst(1 + Math.floor(rnd() * 12));
        h.advance(1 + Math.floor(rnd() * (GAP - 2)));
      }
      h.burst();
      lastFrames.push(h.clock);
      expect({ seed: SEED, run, ends: h.ends.length }).toEqual({ seed: SEED, run, ends: run });
      h.advance(GAP + Math.floor(rnd() * 3000));
    }
    expect({ seed: SEED, ends: h.ends }).toEqual({ seed: SEED, ends: lastFrames.map((t) => t + GAP) });
  });

  it('nothing after stop(), and nothing at all with gap 0', () => {
    const h = harness();
    h.burst();
    h.advance(GAP - 10);
    h.timer.stop();
    h.advance(GAP * 2);
    h.burst();
    h.advance(GAP * 2);
    expect(h.ends).toEqual([]);

    const manual = harness(0);
    manual.burst();
    manual.advance(GAP * 3);
    expect(manual.ends).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });
});

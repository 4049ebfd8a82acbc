/**
 * The stream-end timer on a fake clock: `audioStreamEnd` goes only once the microphone has not been heard from for
 * a whole gap after the end of the audio sent, however the frames are bunched (a REST client's 1 s chunks arrive as
 * one burst a second, some late) and however often the timer had to wait on; then once per quiet gap; never after
 * stop(); never with gap 0 (manual activity detection). Spacings are drawn from a seeded generator (seed printed).
 */
import { StreamEndTimer } from '../../src/services/session/stream-end-timer';
import { prng } from '../ops/helpers';
import { suiteSeed } from '../helpers/seed';

const SEED = suiteSeed();
const GAP = 1500;
/** The page's 1 s chunk: ten 100 ms frames at once. */
const CHUNK = { frames: 10, frameMs: 100 };

function harness(gapMs = GAP) {
  let clock = 0;
  const ends: number[] = [];
  const timer = new StreamEndTimer({ gapMs, maxAheadMs: 1000, onQuiet: () => ends.push(clock), now: () => clock });
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
    /** `frames` frames of `frameMs` at once (one decoded chunk). */
    burst(frames = CHUNK.frames, frameMs = CHUNK.frameMs) {
      for (let i = 0; i < frames; i++) timer.frameSent(frameMs);
    },
  };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe(`StreamEndTimer (seed ${SEED})`, () => {
  it("a REST client's 1 s chunks, one burst a second for a minute: no stream end until a gap after the last one's audio", () => {
    const h = harness();
    for (let i = 0; i < 60; i++) {
      h.burst();
      h.advance(1000);
    }
    expect(h.ends).toEqual([]);
    h.advance(1000 + GAP);
    // The last burst went at 59 s; its second of audio ended at 60 s.
    expect(h.ends).toEqual([60_000 + GAP]);
  });

  it('a chunk up to a gap late does not end the stream; one later than that does, once', () => {
    const h = harness();
    h.burst();
    h.advance(1000 + GAP - 2);
    h.burst();
    expect(h.ends).toEqual([]);
    h.advance(1000 + GAP + 1);
    h.burst();
    // The second burst went at 2.498 s; its audio ended at 3.498 s.
    expect(h.ends).toEqual([1000 + GAP - 2 + 1000 + GAP]);
  });

  it('a WebSocket-like stream (20 ms frames every 20 ms) ends a gap after its last frame', () => {
    const h = harness();
    for (let i = 0; i < 200; i++) {
      h.burst(1, 20);
      h.advance(20);
    }
    h.advance(GAP + 100);
    expect(h.ends).toEqual([4000 + GAP]);
  });

  it('audio faster than real time counts at most a second past its sending', () => {
    const h = harness();
    for (let i = 0; i < 30; i++) {
      h.burst();
      h.advance(500);
    }
    h.advance(1000 + GAP);
    expect(h.ends).toEqual([14_500 + 1000 + GAP]);
  });

  it('seeded bursts, each followed by less than its audio and a gap, never end the stream; every quiet gap ends it once', () => {
    const rnd = prng(SEED);
    const h = harness();
    const expected: number[] = [];
    for (let run = 0; run < 8; run++) {
      for (let i = 0; i < 40; i++) {
        const frames = 1 + Math.floor(rnd() * 12);
        h.burst(frames);
        h.advance(1 + Math.floor(rnd() * (Math.min(frames * CHUNK.frameMs, 1000) + GAP - 2)));
      }
      // A whole second at the end: its audio ends 1 s after it.
      h.burst();
      expected.push(h.clock + 1000 + GAP);
      expect({ seed: SEED, run, ends: h.ends.length }).toEqual({ seed: SEED, run, ends: run });
      h.advance(1000 + GAP + Math.floor(rnd() * 3000));
    }
    expect({ seed: SEED, ends: h.ends }).toEqual({ seed: SEED, ends: expected });
  });

  it('nothing after stop(), and nothing at all with gap 0', () => {
    const h = harness();
    h.burst();
    h.advance(GAP);
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

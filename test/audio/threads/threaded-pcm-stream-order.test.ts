/**
 * ThreadedPcmStream's ordering around a release of held output, driven by a scripted stand-in for the decoding
 * threads (our own seam, `DecodeThreads.open`), so that an answer can be made to arrive exactly between the release
 * and the turn in which the held output goes. On real threads that happens only under load (a busy CI machine showed
 * it as PCM out of order in `test/rest/disorder-22s`).
 */
import { silentLogger } from '../../../src/util/logger';
import type { DecodeThreadOutput } from '../../../src/services/audio/threads/decode-thread-protocol';
import type { DecodeThreadClient, DecodeThreads } from '../../../src/services/audio/threads/decode-threads';
import { ThreadedPcmStream } from '../../../src/services/audio/threads/threaded-pcm-stream';

/** A stand-in for the threads: records what the stream sends, and answers when the test says so. */
function scriptedThreads() {
  const sent: number[] = [];
  let client: DecodeThreadClient | undefined;
  const threads = {
    open: (_kind: unknown, _opts: unknown, c: DecodeThreadClient) => {
      client = c;
      return { push: (b: Uint8Array) => sent.push(b.length), finish: () => undefined, close: () => undefined };
    },
  } as unknown as DecodeThreads;
  const answer = (consumed: number, pcm: number[]): void => {
    const out: DecodeThreadOutput = { t: 'out', id: 1, consumed, pcm: Uint8Array.from(pcm) };
    client!.onOutput(out);
  };
  return { threads, sent, answer };
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('ThreadedPcmStream: held output and answers arriving around its release', () => {
  it('an answer that arrives after the release but before the held output went is delivered after it', async () => {
    const t = scriptedThreads();
    const delivered: number[][] = [];
    const stream = ThreadedPcmStream.open(t.threads, 'webm-opus', { primed: false }, {
      logger: silentLogger,
      onPcm: (b) => delivered.push([...b]),
      onFailure: () => undefined,
    })!;
    await stream.write(Buffer.alloc(100, 1));
    await stream.write(Buffer.alloc(100, 2));
    expect(t.sent).toEqual([100, 100]); // both with the thread
    stream.setOutputPaused(true);
    t.answer(100, [1, 1]); // held
    expect(delivered).toEqual([]);
    stream.setOutputPaused(false); // the held output goes in a later turn...
    t.answer(100, [2, 2]); // ...and the second answer arrives before that turn
    // Everything was answered, but not delivered: it is still owed (an activity marker must wait for it).
    expect(stream.owesOutput).toBe(true);
    await nextTurn();
    await nextTurn();
    expect(delivered).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(stream.owesOutput).toBe(false);
    stream.kill();
  });

  it('a handler that holds the output again during the release keeps the rest held, in order', async () => {
    const t = scriptedThreads();
    const delivered: number[][] = [];
    const stream: ThreadedPcmStream = ThreadedPcmStream.open(t.threads, 'webm-opus', { primed: false }, {
      logger: silentLogger,
      onPcm: (b) => {
        delivered.push([...b]);
        stream.setOutputPaused(true); // a pacer full after each piece
      },
      onFailure: () => undefined,
    })!;
    for (let i = 1; i <= 3; i++) await stream.write(Buffer.alloc(10, i));
    stream.setOutputPaused(true);
    for (let i = 1; i <= 3; i++) t.answer(10, [i]);
    for (let k = 1; k <= 3; k++) {
      stream.setOutputPaused(false);
      await nextTurn();
      await nextTurn();
      expect(delivered).toEqual([[1], [2], [3]].slice(0, k));
    }
    stream.kill();
  });
});

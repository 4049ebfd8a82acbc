import { PcmFramer } from '../../src/services/audio/pcm-framer';

function run(pushSizes: number[], opts?: { minMs?: number; maxMs?: number }) {
  const frames: number[] = [];
  const data: Buffer[] = [];
  const framer = new PcmFramer((f) => {
    frames.push(f.length);
    data.push(Buffer.from(f));
  }, opts);
  let counter = 0;
  const input: Buffer[] = [];
  for (const n of pushSizes) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = counter++ & 0xff;
    input.push(b);
    framer.push(b);
  }
  return { frames, framer, data, input };
}

describe('PcmFramer', () => {
  it('defaults to 20..100 ms at 16 kHz mono s16le', () => {
    const f = new PcmFramer(() => {});
    expect(f.minBytes).toBe(640);
    expect(f.maxBytes).toBe(3200);
  });

  it('emits as soon as 20 ms is available, caps frames at 100 ms and carries the remainder', () => {
    const { frames, framer } = run([320, 320, 1000, 7000, 100]);
    // 320 → held; +320 = 640 → one frame; 1000 → one frame; 7000 → 3200, 3200, 600 carried; +100 = 700 → frame.
    expect(frames).toEqual([640, 1000, 3200, 3200, 700]);
    expect(framer.bufferedBytes).toBe(0);
  });

  it('keeps byte order across frames and flushes the tail', () => {
    const { frames, framer, data, input } = run([100, 2000, 33, 5001, 400]);
    expect(frames.every((n) => n >= 640 && n <= 3200 && n % 2 === 0)).toBe(true);
    const held = framer.bufferedBytes;
    expect(held).toBeLessThan(640);
    framer.flush();
    expect(framer.bufferedBytes).toBe(0);
    const out = Buffer.concat(data);
    const all = Buffer.concat(input);
    // Everything except a dangling odd byte comes out, in order.
    expect(out.length).toBe(all.length - (all.length % 2));
    expect(out.equals(all.subarray(0, out.length))).toBe(true);
  });

  it('honours custom limits and never emits an empty frame', () => {
    const { frames, framer } = run([3200 * 3 + 10], { minMs: 40, maxMs: 60 });
    expect(frames).toEqual([1920, 1920, 1920, 1920, 1920]);
    expect(framer.bufferedBytes).toBe(10);
    const none: number[] = [];
    const f2 = new PcmFramer((f) => none.push(f.length));
    f2.flush();
    f2.push(Buffer.alloc(0));
    f2.push(Buffer.alloc(1));
    f2.flush();
    expect(none).toEqual([]);
    expect(() => new PcmFramer(() => {}, { minMs: 50, maxMs: 20 })).toThrow(RangeError);
  });
});

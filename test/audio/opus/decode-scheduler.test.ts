/**
 * The scheduler that shares the main thread among in-process decoding streams: round-robin slices, never run inside
 * `request`, and the event loop gets its turn (timers, sockets) between iterations once the budget is spent.
 */
import { DecodeScheduler, type DecodeTask } from '../../../src/services/audio/opus/decode-scheduler';

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* a slice's work */
  }
}

test('slices go round-robin, in later turns, and timers run between iterations once the budget is spent', async () => {
  const s = new DecodeScheduler(5);
  const order: string[] = [];
  const tasks = ['a', 'b', 'c'].map((name) => {
    let left = 4;
    const t: DecodeTask = {
      runSlice: () => {
        order.push(name);
        busy(2);
        return --left > 0;
      },
    };
    return t;
  });
  for (const t of tasks) s.request(t);
  s.request(tasks[0]!); // already waiting: no second place
  expect(order).toEqual([]); // nothing inside request()
  let timerAt = -1;
  setTimeout(() => (timerAt = order.length), 0);
  await new Promise((r) => setTimeout(r, 200));
  expect(order.join('')).toBe('abcabcabcabc');
  expect(s.iterations).toBeGreaterThan(1); // 24 ms of slices, 5 ms per iteration
  expect(timerAt).toBeGreaterThan(0);
  expect(timerAt).toBeLessThan(order.length); // the timer ran while slices were still waiting
  expect(s.waiting).toBe(0);
});

test('a cancelled task is not served; a throwing task does not stop the others', async () => {
  const s = new DecodeScheduler(5);
  const ran: string[] = [];
  const gone: DecodeTask = { runSlice: () => (ran.push('gone'), false) };
  const thrower: DecodeTask = {
    runSlice: () => {
      ran.push('thrower');
      throw new Error('bug');
    },
  };
  const ok: DecodeTask = { runSlice: () => (ran.push('ok'), false) };
  s.request(gone);
  s.request(thrower);
  s.request(ok);
  s.cancel(gone);
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  expect(ran).toEqual(['thrower', 'ok']);
});

/**
 * A decoding thread with faults injected (tests only): the real WebmOpusDecoder, but after `exitAfterPushes` pushes
 * the thread exits (as a thread killed by an out-of-memory error or a crash in its own code would), and after
 * `hangAfterPushes` it spins forever (as a decoder stuck in a loop would); every thread, or with `firstThreadOnly`
 * (an Int32Array on a SharedArrayBuffer) only the first one started. `startDelayMs`: it blocks that long first.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runDecodeThread } from '../../../src/services/audio/threads/decode-thread';
import { WebmOpusDecoder } from '../../../src/services/audio/opus/webm-opus-decoder';

const faults = (workerData ?? {}) as { exitAfterPushes?: number; hangAfterPushes?: number; firstThreadOnly?: Int32Array; startDelayMs?: number };
// `firstThreadOnly` (shared between the threads): only the first thread started has the faults; its replacements are sound.
const faulty = faults.firstThreadOnly ? Atomics.add(faults.firstThreadOnly, 0, 1) === 0 : true;
let pushes = 0;

// A thread slow to start (as on a loaded machine): it blocks before it takes messages.
if (faults.startDelayMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, faults.startDelayMs);

if (parentPort) {
  runDecodeThread(parentPort, {
    'webm-opus': (o) => {
      const d = new WebmOpusDecoder({ primed: o.primed });
      return {
        push(bytes) {
          pushes++;
          if (!faulty) return d.push(bytes);
          if (faults.exitAfterPushes !== undefined && pushes > faults.exitAfterPushes) process.exit(3);
          if (faults.hangAfterPushes !== undefined && pushes > faults.hangAfterPushes) for (;;);
          return d.push(bytes);
        },
        finish: () => d.finish(),
        close: () => d.close(),
      };
    },
  });
}

/**
 * A decoding thread with faults injected (tests only): the real WebmOpusDecoder, but after `exitAfterPushes` pushes
 * the thread exits (as a thread killed by an out-of-memory error or a crash in its own code would), and after
 * `hangAfterPushes` it spins forever (as a decoder stuck in a loop would); every thread, or with `firstThreadOnly`
 * (an Int32Array on a SharedArrayBuffer) only the first one started. `startDelayMs`: it blocks that long first.
 *
 * In a spawned server (LIVE_AUDIO_DECODE_THREAD_ENTRY names this file, NODE_ENV=test) the faults come as JSON in the
 * environment variable FAULT_THREAD_OPTIONS (a thread sees its process's environment), and since no shared memory
 * crosses a process's environment, `faultyThreads` + `markerDir` say which threads fail: each thread takes the
 * next number by creating `markerDir/<n>` (mkdir is atomic), and threads numbered below `faultyThreads` have the faults.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { runDecodeThread } from '../../../src/services/audio/threads/decode-thread';
import { WebmOpusDecoder } from '../../../src/services/audio/opus/webm-opus-decoder';

export interface ThreadFaults {
  exitAfterPushes?: number;
  hangAfterPushes?: number;
  firstThreadOnly?: Int32Array;
  startDelayMs?: number;
  /** With `markerDir`: the first this many threads started have the faults (their replacements are sound). */
  faultyThreads?: number;
  markerDir?: string;
}

/** This thread's number among the threads started with `dir` (0 for the first). */
function takeNumber(dir: string): number {
  for (let n = 0; ; n++) {
    try {
      mkdirSync(join(dir, String(n)));
      return n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

const fromEnv = process.env.FAULT_THREAD_OPTIONS;
const faults = (workerData ?? (fromEnv ? JSON.parse(fromEnv) : {})) as ThreadFaults;
// `firstThreadOnly` (shared between the threads): only the first thread started has the faults; its replacements are sound.
const faulty = faults.firstThreadOnly
  ? Atomics.add(faults.firstThreadOnly, 0, 1) === 0
  : faults.markerDir !== undefined
    ? takeNumber(faults.markerDir) < (faults.faultyThreads ?? Infinity)
    : true;
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

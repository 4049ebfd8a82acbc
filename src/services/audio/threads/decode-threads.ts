import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { silentLogger, type Logger } from '../../../util/logger';
import type { DecodeThreadMemory, DecodeThreadOutput, FromDecodeThread, ToDecodeThread } from './decode-thread-protocol';
import type { SyncPcmDecoderKind, SyncPcmDecoderOptions } from './sync-pcm-decoder';

/** What a stream on a decoding thread is told. */
export interface DecodeThreadClient {
  /** An answer to one of its `push`es or to its `finish`. */
  onOutput(out: DecodeThreadOutput): void;
  /** Its thread died or hung (it was terminated): nothing more will come. */
  onLost(reason: 'crashed' | 'hung'): void;
}

/** A stream opened on a decoding thread. */
export interface DecodeThreadHandle {
  /** Sends bytes (copied into the message: give an exact-size array, a view would copy its whole buffer). */
  push(bytes: Uint8Array): void;
  finish(): void;
  close(): void;
}

export interface DecodeThreadsOptions {
  /** Decoding threads at most (they start when first needed). */
  threads: number;
  logger?: Logger;
  /** A thread that has not answered its oldest message for this long is terminated as hung (ms). */
  hungMs?: number;
  /** The thread's entry file (default: decode-thread-entry beside this file). */
  entry?: string;
  /** Each thread's V8 old-generation limit (MB). */
  maxOldGenerationSizeMb?: number;
  /** Each thread's V8 young-generation size (MB; default DEFAULT_YOUNG_MB, see there). */
  maxYoungGenerationSizeMb?: number;
  /** Given to each thread's entry (`workerData`; tests use it to inject faults). */
  workerData?: unknown;
}

/** What the threads did, for `/metrics`, logs and tests. */
export interface DecodeThreadsStats {
  /** Threads running now. */
  running: number;
  /** Threads started since start (replacements included). */
  started: number;
  /** Threads that died or were terminated as hung. */
  lost: number;
  /** Streams open on them now. */
  streams: number;
}

const DEFAULT_HUNG_MS = 5000;
/**
 * A thread's young generation, MB (V8 raises it to its minimum semi-space). The thread runs little JS but allocates
 * ~100 KB of array buffers per chunk outside its heap (the message's copy of the chunk, libopus's output per packet,
 * the PCM answered); they are freed only when a collection finds them dead, and with V8's default young generation
 * the thread collected once per ~200 chunks, so tens of MB of dead buffers passed through glibc's arena of the
 * non-main threads at a time, and glibc kept the high-water mark (BENCHMARKS §4.5). A small young generation makes
 * the thread scavenge every ~50 chunks (4×: measured with bench/diagnose/thread-memory.ts).
 */
const DEFAULT_YOUNG_MB = 2;
/** A thread that has not started running its entry after this long (or twice `hungMs`) is dropped as hung. */
const START_DEADLINE_MS = 10_000;
/** Thread deaths within this window beyond which no new thread is started for a while (streams then decode in-process). */
const CRASH_WINDOW_MS = 60_000;
const MAX_CRASHES_PER_WINDOW = 5;

function defaultEntry(): string {
  return join(__dirname, __filename.endsWith('.ts') ? 'decode-thread-entry.ts' : 'decode-thread-entry.js');
}

class DecodeThread {
  readonly worker: Worker;
  readonly clients = new Map<number, DecodeThreadClient>();
  /** When each message still owed an answer was sent, oldest first. */
  readonly owed: number[] = [];
  readonly createdAt = performance.now();
  /** When the thread said it was ready (its start, seconds on a loaded machine, is not a hang). */
  onlineAt: number | undefined;
  gone = false;
  /** `memory` requests waiting for their answer. */
  readonly memoryAsks = new Map<number, (m: DecodeThreadMemory | undefined) => void>();

  constructor(entry: string, execArgv: string[], limits: ResourceLimits, workerData: unknown) {
    this.worker = new Worker(entry, { execArgv, workerData, resourceLimits: limits, stdout: false, stderr: false });
    this.worker.unref();
  }

  post(m: ToDecodeThread): void {
    if (this.gone) return;
    if (m.t === 'push' || m.t === 'finish') this.owed.push(performance.now());
    this.worker.postMessage(m);
  }
}

/**
 * A few worker threads that run synchronous decoders (`SyncPcmDecoder`) for the sessions' streams, so decoding
 * does not take the relaying thread's time. Each stream stays on the thread it was opened on (its decoder has state);
 * a new stream goes to the thread with the fewest. A thread that dies, or does not answer for `hungMs`, is dropped
 * (terminated) and its streams are told (`onLost`: their owner replays what was not decoded into a new stream);
 * the next stream starts a new thread. After repeated deaths `open` answers undefined for a while and the caller
 * decodes in-process.
 *
 * Buffers are copied between the threads, never transferred: a transferred ArrayBuffer is freed through the other
 * thread, and after a 10,000-session soak the server still counted 43 MB of array buffers after a full GC (0.15 MB
 * with copies). Each thread runs with a small young generation (DEFAULT_YOUNG_MB) so that its dead buffers are
 * collected as it goes (BENCHMARKS §4.5).
 */
export class DecodeThreads {
  private readonly log: Logger;
  private readonly threads: DecodeThread[] = [];
  private readonly entry: string;
  private readonly execArgv: string[];
  private readonly hungMs: number;
  private readonly maxOldMb: number;
  private nextId = 1;
  private closed = false;
  private readonly deaths: number[] = [];
  private readonly counts = { started: 0, lost: 0 };
  private watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DecodeThreadsOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'decode-threads' });
    this.entry = opts.entry ?? defaultEntry();
    this.execArgv = this.entry.endsWith('.ts') ? ['--require', require.resolve('tsx/cjs')] : [];
    this.hungMs = opts.hungMs ?? DEFAULT_HUNG_MS;
    this.maxOldMb = opts.maxOldGenerationSizeMb ?? 64;
  }

  /** Opens a stream of `kind` on a thread; undefined when threads are off, closed, not installed or dying repeatedly. */
  open(kind: SyncPcmDecoderKind, opts: SyncPcmDecoderOptions, client: DecodeThreadClient): DecodeThreadHandle | undefined {
    const thread = this.pick();
    if (!thread) return undefined;
    const id = this.nextId++;
    thread.clients.set(id, client);
    thread.post({ t: 'open', id, kind, primed: opts.primed });
    const forget = () => {
      thread.clients.delete(id);
    };
    return {
      push: (bytes) => thread.post({ t: 'push', id, bytes }),
      finish: () => thread.post({ t: 'finish', id }),
      close: () => {
        forget();
        thread.post({ t: 'close', id });
      },
    };
  }

  /**
   * Starts the threads now (up to `threads`), so that the first streams do not wait for a thread's start (tens of ms,
   * its entry and the wasm decoder compiled; more on a loaded machine). The factory calls it when it is created
   * (server start) and as each session opens (a lost thread is replaced before a stream needs it).
   */
  prestart(): void {
    if (this.closed) return;
    while (this.threads.length < this.opts.threads && this.start()) {
      // (start() adds it)
    }
  }

  stats(): DecodeThreadsStats {
    let streams = 0;
    for (const t of this.threads) streams += t.clients.size;
    return { running: this.threads.length, started: this.counts.started, lost: this.counts.lost, streams };
  }

  /**
   * Each running thread's own view of its memory (its isolate's heap, array buffers, collections), asked by message;
   * a thread that does not answer within `timeoutMs` is left out. For the bench's memory probes and diagnosis.
   */
  async memory(timeoutMs = 2000): Promise<DecodeThreadMemory[]> {
    const asks = this.threads.map(
      (t) =>
        new Promise<DecodeThreadMemory | undefined>((resolve) => {
          const req = this.nextId++;
          const timer = setTimeout(() => {
            t.memoryAsks.delete(req);
            resolve(undefined);
          }, timeoutMs);
          timer.unref();
          t.memoryAsks.set(req, (m) => {
            clearTimeout(timer);
            t.memoryAsks.delete(req);
            resolve(m);
          });
          t.post({ t: 'memory', req });
        }),
    );
    return (await Promise.all(asks)).filter((m): m is DecodeThreadMemory => m !== undefined);
  }

  /** Terminates every thread (their streams are told they were lost). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    const all = this.threads.splice(0);
    await Promise.all(all.map((t) => this.drop(t, 'crashed', false)));
  }

  private pick(): DecodeThread | undefined {
    if (this.closed || this.opts.threads <= 0) return undefined;
    let best: DecodeThread | undefined;
    for (const t of this.threads) if (!best || t.clients.size < best.clients.size) best = t;
    if (best && (best.clients.size === 0 || this.threads.length >= this.opts.threads)) return best;
    return this.start() ?? best;
  }

  private start(): DecodeThread | undefined {
    const now = performance.now();
    while (this.deaths.length && now - this.deaths[0]! > CRASH_WINDOW_MS) this.deaths.shift();
    if (this.deaths.length >= MAX_CRASHES_PER_WINDOW) return undefined;
    if (!existsSync(this.entry)) {
      this.log.error({ entry: this.entry }, 'the decoding thread entry is not installed beside the server; decoding in-process');
      this.deaths.push(now);
      return undefined;
    }
    let thread: DecodeThread;
    try {
      const limits: ResourceLimits = { maxOldGenerationSizeMb: this.maxOldMb, maxYoungGenerationSizeMb: this.opts.maxYoungGenerationSizeMb ?? DEFAULT_YOUNG_MB };
      thread = new DecodeThread(this.entry, this.execArgv, limits, this.opts.workerData);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not start a decoding thread');
      this.deaths.push(now);
      return undefined;
    }
    this.counts.started++;
    this.threads.push(thread);
    thread.worker.on('message', (m: FromDecodeThread) => {
      if (m.t === 'ready') {
        thread.onlineAt = performance.now();
        return;
      }
      if (m.t === 'memory') {
        thread.memoryAsks.get(m.req)?.(m.memory);
        return;
      }
      thread.owed.shift();
      thread.clients.get(m.id)?.onOutput(m);
    });
    thread.worker.on('error', (err) => this.log.error({ err: err.message }, 'a decoding thread failed'));
    thread.worker.once('exit', (code) => {
      if (thread.gone) return;
      this.log.error({ code }, 'a decoding thread exited');
      void this.drop(thread, 'crashed', true);
    });
    this.armWatchdog();
    return thread;
  }

  private armWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => {
      const now = performance.now();
      for (const t of [...this.threads]) {
        const oldest = t.owed[0];
        // Messages wait for a starting thread: they are owed from when it runs, and its start has its own deadline.
        const hung =
          t.onlineAt === undefined
            ? now - t.createdAt > Math.max(START_DEADLINE_MS, 2 * this.hungMs)
            : oldest !== undefined && now - Math.max(oldest, t.onlineAt) > this.hungMs;
        if (hung) {
          this.log.error({ hungMs: this.hungMs, owed: t.owed.length }, 'a decoding thread did not answer; terminating it');
          void this.drop(t, 'hung', true);
        }
      }
    }, Math.max(50, Math.min(1000, Math.floor(this.hungMs / 4))));
    this.watchdog.unref();
  }

  private async drop(thread: DecodeThread, reason: 'crashed' | 'hung', counted: boolean): Promise<void> {
    if (thread.gone) return;
    thread.gone = true;
    const i = this.threads.indexOf(thread);
    if (i >= 0) this.threads.splice(i, 1);
    if (counted) {
      this.counts.lost++;
      this.deaths.push(performance.now());
    }
    const clients = [...thread.clients.values()];
    thread.clients.clear();
    for (const answer of [...thread.memoryAsks.values()]) answer(undefined);
    for (const c of clients) {
      try {
        c.onLost(reason);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'a decoding stream threw on its thread loss');
      }
    }
    await thread.worker.terminate().catch(() => undefined);
  }
}

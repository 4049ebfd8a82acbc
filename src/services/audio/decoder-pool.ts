import { silentLogger, type Logger } from '../../util/logger';
import { FfmpegPcmStream } from './ffmpeg-stream';
import type { DecoderProcessLauncher } from './decoder-process';
import type { DecoderStartSink } from './decoder-starts';

/** The ffmpeg processes a pool starts and hands over; the decoder factory's counters see them through it. */
export interface PoolProcessCounters {
  /** A pooled process was spawned. */
  spawned(): void;
  /** A process that was handed over exited (a pooled one that exits unused is the pool's own business). */
  handedOverExited(): void;
  /** A pooled process was handed over (it now decodes for a session). */
  handedOver(): void;
}

export interface DecoderPoolOptions {
  ffmpegPath: string;
  /** ffmpeg input format and forced decoder of the pooled processes (the browsers' WebM/Opus). */
  inputFormat: string;
  codec: string;
  /** Ready processes kept (LIVE_AUDIO_DECODER_POOL_SIZE); 0 = no pool. */
  size: number;
  /** A ready process older than this is replaced (LIVE_AUDIO_DECODER_POOL_MAX_AGE_MS). */
  maxAgeMs: number;
  counters: PoolProcessCounters;
  logger?: Logger;
  /** Starts the processes off the main thread (see `FfmpegPcmStream`); without it they are spawned in-process. */
  launcher?: DecoderProcessLauncher;
  /** How far below the server's priority its processes run (see `FfmpegPcmStreamOptions.niceness`). */
  niceness?: number;
  /** Where the processes' starts are reported (path and duration, for `/metrics`). */
  starts?: DecoderStartSink;
  /** After a pooled process died unused, the next start waits this long, doubling up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Pool starts per second, over any time (a token bucket of `2 × size` starts, refilled at this rate; default
   * `4 × size`): however sessions come and go (each last close drains the pool, the next open fills it), the pool
   * never starts more. A take that finds nothing ready costs nothing extra: the session starts its own process.
   */
  maxSpawnsPerSecond?: number;
  /**
   * Starts are spread out and put where the event loop is quiet (see `StartPacing`): `child_process.spawn` blocks
   * Node's main thread until the child has called exec (tens of ms on a loaded machine), so a start must not land
   * in the turn right after a take, while the taken process's first audio is being relayed.
   */
  pacing?: Partial<StartPacing>;
  now?: () => number;
}

/**
 * When the pool starts a process: one start per timer, each `delayMs` after the reason for it (a take, a fill, a
 * start before it); when that timer fired more than `busyLateMs` late the loop is busy, and the start waits another
 * `delayMs`, up to `maxDeferMs` in all (then it starts anyway: a pool that never refills helps nobody).
 */
export interface StartPacing {
  delayMs: number;
  busyLateMs: number;
  maxDeferMs: number;
}

export const DEFAULT_START_PACING: StartPacing = { delayMs: 100, busyLateMs: 10, maxDeferMs: 2000 };

/** A pool's state, for metrics and tests. */
export interface DecoderPoolStats {
  /** Ready (spawned, unused) processes. */
  ready: number;
  /** Starts the pool wanted but its start budget refused (retried when the budget allows). */
  spawnsRefused: number;
  /** Processes started for the pool and not up yet. */
  starting: number;
  /** Processes the pool killed (age, no session open, shutdown) that have not exited yet. */
  retiring: number;
  /** Processes handed over to a session. */
  handedOver: number;
  /** Takes that found no ready process (the session started its own). */
  misses: number;
  /** Processes the pool started. */
  spawned: number;
  /** Ready processes that died unused, or were replaced for their age. */
  diedUnused: number;
  aged: number;
  /** Starts put off because the event loop was busy when they were due (`StartPacing`). */
  startsDeferred: number;
  /** Starts put off because the ffmpeg launcher was not ready (restarting). */
  waitedForLauncher: number;
}

interface Entry {
  stream: FfmpegPcmStream;
  bornAt: number;
  up: boolean;
  taken: boolean;
  /** Killed by the pool (age, drain): its end is no failure. */
  retired: boolean;
}

/** After the pool was drained (no session open), a new session's refill waits this long. */
export const REFILL_AFTER_DRAIN_MS = 1000;

/**
 * Warm decoder processes: a new recording never waits for an ffmpeg start (a fork and exec, dynamic loading,
 * fluent-ffmpeg's preparation: 10-200 ms of CPU, much more wall time on a loaded machine). The pool keeps `size`
 * ffmpeg processes started with the decoder's flags and no input, hands one over to a session starting a recording
 * (`take`), and starts its replacement in the background: later, on a quiet turn of the event loop, one start at a
 * time (`StartPacing`), because a start blocks the main thread until ffmpeg has called exec.
 *
 * Bounded: at most `size` processes are ready or starting, whatever the callers do: a take only replaces the process
 * it took, so an attacker opening recordings fast gets at most one replacement per recording, which the session
 * would have spawned anyway (its own restart budget bounds those). A process that dies unused is replaced after a
 * back-off that doubles while they keep dying (a broken ffmpeg never turns into a spawn loop); one older than
 * `maxAgeMs` is replaced. A start budget (token bucket) caps the pool's starts per second over any pattern of calls,
 * and a session opening within a second of the pool's drain waits for that second before the pool refills. The pool runs only while it is `active` (the factory: while a session is open), so an
 * idle server holds no ffmpeg at all; `close()` kills every ready process.
 */
export class DecoderPool {
  private readonly entries = new Set<Entry>();
  /** Killed by the pool and not gone yet. */
  private readonly retiring = new Set<Promise<void>>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private active = false;
  private closed = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  /** The next start's timer (at most one: starts are spread out). */
  private startTimer: NodeJS.Timeout | undefined;
  private readonly pacing: StartPacing;
  /** When the pool was last drained for want of sessions (a new session within `REFILL_AFTER_DRAIN_MS` waits). */
  private drainedAt = -Infinity;
  private readonly counts = { handedOver: 0, misses: 0, spawned: 0, diedUnused: 0, aged: 0, spawnsRefused: 0, startsDeferred: 0, waitedForLauncher: 0 };
  private tokens: number;
  private tokensAt: number;
  private readonly spawnRate: number;
  private readonly spawnBurst: number;

  constructor(private readonly o: DecoderPoolOptions) {
    this.log = (o.logger ?? silentLogger).child({ component: 'decoder-pool' });
    this.now = o.now ?? (() => performance.now());
    this.backoffMs = o.backoffMs ?? 1000;
    this.maxBackoffMs = o.maxBackoffMs ?? 60_000;
    this.spawnRate = o.maxSpawnsPerSecond ?? 4 * Math.max(1, o.size);
    this.spawnBurst = 2 * Math.max(1, o.size);
    this.tokens = this.spawnBurst;
    this.tokensAt = this.now();
    this.pacing = { ...DEFAULT_START_PACING, ...o.pacing };
  }

  get size(): number {
    return this.o.size;
  }

  stats(): DecoderPoolStats {
    let ready = 0;
    let starting = 0;
    for (const e of this.entries) {
      if (e.taken) continue;
      if (e.up) ready++;
      else starting++;
    }
    return { ready, starting, retiring: this.retiring.size, ...this.counts };
  }

  /**
   * Runs the pool (fills it) or stops it (kills the ready processes). The factory sets it while at least one
   * session is open.
   */
  setActive(active: boolean): void {
    if (this.closed || this.active === active) return;
    this.active = active;
    if (active) {
      // Sessions coming and going one at a time would drain and refill it each time: a refill waits a moment.
      const wait = this.drainedAt + REFILL_AFTER_DRAIN_MS - this.now();
      if (wait > 0) this.retryAfter(wait);
      else this.fill();
    } else {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.drainedAt = this.now();
      this.drain();
    }
  }

  /**
   * A ready process for a new WebM/Opus recording, or undefined (none ready: the caller starts its own). The caller
   * must `bind` it before writing. A replacement is started in the background.
   */
  take(): FfmpegPcmStream | undefined {
    if (this.closed || this.o.size <= 0) return undefined;
    const t = this.now();
    let found: Entry | undefined;
    for (const e of this.entries) {
      if (e.taken || !e.up) continue;
      if (!e.stream.usable || !e.stream.alive) continue;
      if (t - e.bornAt > this.o.maxAgeMs) continue; // the age sweep replaces it
      found = e;
      break;
    }
    if (!found) {
      this.counts.misses++;
      if (this.active) this.fill();
      return undefined;
    }
    found.taken = true;
    this.entries.delete(found);
    this.failures = 0; // it lived until it was needed: the back-off starts over
    this.counts.handedOver++;
    this.o.counters.handedOver();
    if (this.active) this.fill();
    return found.stream;
  }

  /** Kills every ready process and starts no more; resolves once they are all gone. */
  close(): Promise<void> {
    if (!this.closed) this.shut();
    return Promise.all([...this.retiring]).then(() => undefined);
  }

  private shut(): void {
    this.closed = true;
    this.active = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.ageTimer);
    this.retryTimer = undefined;
    this.ageTimer = undefined;
    this.drain();
  }

  private drain(): void {
    clearTimeout(this.startTimer);
    this.startTimer = undefined;
    for (const e of this.entries) this.retire(e);
    this.entries.clear();
    clearInterval(this.ageTimer);
    this.ageTimer = undefined;
  }

  /**
   * Starts processes until `size` are ready or starting (unless backing off after failures): one at a time, each
   * on a quiet turn of the event loop (`StartPacing`).
   */
  private fill(): void {
    if (!this.active || this.closed || this.retryTimer) return;
    if (this.pendingCount() < this.o.size) this.scheduleStart(this.pacing.delayMs);
    if (!this.ageTimer && this.o.maxAgeMs > 0) {
      const every = Math.max(1000, Math.min(60_000, Math.floor(this.o.maxAgeMs / 4)));
      this.ageTimer = setInterval(() => this.sweepAged(), every);
      this.ageTimer.unref?.();
    }
  }

  private pendingCount(): number {
    let pending = 0;
    for (const e of this.entries) if (!e.taken) pending++;
    return pending;
  }

  /** One start after `delayMs`, later while the loop is busy (at most `maxDeferMs` after the first try). */
  private scheduleStart(delayMs: number, deferredMs = 0): void {
    if (this.startTimer) return;
    const due = this.now() + delayMs;
    this.startTimer = setTimeout(() => {
      this.startTimer = undefined;
      if (!this.active || this.closed || this.retryTimer || this.pendingCount() >= this.o.size) return;
      const late = this.now() - due;
      const waited = deferredMs + delayMs + late;
      if (late > this.pacing.busyLateMs && waited < this.pacing.maxDeferMs) {
        this.counts.startsDeferred++;
        this.scheduleStart(this.pacing.delayMs, waited);
        return;
      }
      if (!this.takeToken()) {
        this.counts.spawnsRefused++;
        // Try again once a start is allowed (the retry timer also blocks other fills meanwhile).
        this.retryAfter(Math.ceil((1 - this.tokens) * (1000 / this.spawnRate)));
        return;
      }
      this.spawnOne();
      if (this.pendingCount() < this.o.size) this.scheduleStart(this.pacing.delayMs);
    }, Math.max(1, delayMs));
    this.startTimer.unref?.();
  }

  private takeToken(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.spawnBurst, this.tokens + ((t - this.tokensAt) / 1000) * this.spawnRate);
    this.tokensAt = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private spawnOne(): void {
    // A start is background work: while the launcher is down (restarting) it waits for it rather than fork the
    // server in-process; a session that finds the pool empty meanwhile starts its own.
    if (this.o.launcher && !this.o.launcher.available) {
      this.counts.waitedForLauncher++;
      this.retryAfter(this.backoffMs);
      return;
    }
    // eslint-disable-next-line prefer-const -- the stream's callbacks (created with it) read the entry
    let entry!: Entry;
    const counters = this.o.counters;
    const stream = new FfmpegPcmStream({
      ffmpegPath: this.o.ffmpegPath,
      inputFormat: this.o.inputFormat,
      codec: this.o.codec,
      launcher: this.o.launcher,
      niceness: this.o.niceness,
      starts: this.o.starts,
      logger: this.log,
      onPcm: () => undefined, // no input before it is bound: no output
      onFailure: () => undefined, // reported through `done` below while unbound; the owner's once bound
      onSpawn: () => {
        entry.up = true;
        this.counts.spawned++;
        counters.spawned();
      },
      onExit: () => {
        if (entry.taken) counters.handedOverExited();
      },
    });
    entry = { stream, bornAt: this.now(), up: false, taken: false, retired: false };
    this.entries.add(entry);
    void stream.done.then(() => this.onDone(entry));
  }

  private onDone(e: Entry): void {
    if (e.taken || e.retired) return; // a session's now, or killed by the pool
    this.entries.delete(e);
    if (this.closed || !this.active) return;
    // Died unused (crashed, killed from outside, could not start): replace it after a growing back-off.
    this.counts.diedUnused++;
    this.failures++;
    const wait = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.min(16, this.failures - 1));
    this.log.warn({ failures: this.failures, retryInMs: wait }, 'a pooled ffmpeg died unused; replacing it after a pause');
    this.retryAfter(wait);
  }

  /** Fills the pool after `ms` (no other fill meanwhile). */
  private retryAfter(ms: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fill();
    }, Math.max(1, ms));
    this.retryTimer.unref?.();
  }

  private retire(e: Entry): void {
    e.retired = true;
    e.stream.kill();
    const gone = e.stream.done;
    this.retiring.add(gone);
    void gone.then(() => this.retiring.delete(gone));
  }

  private sweepAged(): void {
    const t = this.now();
    let replaced = 0;
    for (const e of this.entries) {
      if (e.taken || t - e.bornAt <= this.o.maxAgeMs) continue;
      this.retire(e);
      this.entries.delete(e);
      this.counts.aged++;
      replaced++;
    }
    if (replaced) {
      // A process that lived its whole age was healthy: the back-off starts over.
      this.failures = 0;
      this.fill();
    }
  }
}

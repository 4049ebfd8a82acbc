/**
 * Shares the main thread's decoding time among in-process decoding streams. Each stream decodes in slices (a few
 * packets); a stream with work asks for a turn, and ready streams are served round-robin in one `setImmediate` per
 * event-loop iteration, at most `budgetMs` of slices per iteration: then the loop polls its sockets again (the relay's
 * frames, other sessions' requests) before decoding goes on. Without it, every stream's own `setImmediate` runs in
 * the same check phase: 30 sessions whose chunks arrive together would hold the loop for all 30 decodes at once.
 */
export interface DecodeTask {
  /** Decodes one slice; true when the task has more work ready now (it is then served again, after the others). */
  runSlice(): boolean;
}

export class DecodeScheduler {
  private readonly ready: DecodeTask[] = [];
  private readonly queued = new Set<DecodeTask>();
  private immediate: NodeJS.Immediate | undefined;
  /** Event-loop iterations that decoded (for tests and diagnostics). */
  iterations = 0;

  /** `budgetMs`: decoding time per event-loop iteration (at least one slice always runs). */
  constructor(private readonly budgetMs = 5) {}

  /** Asks for a turn (no-op when the task already waits for one). Never runs the task synchronously. */
  request(task: DecodeTask): void {
    if (this.queued.has(task)) return;
    this.queued.add(task);
    this.ready.push(task);
    this.immediate ??= setImmediate(() => this.run());
  }

  /** Forgets a task (it finished or was killed). */
  cancel(task: DecodeTask): void {
    if (!this.queued.delete(task)) return;
    const i = this.ready.indexOf(task);
    if (i >= 0) this.ready.splice(i, 1);
  }

  /** Tasks waiting for a turn. */
  get waiting(): number {
    return this.ready.length;
  }

  private run(): void {
    this.immediate = undefined;
    this.iterations++;
    const start = performance.now();
    do {
      const task = this.ready.shift();
      if (!task) break;
      this.queued.delete(task);
      let more = false;
      try {
        more = task.runSlice();
      } catch {
        more = false; // (a task reports its own failures; a throw must not stop the others)
      }
      if (more && !this.queued.has(task)) {
        this.queued.add(task);
        this.ready.push(task);
      }
    } while (this.ready.length && performance.now() - start < this.budgetMs);
    if (this.ready.length) this.immediate = setImmediate(() => this.run());
  }
}

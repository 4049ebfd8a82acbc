import * as fs from 'node:fs';

/** What a stat said about the file. */
export type FileStat = { exists: false } | { exists: true; mode: number; size: number };

/** The outcome of one check: unchanged since the last `changed`, changed (read it again), or a stat error. */
export type FileCheck =
  | { kind: 'unchanged' }
  | { kind: 'changed'; stat: FileStat }
  | { kind: 'error'; code: string | undefined };

export interface WatchedFileOptions {
  /** Minimum time between two throttled checks (`refresh`). Default 1000 ms; 0 checks every time. */
  intervalMs?: number;
  /** Clock for the throttle (tests). */
  now?: () => number;
}

/**
 * Notices when a file changes, by its stat signature (inode, size, mtime, ctime), for files the server re-reads
 * on change (the API key file, the profiles file). No `fs.watch`: callers check on use, throttled, so a
 * file replaced by an atomic rename, edited in place or deleted is seen within one interval, on every platform,
 * with no watcher handle to leak. A missing file is a state like any other (`exists: false`).
 *
 * A `changed` result is remembered as seen: the caller reads the file then, and if that fails it keeps its last
 * good data without being told again until the file changes once more.
 */
export class WatchedFile {
  private readonly intervalMs: number;
  private readonly now: () => number;
  private seen: string | null = null;
  private lastCheck = Number.NEGATIVE_INFINITY;
  private inflight: Promise<void> | null = null;

  constructor(
    readonly filePath: string,
    opts: WatchedFileOptions = {},
  ) {
    this.intervalMs = Math.max(0, opts.intervalMs ?? 1000);
    this.now = opts.now ?? Date.now;
  }

  /** Stats the file now (not throttled). `force` reports `changed` even when the signature is the one seen. */
  checkSync(force = false): FileCheck {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.filePath);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return { kind: 'error', code };
    }
    this.lastCheck = this.now();
    return this.compare(st, force);
  }

  /**
   * At most once per interval, stats the file without blocking and hands the outcome to `onCheck`. Concurrent
   * callers share the check in flight (and its one `onCheck` call).
   */
  refresh(onCheck: (c: FileCheck) => void): Promise<void> {
    if (this.inflight) return this.inflight;
    const t = this.now();
    if (t - this.lastCheck < this.intervalMs) return Promise.resolve();
    this.lastCheck = t;
    this.inflight = fs.promises
      .stat(this.filePath)
      .then(
        (st) => this.compare(st, false),
        (e: NodeJS.ErrnoException): FileCheck => (e.code === 'ENOENT' ? this.compare(undefined, false) : { kind: 'error', code: e.code }),
      )
      .then(onCheck)
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  private compare(st: fs.Stats | undefined, force: boolean): FileCheck {
    const sig = st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : 'missing';
    if (sig === this.seen && !force) return { kind: 'unchanged' };
    this.seen = sig;
    return { kind: 'changed', stat: st ? { exists: true, mode: st.mode, size: st.size } : { exists: false } };
  }
}

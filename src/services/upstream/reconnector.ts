import type { Logger } from '../../util/logger';
import { backoffDelay } from './backoff';
import type { ResilienceOptions, UpstreamFailure } from './resilience-types';
import {
  UpstreamConnectError,
  type UpstreamConnection,
  type UpstreamProvider,
  type UpstreamSessionConfig,
} from './upstream-types';

export interface ReconnectorDeps {
  provider: UpstreamProvider;
  config: UpstreamSessionConfig;
  opts: Pick<ResilienceOptions, 'backoffBaseMs' | 'backoffMaxMs' | 'reconnectBudgetMs' | 'random'>;
  log: Logger;
  /** The link was closed or failed for good: stop at the next step. */
  isOver: () => boolean;
  /** The handle to resume with (undefined: a fresh session). */
  resumptionHandle: () => string | undefined;
  /** The server refused the handle: forget it. */
  dropResumptionHandle: () => void;
  /**
   * A reconnect succeeded. `gapMs`: time since the reconnect began. `resumedWith`: the handle the server accepted,
   * or undefined when the connection is a fresh session (no handle yet, or the handle was refused).
   */
  connected: (conn: UpstreamConnection, gapMs: number, resumedWith: string | undefined) => void;
  /** The reconnect gave up (budget spent, or a fatal error). */
  failed: (failure: UpstreamFailure) => void;
}

/**
 * Gets the link its connections: the first one, and after a loss new ones, with backoff and full jitter within the
 * reconnect budget, each attempt abandoned when the budget runs out. `stop()` ends a wait or an attempt at once.
 */
export class Reconnector {
  private sleepTimer: NodeJS.Timeout | undefined;
  private sleepResolve: (() => void) | undefined;
  private pendingConnect: AbortController | undefined;

  constructor(private readonly deps: ReconnectorDeps) {}

  /** A connection attempt is under way. */
  get connecting(): boolean {
    return this.pendingConnect !== undefined;
  }

  /** The first connection (with a handle only for a session taken over from another instance). Rejects with `UpstreamConnectError`. */
  connectFirst(): Promise<UpstreamConnection> {
    return this.connect(this.deps.resumptionHandle());
  }

  /** Connects again until it works, the budget is spent, an error is fatal or the link is over. */
  async reconnect(backoffFirst: boolean): Promise<void> {
    const { opts, log } = this.deps;
    const started = Date.now();
    const deadline = started + opts.reconnectBudgetMs;
    let attempt = 0;
    let triedWithoutHandle = false;
    let retryNow = false;
    let lastError = 'no attempt made';
    for (;;) {
      if ((backoffFirst || attempt > 0) && !retryNow) {
        const delay = backoffDelay(attempt, opts.backoffBaseMs, opts.backoffMaxMs, opts.random);
        await this.sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
        if (this.deps.isOver()) return;
      }
      retryNow = false;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.deps.failed(this.budgetSpent(lastError));
        return;
      }
      const handle = this.deps.resumptionHandle();
      try {
        const conn = await this.connect(handle, remaining);
        if (this.deps.isOver()) {
          conn.close();
          return;
        }
        this.deps.connected(conn, Date.now() - started, handle);
        return;
      } catch (err) {
        if (this.deps.isOver()) return;
        const e = err instanceof UpstreamConnectError ? err : new UpstreamConnectError(String(err), false);
        if (e.fatal && e.closeCode === 1007 && handle && !triedWithoutHandle) {
          // The handle was refused (expired, or the session is past its limit): a fresh session loses the model's
          // memory of the conversation but keeps the user's session (and our turn state) alive. Tried once.
          log.warn({ reason: e.closeReason }, 'resumption handle refused; reconnecting without it');
          this.deps.dropResumptionHandle();
          triedWithoutHandle = true;
          retryNow = true;
          continue;
        }
        if (e.fatal) {
          this.deps.failed({ description: e.message, code: e.closeCode, reason: e.closeReason });
          return;
        }
        attempt++;
        // When the budget cuts an attempt short, the error worth reporting is the previous real one (e.g. HTTP 503).
        if (!(e instanceof BudgetExpiredError) || lastError === 'no attempt made') lastError = e.message;
        log.warn({ attempt, err: e.message }, 'upstream reconnect attempt failed');
        if (Date.now() >= deadline) {
          this.deps.failed(this.budgetSpent(lastError));
          return;
        }
      }
    }
  }

  /** Ends a backoff wait and abandons a pending attempt (the link is over). */
  stop(): void {
    clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    const wake = this.sleepResolve;
    this.sleepResolve = undefined;
    wake?.();
    this.pendingConnect?.abort(new UpstreamConnectError('the upstream link was closed', false));
    this.pendingConnect = undefined;
  }

  /** One connection attempt, abandoned (socket torn down) when the budget (`budgetMs`) runs out or the link is closed (`stop`). */
  private async connect(resumptionHandle: string | undefined, budgetMs?: number): Promise<UpstreamConnection> {
    const ac = new AbortController();
    this.pendingConnect = ac;
    const timer =
      budgetMs === undefined
        ? undefined
        : setTimeout(
            () => ac.abort(new BudgetExpiredError(`no connection within the reconnect budget of ${this.deps.opts.reconnectBudgetMs} ms`)),
            budgetMs,
          );
    try {
      return await this.deps.provider.connect({ ...this.deps.config, resumptionHandle }, { signal: ac.signal });
    } finally {
      clearTimeout(timer);
      if (this.pendingConnect === ac) this.pendingConnect = undefined;
    }
  }

  private budgetSpent(lastError: string): UpstreamFailure {
    return { description: `could not reconnect to Gemini within ${this.deps.opts.reconnectBudgetMs} ms (last error: ${lastError})` };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.sleepResolve = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = undefined;
        this.sleepResolve = undefined;
        resolve();
      }, ms);
    });
  }
}

/** The reconnect budget ran out while an attempt was still in flight. */
class BudgetExpiredError extends UpstreamConnectError {
  constructor(message: string) {
    super(message, false);
    this.name = 'BudgetExpiredError';
  }
}

import type { OutstandingToolCalls } from './tool-calls';
import type { Scenario } from './scenario';

/** Session progress that survives a reconnect through a resumption handle. */
export interface SessionState {
  /** Stable across resumed connections. */
  sessionId: string;
  /** The scenario in use; a different current scenario restarts the script. */
  scenario: Scenario | undefined;
  /** Next position in `scenario.turns`. */
  scenarioIndex: number;
  /** User turns so far in the session. */
  turnIndex: number;
  /** Tokens of the conversation so far: every turn re-reads them (prompt counts grow turn by turn). */
  contextTokens?: number;
  /** Audio received in the session (a model's per-session audio cap counts across resumed connections). */
  audioMs?: number;
  /**
   * Function calls the model waits on. A holder shared by every snapshot of the session (handles are shallow
   * copies), so a connection that resumes the session, from whichever handle, still expects their answers.
   */
  tools?: { outstanding: OutstandingToolCalls | undefined };
}

interface Entry {
  connId: string;
  state: SessionState;
  expiresAt: number; // Infinity while the issuing connection is open
}

/**
 * Resumption handles: `emu-<connId>-<n>` → a snapshot of the session state when the handle was issued.
 * Like the real service, a handle stays valid for `ttlMs` after the connection that issued it ends.
 */
export class ResumptionStore {
  private readonly entries = new Map<string, Entry>();
  private readonly issuedPerConn = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly clock: () => number,
    /** Beyond this many handles the oldest issued are forgotten (a long-running demo must not grow). */
    private readonly maxEntries = Infinity,
  ) {}

  /** Handles held (valid or not yet pruned). */
  get size(): number {
    return this.entries.size;
  }

  issue(connId: string, state: SessionState): string {
    this.prune();
    const n = (this.issuedPerConn.get(connId) ?? 0) + 1;
    this.issuedPerConn.set(connId, n);
    const handle = `emu-${connId}-${n}`;
    this.entries.set(handle, { connId, state: { ...state }, expiresAt: Infinity });
    // A Map iterates in insertion order: the first keys are the oldest handles.
    for (const old of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(old);
    }
    return handle;
  }

  /** A copy of the state behind `handle`, or undefined when the handle is unknown or expired. */
  lookup(handle: string): SessionState | undefined {
    const entry = this.entries.get(handle);
    if (!entry || entry.expiresAt <= this.clock()) return undefined;
    return { ...entry.state };
  }

  /** Starts the TTL of every handle issued by `connId`. */
  connectionClosed(connId: string): void {
    const expiresAt = this.clock() + this.ttlMs;
    for (const entry of this.entries.values()) if (entry.connId === connId) entry.expiresAt = expiresAt;
    this.issuedPerConn.delete(connId);
    this.prune();
  }

  private prune(): void {
    const now = this.clock();
    for (const [handle, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(handle);
  }
}

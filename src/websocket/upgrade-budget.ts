import type { IncomingMessage } from 'node:http';

/** An upgrade refused by the budget: answered with `status`, the REST error body and `Retry-After`. */
export interface UpgradeBudgetRefusal {
  status: number;
  code: string;
  message: string;
  retryAfterSec: number;
}

/**
 * The per-address budget of WebSocket upgrades from strangers. An upgrade whose credentials (headers or
 * `?token=`) check out never touches it; one without credentials is counted when it arrives and given back once
 * its auth message checks out; one with bad credentials stays counted. So valid keys are never locked out by
 * strangers sharing their address, and strangers get a bounded number of sockets.
 * Implementation: `wsUpgradeBudgetFrom` (src/services/limits/ws-upgrade-budget-adapter.ts) over the shared limits.
 */
export interface UpgradeBudget {
  /** Counts one upgrade from the request's address: a refusal when the address has none left. */
  take(req: IncomingMessage): UpgradeBudgetRefusal | undefined;
  /** Stops counting an upgrade taken for `req` (its credentials checked out). */
  giveBack(req: IncomingMessage): void;
}

import type { IncomingMessage } from 'node:http';
import type { Limits } from './limits';

/** A refused upgrade: 429 with the REST error body and `Retry-After`. */
export interface UpgradeRefusal {
  status: number;
  code: string;
  message: string;
  retryAfterSec: number;
}

/**
 * The per-IP budget of WebSocket upgrades whose credentials have not checked out (`ws_connects_ip`), as the
 * WebSocket endpoint's `UpgradeBudget` seam (src/websocket/upgrade-budget.ts) wants it.
 */
export function wsUpgradeBudgetFrom(limits: Limits, clientIp: (req: IncomingMessage) => string) {
  return {
    take(req: IncomingMessage): UpgradeRefusal | undefined {
      const d = limits.consume(clientIp(req), 'ws_connects_ip');
      return d.ok ? undefined : { status: 429, code: d.error.code, message: d.error.message, retryAfterSec: d.retryAfterSec };
    },
    giveBack(req: IncomingMessage): void {
      limits.release(clientIp(req), 'ws_connects_ip');
    },
  };
}

/**
 * The cost of a hand-over a client's resume asks of a live owner: one session start of the key, in the same
 * counter `POST /session/start` uses (a real MemoryLimitStore; the cluster's reconciled store is the same seam).
 */
import { sessionStartCharge } from '../../src/cluster/hand-over-budget';
import { rateLimitStoreKey } from '../../src/middleware/limit-store-for-rate-limit';
import type { Principal } from '../../src/services/auth/principal';
import { MemoryLimitStore } from '../../src/services/limits/limit-store';
import { isAppError } from '../../src/util/app-error';

const alice: Principal = { id: 'key:alice', userId: 'alice', username: 'alice', authMethod: 'api_key' };
const bob: Principal = { id: 'key:bob', userId: 'bob', username: 'bob', authMethod: 'api_key' };

it('counts in the session-start counter, refuses past the limit with 429 SESSION_START_RATE_LIMITED, per key', () => {
  const store = new MemoryLimitStore({ sweepIntervalMs: 0 });
  // Two REST starts already counted by express-rate-limit in the same key.
  store.increment(rateLimitStoreKey('session_starts', alice.id), 2, 60_000);
  const charge = sessionStartCharge(store, 3);
  charge(alice);
  let refused: unknown;
  try {
    charge(alice);
  } catch (err) {
    refused = err;
  }
  expect(isAppError(refused) && { status: refused.status, code: refused.code }).toEqual({ status: 429, code: 'SESSION_START_RATE_LIMITED' });
  expect(isAppError(refused) && refused.extra.retryAfterSec).toBeGreaterThanOrEqual(1);
  // The refused attempt is not counted; another key has its own budget.
  expect(store.get(rateLimitStoreKey('session_starts', alice.id))!.count).toBe(3);
  charge(bob);
  expect(store.get(rateLimitStoreKey('session_starts', bob.id))!.count).toBe(1);
  store.close();
});

it('a refund (the owner did not hand over) gives the start back, once', () => {
  const store = new MemoryLimitStore({ sweepIntervalMs: 0 });
  const charge = sessionStartCharge(store, 1);
  const refund = charge(alice);
  expect(() => charge(alice)).toThrow();
  refund();
  refund();
  expect(store.get(rateLimitStoreKey('session_starts', alice.id))!.count).toBe(0);
  charge(alice);
  expect(() => charge(alice)).toThrow();
  store.close();
});

it('0 is unlimited, as for starts', () => {
  const store = new MemoryLimitStore({ sweepIntervalMs: 0 });
  const charge = sessionStartCharge(store, 0);
  for (let i = 0; i < 100; i++) charge(alice);
  expect(store.get(rateLimitStoreKey('session_starts', alice.id))).toBeUndefined();
  store.close();
});

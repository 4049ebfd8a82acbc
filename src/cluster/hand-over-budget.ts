import { rateLimitStoreKey } from '../middleware/limit-store-for-rate-limit';
import type { Principal } from '../services/auth/principal';
import type { LimitStore } from '../services/limits/limit-store';
import { rateLimitError } from '../services/limits/limit-errors';

/**
 * What a hand-over a client's resume asks of a live owner costs: one session start of the owner's key, counted in
 * the same window as `POST /session/start` (`LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE`, one budget across the
 * instances), since it opens a new upstream connection. Over the budget it throws the same 429
 * (`SESSION_START_RATE_LIMITED`, `retryAfter`) and nothing is asked of the owner: a key holder ping-ponging
 * `resume` between instances reopens at most that many upstreams a minute. 0: unlimited, as for starts. Returns the
 * refund for a hand-over the owner did not make (a client resuming after `reconnect` in a redeploy costs nothing).
 */
export function sessionStartCharge(store: LimitStore, perMinute: number, windowMs = 60_000): (owner: Principal) => () => void {
  const none = () => undefined;
  return (owner) => {
    if (!(perMinute > 0)) return none;
    const key = rateLimitStoreKey('session_starts', owner.id);
    const w = store.increment(key, 1, windowMs);
    if (w.count <= perMinute) {
      let refunded = false;
      // The refund of a hand-over that did not happen (the owner was moving the session anyway).
      return () => {
        if (refunded) return;
        refunded = true;
        store.decrement(key, 1);
      };
    }
    store.decrement(key, 1);
    throw rateLimitError('session_starts', perMinute, Math.max(1, Math.ceil((w.resetAt - Date.now()) / 1000)));
  };
}

import { AppError } from '../util/app-error';

/**
 * Redis (the cluster's shared state) cannot answer right now: the caller answers 503 `CLUSTER_UNAVAILABLE` with
 * `Retry-After` instead of guessing (never a wrong answer, never a hang).
 */
export class ClusterUnavailableError extends AppError {
  constructor(retryAfterSec = 2, readonly reason = 'redis unavailable') {
    super(503, 'CLUSTER_UNAVAILABLE', 'The service is briefly unavailable; try again shortly', { retryAfterSec });
    this.name = 'ClusterUnavailableError';
  }
}

/** The instance owning a session could not be reached (or stopped answering) before its answer began. */
export class PeerUnavailableError extends AppError {
  constructor(
    readonly instanceId: string,
    readonly reason: string,
    retryAfterSec = 1,
  ) {
    super(503, 'CLUSTER_UNAVAILABLE', 'The service is briefly unavailable; try again shortly', { retryAfterSec });
    this.name = 'PeerUnavailableError';
  }
}

export const isClusterUnavailable = (e: unknown): e is ClusterUnavailableError | PeerUnavailableError =>
  e instanceof ClusterUnavailableError || e instanceof PeerUnavailableError;

/** The peer answered that the session left it while the call travelled (a hand-over): look the session up again. */
export class SessionMovedError extends Error {
  constructor(readonly instanceId: string) {
    super(`session moved away from ${instanceId}`);
    this.name = 'SessionMovedError';
  }
}

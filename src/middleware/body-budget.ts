import { AppError } from '../util/app-error';

export interface BodyBudgetLimits {
  /** Body bytes one user may have in flight at once (0 = no cap). */
  perUser: number;
  /** Body bytes in flight over all users (0 = no cap). */
  total: number;
}

export interface BodyReservation {
  /** Gives the bytes back; idempotent. */
  release(): void;
}

export const BodyBudgetErrors = {
  user: () =>
    new AppError(429, 'UPLOADS_IN_FLIGHT_LIMITED', 'Too much request data in flight for this user; wait for earlier requests to finish', {
      retryAfterSec: 1,
    }),
  total: () => new AppError(503, 'SERVER_BUSY', 'The server is receiving too much request data; try again shortly', { retryAfterSec: 1 }),
} as const;

/**
 * Caps the request body bytes held in memory at once, per user and in total, so that one key holder's parallel
 * or slow uploads cannot fill the process. A request reserves its body size (declared, or the route's cap when
 * the length is unknown) before anything is read, and releases it when its response is done. A user with nothing
 * in flight may always send one body of any size the route accepts.
 */
export class BodyBudget {
  private readonly byUser = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: BodyBudgetLimits) {}

  /** Bytes in flight for `user` (or in total). */
  inFlight(user?: string): number {
    return user === undefined ? this.total : (this.byUser.get(user) ?? 0);
  }

  reserve(user: string, bytes: number): BodyReservation | AppError {
    const mine = this.byUser.get(user) ?? 0;
    if (this.limits.perUser > 0 && mine > 0 && mine + bytes > this.limits.perUser) return BodyBudgetErrors.user();
    if (this.limits.total > 0 && this.total > 0 && this.total + bytes > this.limits.total) return BodyBudgetErrors.total();
    this.byUser.set(user, mine + bytes);
    this.total += bytes;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total -= bytes;
        const left = (this.byUser.get(user) ?? bytes) - bytes;
        if (left > 0) this.byUser.set(user, left);
        else this.byUser.delete(user);
      },
    };
  }
}

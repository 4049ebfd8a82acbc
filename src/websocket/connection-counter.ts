/**
 * Authenticated WebSocket connections per user. Each socket acquires at most one slot (on its one successful
 * authentication, whichever way) and releases it exactly once when it closes, so the counts cannot drift.
 */
export class ConnectionCounter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly maxPerUser: number) {}

  /** Takes a slot for `userKey`; false when the user is at the cap. */
  tryAcquire(userKey: string): boolean {
    const n = this.counts.get(userKey) ?? 0;
    if (n >= this.maxPerUser) return false;
    this.counts.set(userKey, n + 1);
    return true;
  }

  release(userKey: string): void {
    const n = (this.counts.get(userKey) ?? 0) - 1;
    if (n <= 0) this.counts.delete(userKey);
    else this.counts.set(userKey, n);
  }

  countFor(userKey: string): number {
    return this.counts.get(userKey) ?? 0;
  }

  get limit(): number {
    return this.maxPerUser;
  }
}

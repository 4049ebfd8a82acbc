import type { ResilienceOptions, UpstreamFailure } from './resilience-types';
import type { UpstreamCloseInfo } from './upstream-types';

/**
 * Bounds reconnect and rotation loops: counts connections that ended soon after connecting (dropped, or sent away
 * by goAway) and gives up after `quickFailureLimit` in a row. A connection that lived long enough resets the count.
 */
export class QuickFailureGuard {
  private inARow = 0;

  constructor(private readonly opts: Pick<ResilienceOptions, 'quickFailureMs' | 'quickFailureLimit'>) {}

  /** A connection ended after `livedMs` (`what`: how). Returns the failure when that was one quick failure too many. */
  check(livedMs: number, what: string, info?: UpstreamCloseInfo): UpstreamFailure | undefined {
    if (livedMs >= this.opts.quickFailureMs) {
      this.inARow = 0;
      return undefined;
    }
    this.inARow++;
    if (this.inARow < this.opts.quickFailureLimit) return undefined;
    return {
      description: `Gemini connection ended ${this.inARow} times in a row within ${this.opts.quickFailureMs} ms of connecting (last: ${what})`,
      code: info?.code,
      reason: info?.reason,
    };
  }
}

import { RedisStore, type RedisReply } from 'rate-limit-redis';
import type { ClientRateLimitInfo, IncrementResponse } from 'express-rate-limit';
import type { RedisConnection } from './redis-connection';

/**
 * express-rate-limit's request counters in Redis, through `rate-limit-redis` (its maintained store: an atomic Lua
 * increment with the window in PTTL, NOSCRIPT reloads after a Redis restart). Two things are added here:
 * - commands go through `RedisConnection.run`, so while Redis is down a request fails at once with
 *   `ClusterUnavailableError` (503 `CLUSTER_UNAVAILABLE`, `Retry-After`) instead of waiting;
 * - a script that could not be loaded (Redis down when the limiter was created) is loaded again on the next use;
 *   rate-limit-redis 6 would otherwise keep the failed load forever.
 */
export class ClusterRequestCounterStore extends RedisStore {
  constructor(connection: RedisConnection, name: string) {
    super({
      prefix: connection.key('rl', name) + ':',
      sendCommand: (command: string, ...args: string[]) => connection.run((c) => c.call(command, ...args) as Promise<RedisReply>),
    });
  }

  private static async settled(p: Promise<string> | undefined): Promise<boolean> {
    if (!p) return false;
    try {
      await p;
      return true;
    } catch {
      return false;
    }
  }

  override async increment(key: string): Promise<IncrementResponse> {
    if (!(await ClusterRequestCounterStore.settled(this.incrementScriptSha))) {
      this.incrementScriptSha = this.loadIncrementScript();
      this.incrementScriptSha.catch(() => undefined);
    }
    return super.increment(key);
  }

  override async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    if (!(await ClusterRequestCounterStore.settled(this.getScriptSha))) {
      this.getScriptSha = this.loadGetScript();
      this.getScriptSha.catch(() => undefined);
    }
    return super.get(key);
  }
}

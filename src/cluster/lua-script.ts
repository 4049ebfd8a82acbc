import { createHash } from 'node:crypto';
import type Redis from 'ioredis';

/**
 * A Lua script run with EVALSHA (its SHA-1 computed here), falling back to EVAL when Redis does not know it yet
 * (first use, or after a Redis restart emptied the script cache). Keys are always passed as KEYS so a script touches
 * only keys it declares.
 */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
    readonly numberOfKeys: number,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  private check(keys: readonly string[]): void {
    if (keys.length !== this.numberOfKeys) throw new Error(`${this.name}: expected ${this.numberOfKeys} keys, got ${keys.length}`);
  }

  /** Runs the script; string replies. */
  async run(client: Redis, keys: readonly string[], args: ReadonlyArray<string | number | Buffer>): Promise<unknown> {
    this.check(keys);
    try {
      return await client.evalsha(this.sha, this.numberOfKeys, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return client.eval(this.source, this.numberOfKeys, ...keys, ...args);
    }
  }

  /** Runs the script; bulk replies as Buffers (binary values such as a WebM header). */
  async runBuffer(client: Redis, keys: readonly string[], args: ReadonlyArray<string | number | Buffer>): Promise<unknown> {
    this.check(keys);
    try {
      return await client.callBuffer('EVALSHA', this.sha, this.numberOfKeys, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return client.callBuffer('EVAL', this.source, this.numberOfKeys, ...keys, ...args);
    }
  }
}

const isNoScript = (err: unknown): boolean => err instanceof Error && /^NOSCRIPT\b/.test(err.message);

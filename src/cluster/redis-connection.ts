import Redis from 'ioredis';
import type { Logger } from '../util/logger';
import { TypedEmitter } from '../util/typed-emitter';
import { ClusterUnavailableError } from './cluster-errors';

/**
 * `connected`: commands are served. `reconnecting`: the connection was lost moments ago and is being re-made
 * (calls fail fast meanwhile). `down`: never connected yet, lost for longer than `downAfterMs`, or closed.
 */
export type RedisState = 'connected' | 'reconnecting' | 'down';

export type RedisConnectionEvents = {
  state: (state: RedisState, previous: RedisState) => void;
};

export interface RedisReadiness {
  state: RedisState;
  /** When the current state began (epoch ms). */
  since: number;
  /** The last connection error, without credentials. */
  lastError?: string;
}

export interface RedisConnectionOptions {
  /** `redis://[:password@]host:port[/db]` or `rediss://…` (`REDIS_URL`). */
  url: string;
  /** Prepended to every key this service writes (default `live-audio:`), so one Redis can serve several. */
  keyPrefix?: string;
  /** Bound on one command, connected or not (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Bound on one connection attempt (default 2000 ms). */
  connectTimeoutMs?: number;
  /** A lost connection counts as `down` after this long without coming back (default 5000 ms). */
  downAfterMs?: number;
  /** Reconnect backoff, full jitter between 0 and min(max, base × 2^attempt) (defaults 100 ms, 2000 ms). */
  reconnectBackoffBaseMs?: number;
  reconnectBackoffMaxMs?: number;
  /** `Retry-After` of the 503 a caller answers while Redis cannot (default 2 s). */
  retryAfterSec?: number;
  /** Commands that time out in a row before the connection is dropped and re-made (default 2). */
  timeoutsBeforeReconnect?: number;
  /** Shown in `CLIENT LIST` (default `live-audio`). */
  connectionName?: string;
  logger?: Logger;
  /** Random source for the backoff jitter (tests). */
  random?: () => number;
}

/** Reply errors that mean "not now" (a restarting or overloaded Redis), not "your command is wrong". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|READONLY|CLUSTERDOWN)\b/;
/** What ioredis and the socket say when Redis cannot be reached or did not answer in time. */
const OUTAGE = /Connection is closed|Stream isn't writeable|timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|NOAUTH|WRONGPASS/;

/** An outage (→ 503), as opposed to a bug (a wrong command, a script error, our own exception). */
function isOutage(e: Error | undefined): boolean {
  if (!e || typeof e.message !== 'string') return false;
  if (e.name === 'ReplyError') return TRANSIENT_REPLY.test(e.message) || /^(NOAUTH|WRONGPASS)\b/.test(e.message);
  return e.name === 'MaxRetriesPerRequestError' || OUTAGE.test(e.message);
}

/**
 * The one Redis connection of an instance (ioredis): connects from `REDIS_URL`, reconnects forever with jittered
 * backoff, and reports its state as typed events for `/ready`. Commands never wait for a connection: the offline
 * queue is off, a command in flight when the connection drops fails instead of being re-sent (an INCR is never
 * applied twice), and every command is bounded by `commandTimeoutMs`. `run()` turns every such failure into
 * `ClusterUnavailableError` (503 `CLUSTER_UNAVAILABLE` + `Retry-After`); Redis reply errors (a bug) pass through.
 */
export class RedisConnection extends TypedEmitter<RedisConnectionEvents> {
  readonly client: Redis;
  readonly keyPrefix: string;
  private current: RedisState = 'down';
  private since = Date.now();
  private lastError: string | undefined;
  private downTimer: NodeJS.Timeout | undefined;
  private timeoutsInARow = 0;
  private closed = false;
  private readonly secret: string | undefined;
  private readonly o: Required<Omit<RedisConnectionOptions, 'logger' | 'keyPrefix' | 'url' | 'connectionName'>>;

  constructor(private readonly opts: RedisConnectionOptions) {
    super();
    const parsed = parseRedisUrl(opts.url);
    this.secret = parsed.password || undefined;
    this.keyPrefix = opts.keyPrefix ?? 'live-audio:';
    this.o = {
      commandTimeoutMs: opts.commandTimeoutMs ?? 1000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
      downAfterMs: opts.downAfterMs ?? 5000,
      reconnectBackoffBaseMs: opts.reconnectBackoffBaseMs ?? 100,
      reconnectBackoffMaxMs: opts.reconnectBackoffMaxMs ?? 2000,
      retryAfterSec: opts.retryAfterSec ?? 2,
      timeoutsBeforeReconnect: opts.timeoutsBeforeReconnect ?? 2,
      random: opts.random ?? Math.random,
    };
    this.client = new Redis(opts.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: this.o.commandTimeoutMs,
      connectTimeout: this.o.connectTimeoutMs,
      // How long a closing socket may linger before it is destroyed (ioredis keeps a timer for it).
      disconnectTimeout: 200,
      connectionName: opts.connectionName ?? 'live-audio',
      retryStrategy: (attempt: number) => {
        const cap = Math.min(this.o.reconnectBackoffMaxMs, this.o.reconnectBackoffBaseMs * 2 ** Math.min(attempt, 16));
        return Math.max(20, Math.round(cap * this.o.random()));
      },
    });
    this.client.on('ready', () => {
      this.timeoutsInARow = 0;
      this.lastError = undefined;
      this.setState('connected');
    });
    this.client.on('close', () => {
      if (this.closed) return;
      if (this.current === 'connected') {
        this.setState('reconnecting');
        clearTimeout(this.downTimer);
        this.downTimer = setTimeout(() => {
          if (this.current === 'reconnecting') this.setState('down');
        }, this.o.downAfterMs);
        this.downTimer.unref();
      }
    });
    this.client.on('end', () => this.setState('down'));
    this.client.on('error', (err: Error) => {
      this.lastError = this.scrub(err.message);
    });
  }

  get state(): RedisState {
    return this.current;
  }

  /** The URL without its password, for logs. */
  get safeUrl(): string {
    return describeRedisUrl(this.opts.url);
  }

  /** This service's key for `parts` (`<prefix>part:part`). */
  key(...parts: string[]): string {
    return this.keyPrefix + parts.join(':');
  }

  /** Starts connecting (and reconnecting, forever, until `close()`); never throws. */
  start(): void {
    if (this.closed || this.client.status !== 'wait') return;
    this.client.connect().catch((err: Error) => {
      this.lastError = this.scrub(err.message);
    });
  }

  /** Resolves true once connected, false after `timeoutMs`. */
  waitUntilConnected(timeoutMs: number): Promise<boolean> {
    if (this.current === 'connected') return Promise.resolve(true);
    return new Promise((resolve) => {
      const onState = (s: RedisState) => {
        if (s !== 'connected') return;
        clearTimeout(t);
        this.off('state', onState);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.off('state', onState);
        resolve(false);
      }, timeoutMs);
      this.on('state', onState);
    });
  }

  readiness(): RedisReadiness {
    return { state: this.current, since: this.since, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  /** The 503 a caller throws while Redis cannot answer. */
  unavailable(reason = `redis ${this.current}`): ClusterUnavailableError {
    return new ClusterUnavailableError(this.o.retryAfterSec, reason);
  }

  /**
   * Runs `fn` against the client when connected; fails at once (no network) when not. Connection loss and
   * timeouts become `ClusterUnavailableError`; anything else (a reply error from a wrong command or script, an
   * exception of `fn` itself) is rethrown as it is.
   */
  async run<T>(fn: (client: Redis) => Promise<T>): Promise<T> {
    if (this.closed || this.current !== 'connected') throw this.unavailable();
    try {
      const r = await fn(this.client);
      this.timeoutsInARow = 0;
      return r;
    } catch (err) {
      const e = err as Error;
      if (!isOutage(e)) throw err;
      if (/timed out/i.test(e?.message ?? '') && ++this.timeoutsInARow >= this.o.timeoutsBeforeReconnect && !this.closed) {
        // A hung Redis (or a half-open socket) keeps the state "connected": drop the socket so callers fail fast.
        this.timeoutsInARow = 0;
        this.lastError = 'commands timed out';
        this.client.disconnect(true);
      }
      throw this.unavailable(this.scrub(e?.message ?? 'redis error'));
    }
  }

  /** Closes the connection (QUIT, bounded by the command timeout, then a hard disconnect). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.downTimer);
    if (this.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, this.o.commandTimeoutMs)))]);
      clearTimeout(timer);
    }
    this.client.disconnect(false);
    this.setState('down');
  }

  private setState(next: RedisState): void {
    if (next === this.current) return;
    const prev = this.current;
    this.current = next;
    this.since = Date.now();
    if (next !== 'reconnecting') clearTimeout(this.downTimer);
    this.opts.logger?.[next === 'connected' ? 'info' : 'warn'](
      { component: 'redis', state: next, previous: prev, redis: this.safeUrl, ...(this.lastError ? { lastError: this.lastError } : {}) },
      `redis ${next}`,
    );
    this.emit('state', next, prev);
  }

  private scrub(text: string): string {
    return this.secret ? text.split(this.secret).join('***') : text;
  }
}

function parseRedisUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('REDIS_URL is not a URL (expected redis://host:port)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error('REDIS_URL must start with redis:// or rediss://');
  return u;
}

/** `redis://host:port/db` with any password replaced by `***`. */
export function describeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid REDIS_URL)';
  }
}

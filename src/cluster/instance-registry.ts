import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/logger';
import { TypedEmitter } from '../util/typed-emitter';
import { parseAdvertiseUrl } from './advertise-url';
import { LuaScript } from './lua-script';
import type { RedisConnection, RedisState } from './redis-connection';

/** One live instance of the service, as registered in Redis. */
export interface InstanceInfo {
  id: string;
  /** Origin other instances reach it on (`LIVE_AUDIO_ADVERTISE_URL`). */
  advertiseUrl: string;
  startedAt: number;
  /** Redis time of its last heartbeat (ms). */
  lastSeen: number;
}

/** An instance that stopped heartbeating (killed, lost) and has not been forgotten yet. */
export interface DeadInstance {
  id: string;
  lastSeen: number;
}

export type InstanceRegistryEvents = {
  /** A peer appeared (or came back). */
  peerUp: (peer: InstanceInfo) => void;
  /** A peer stopped heartbeating for `missedHeartbeats` intervals, or deregistered. */
  peerDown: (peer: InstanceInfo) => void;
  /** This instance's heartbeat was written after a time it was not (start, Redis back after an outage). */
  registered: (self: InstanceInfo) => void;
};

export interface InstanceRegistryOptions {
  connection: RedisConnection;
  advertiseUrl: string;
  /** Unique per process (default: random). */
  instanceId?: string;
  /** Heartbeat period (default 2000 ms). */
  heartbeatIntervalMs?: number;
  /** A peer is dead after this many periods without a heartbeat (default 3). */
  missedHeartbeats?: number;
  /** Dead peers are listed (for takeover bookkeeping) this long, then forgotten (default 10 min). */
  forgetAfterMs?: number;
  logger?: Logger;
}

/**
 * KEYS[1] = this instance's heartbeat key, KEYS[2] = the instances zset. ARGV = id, info JSON, ttl ms, forget ms.
 * Writes the heartbeat (a key that expires after `missed × interval`: liveness is Redis's own clock, so instances
 * with skewed clocks agree), scores the zset with Redis time, prunes long-dead members, returns all members.
 */
const BEAT = new LuaScript(
  'instance-heartbeat',
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
return now`,
  2,
);

/** KEYS[1] = heartbeat key, KEYS[2] = zset; ARGV[1] = id. Deregisters. */
const LEAVE = new LuaScript('instance-leave', `redis.call('DEL', KEYS[1])\nredis.call('ZREM', KEYS[2], ARGV[1])\nreturn 1`, 2);

const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * This instance's entry in the cluster: a heartbeat every interval (a TTL key + a zset scored by Redis time), the
 * live peers as of the last heartbeat (typed `peerUp`/`peerDown` events), and deregistration on a clean stop.
 * Redis losing its data (a restart without persistence) is healed by the next heartbeat, and at once when the
 * connection comes back.
 */
export class InstanceRegistry extends TypedEmitter<InstanceRegistryEvents> {
  readonly id: string;
  readonly advertiseUrl: string;
  readonly startedAt = Date.now();
  private readonly intervalMs: number;
  private readonly missed: number;
  private readonly forgetMs: number;
  private timer: NodeJS.Timeout | undefined;
  private live = new Map<string, InstanceInfo>();
  private dead: DeadInstance[] = [];
  private registeredNow = false;
  private beating: Promise<void> | undefined;
  private stopped = false;
  private readonly onState = (s: RedisState) => {
    if (s === 'connected') void this.beat();
    else this.registeredNow = false;
  };

  constructor(private readonly o: InstanceRegistryOptions) {
    super();
    this.id = o.instanceId ?? `i-${randomBytes(6).toString('hex')}`;
    if (!ID_PATTERN.test(this.id)) throw new Error('instance id must match [A-Za-z0-9_.-]{1,64}');
    this.advertiseUrl = parseAdvertiseUrl(o.advertiseUrl);
    this.intervalMs = o.heartbeatIntervalMs ?? 2000;
    this.missed = o.missedHeartbeats ?? 3;
    this.forgetMs = o.forgetAfterMs ?? 600_000;
  }

  /** How long without a heartbeat makes an instance dead (ms). */
  get deadAfterMs(): number {
    return this.intervalMs * this.missed;
  }

  /** The Redis key whose existence means "instance `id` is alive" (session takeover checks it atomically). */
  heartbeatKey(id: string): string {
    return this.o.connection.key('instance', id);
  }

  private get setKey(): string {
    return this.o.connection.key('instances');
  }

  /** Registers now (when Redis answers) and every interval from now on. */
  async start(): Promise<void> {
    this.stopped = false;
    this.o.connection.on('state', this.onState);
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops heartbeating and removes this instance's entry (a clean shutdown; peers see it leave at once). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.o.connection.off('state', this.onState);
    await this.beating;
    try {
      await this.o.connection.run((r) => LEAVE.run(r, [this.heartbeatKey(this.id), this.setKey], [this.id]));
    } catch (err) {
      this.o.logger?.warn({ err, component: 'instance-registry' }, 'could not deregister (Redis unavailable); the entry expires by itself');
    }
    this.live.clear();
  }

  /** Live peers (not this instance) as of the last heartbeat. */
  peers(): InstanceInfo[] {
    return [...this.live.values()];
  }

  /** Instances that stopped heartbeating and are not forgotten yet, as of the last heartbeat. */
  deadPeers(): DeadInstance[] {
    return [...this.dead];
  }

  /** True when this instance's heartbeat was written at the last attempt. */
  get registered(): boolean {
    return this.registeredNow;
  }

  /** Is `id` alive right now (its heartbeat key exists)? Throws ClusterUnavailableError when Redis cannot say. */
  async isAlive(id: string): Promise<boolean> {
    if (!ID_PATTERN.test(id)) return false;
    return (await this.o.connection.run((r) => r.exists(this.heartbeatKey(id)))) === 1;
  }

  /**
   * The advertise URL of live peer `id`, read from Redis now (never from a caller): the forwarder dials only
   * instances that are registered and alive. Undefined for this instance, unknown, dead or malformed entries.
   */
  async urlOf(id: string): Promise<string | undefined> {
    if (id === this.id || !ID_PATTERN.test(id)) return undefined;
    const raw = await this.o.connection.run((r) => r.get(this.heartbeatKey(id)));
    return parseEntry(id, raw, 0)?.advertiseUrl;
  }

  /** One heartbeat and a fresh view of the peers; failures (Redis down) keep the last view. */
  beat(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (!this.beating) {
      this.beating = this.beatOnce().finally(() => {
        this.beating = undefined;
      });
    }
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    const c = this.o.connection;
    const info = JSON.stringify({ id: this.id, advertiseUrl: this.advertiseUrl, startedAt: this.startedAt });
    let members: string[];
    let values: (string | null)[];
    try {
      await c.run((r) => BEAT.run(r, [this.heartbeatKey(this.id), this.setKey], [this.id, info, this.deadAfterMs, this.forgetMs]));
      members = await c.run((r) => r.zrange(this.setKey, '0', '-1', 'WITHSCORES'));
      const ids: string[] = [];
      for (let i = 0; i < members.length; i += 2) ids.push(members[i]);
      values = ids.length ? await c.run((r) => r.mget(...ids.map((id) => this.heartbeatKey(id)))) : [];
    } catch (err) {
      if (this.registeredNow) this.o.logger?.warn({ err, component: 'instance-registry' }, 'heartbeat failed');
      this.registeredNow = false;
      return;
    }
    if (this.stopped) return;
    if (!this.registeredNow) {
      this.registeredNow = true;
      this.emit('registered', { id: this.id, advertiseUrl: this.advertiseUrl, startedAt: this.startedAt, lastSeen: Date.now() });
    }
    const next = new Map<string, InstanceInfo>();
    const dead: DeadInstance[] = [];
    for (let i = 0, j = 0; i < members.length; i += 2, j++) {
      const id = members[i];
      const lastSeen = Number(members[i + 1]);
      if (id === this.id) continue;
      const entry = parseEntry(id, values[j], lastSeen);
      if (entry) next.set(id, entry);
      else if (values[j] === null) dead.push({ id, lastSeen });
    }
    const before = this.live;
    this.live = next;
    this.dead = dead;
    for (const [id, p] of next) if (!before.has(id)) this.emit('peerUp', p);
    for (const [id, p] of before) if (!next.has(id)) this.emit('peerDown', p);
  }
}

/** A registry value written by a peer; anything malformed (or with an odd URL) is not a peer. */
function parseEntry(id: string, raw: string | null, lastSeen: number): InstanceInfo | undefined {
  if (raw === null || !ID_PATTERN.test(id)) return undefined;
  try {
    const v = JSON.parse(raw) as { id?: unknown; advertiseUrl?: unknown; startedAt?: unknown };
    if (v.id !== id || typeof v.advertiseUrl !== 'string') return undefined;
    return { id, advertiseUrl: parseAdvertiseUrl(v.advertiseUrl), startedAt: Number(v.startedAt) || 0, lastSeen };
  } catch {
    return undefined;
  }
}

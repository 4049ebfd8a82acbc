import { randomBytes } from 'node:crypto';
import { RedisConnection, SessionRecordStore } from '../../src/cluster';
import { startGeminiLiveEmulator, type EmulatorOptions, type GeminiLiveEmulator } from '../../src/emulator';
import { generateApiKey } from '../../src/services/auth';
import { startNginx, type NginxLoadBalancer } from './nginx';
import { startRedis, type RedisServer } from './redis-server';
import { spawnServer, type SpawnedServer } from './spawned-server';
import { freePort } from './system-binary';
import { processAlive } from '../ops/helpers';
import { startReceiver } from '../webhook/receiver';

export interface ClusterInstance {
  /** `LIVE_AUDIO_INSTANCE_ID` */
  readonly id: string;
  readonly port: number;
  /** `LIVE_AUDIO_ADVERTISE_URL` */
  readonly advertiseUrl: string;
  readonly server: SpawnedServer;
}

export interface TestCluster {
  readonly redis: RedisServer;
  readonly emulator: GeminiLiveEmulator;
  /** `LIVE_AUDIO_CLUSTER_SECRET` shared by the instances. */
  readonly secret: string;
  /** API keys every instance accepts. */
  readonly keys: { alice: string; bob: string };
  readonly instances: ClusterInstance[];
  readonly nginx: NginxLoadBalancer | undefined;
  /** nginx's URL when there is one, else the first instance's. */
  readonly url: string;
  /** Starts one more instance on the same Redis and emulator (a replacement in a rolling deploy). */
  addInstance(): Promise<ClusterInstance>;
  /** Stops nginx, every instance (SIGTERM, SIGKILL after 5 s), the emulator and Redis; by PID. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Instances to start (default 3). */
  instances?: number;
  /** Put Debian's nginx in front, round-robin (default true). */
  nginx?: boolean;
  /** Extra environment for every instance. */
  env?: Record<string, string>;
  emulator?: EmulatorOptions;
}

/**
 * The cluster's real test topology: one real redis-server, one Gemini Live emulator, N real server processes
 * (`spawnServer`) sharing them, each on its own fixed port with its instance id, advertise URL and the cluster
 * secret, and optionally Debian's nginx in front from deploy/nginx/live-audio.conf.template (plain round-robin).
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const redis = await startRedis();
  const emulator = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'], ...opts.emulator });
  const secret = randomBytes(32).toString('hex');
  const keys = { alice: generateApiKey(), bob: generateApiKey() };
  const instances: ClusterInstance[] = [];
  let nginx: NginxLoadBalancer | undefined;
  let next = 1;

  const addInstance = async (): Promise<ClusterInstance> => {
    const id = `inst-${next++}`;
    const port = await freePort();
    const advertiseUrl = `http://127.0.0.1:${port}`;
    const server = await spawnServer({
      geminiBaseUrl: emulator.baseUrl,
      keys,
      env: {
        PORT: String(port),
        REDIS_URL: redis.url,
        LIVE_AUDIO_INSTANCE_ID: id,
        LIVE_AUDIO_ADVERTISE_URL: advertiseUrl,
        LIVE_AUDIO_CLUSTER_SECRET: secret,
        // nginx on loopback is the proxy whose X-Forwarded-For the instances may trust.
        TRUST_PROXY: 'loopback',
        ...opts.env,
      },
    });
    const inst = { id, port, advertiseUrl, server };
    instances.push(inst);
    return inst;
  };

  const stop = async () => {
    await nginx?.stop();
    await Promise.all(instances.map((i) => i.server.stop()));
    await emulator.stop();
    await redis.close();
  };

  try {
    // One at a time: several tsx start-ups at once on a 2-core machine only make each slower.
    for (let i = 0; i < (opts.instances ?? 3); i++) await addInstance();
    if (opts.nginx ?? true) nginx = await startNginx({ upstreamPorts: instances.map((i) => i.port) });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return {
    redis,
    emulator,
    secret,
    keys,
    instances,
    get nginx() {
      return nginx;
    },
    get url() {
      return nginx?.url ?? instances[0].server.url;
    },
    addInstance,
    stop,
  };
}

/**
 * Stops the whole topology (and any extra processes the test started beside it) and answers the pids still alive
 * afterwards: a test expects `[]`, so a leaked instance, nginx or redis-server fails it.
 */
export async function stopClusterLeavingNone(cluster: TestCluster, extraPids: readonly number[] = []): Promise<number[]> {
  const pids = [...cluster.instances.map((i) => i.server.pid), ...extraPids, ...(cluster.nginx ? [cluster.nginx.pid] : []), cluster.redis.pid];
  await cluster.stop();
  return pids.filter((pid) => processAlive(pid));
}

/** Heartbeats every 300 ms, dead after 3 missed: an instance's death is noticed within about a second. */
export const FAST_HEARTBEATS = { LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '300', LIVE_AUDIO_MISSED_HEARTBEATS: '3' } as const;

/** The test's own connection to the cluster's Redis and the session records read through it (as an operator would). */
export interface ClusterRecords {
  readonly redis: RedisConnection;
  readonly records: SessionRecordStore;
  close(): Promise<void>;
}

/** Connects to the cluster's Redis (waits up to 5 s) and opens the session records the instances keep there. */
export async function openClusterRecords(cluster: Pick<TestCluster, 'redis'>): Promise<ClusterRecords> {
  const redis = new RedisConnection({ url: cluster.redis.url });
  redis.start();
  try {
    await redis.waitUntilConnected(5000);
  } catch (err) {
    await redis.close();
    throw err;
  }
  const records = new SessionRecordStore({ connection: redis, liveness: { heartbeatKey: (id) => redis.key('instance', id) } });
  return { redis, records, close: () => redis.close() };
}

/** JSON request headers carrying one of the cluster's API keys. */
export function keyHeaders(cluster: Pick<TestCluster, 'keys'>): { alice: () => Record<string, string>; bob: () => Record<string, string> } {
  const json = { 'Content-Type': 'application/json' };
  return { alice: () => ({ ...json, 'X-API-Key': cluster.keys.alice }), bob: () => ({ ...json, 'X-API-Key': cluster.keys.bob }) };
}

/** The instance port nginx answered from, read from its `X-Upstream` header (the last address tried). */
export const upstreamPortOf = (upstream: string): number => Number(upstream.split(',').pop()!.trim().split(':').pop());

/**
 * Polls `f` (every 50 ms) until it answers something other than undefined, and returns that; after `ms`, fails
 * naming `what` (put the test's seed in it).
 */
export async function until<T>(f: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A cluster for one test file (see `clusterForFile`): the topology, and the test's own view of its records. */
export interface FileCluster {
  /** The file's cluster (its properties read the running topology: use them inside tests and hooks). */
  readonly cluster: TestCluster;
  readonly records: SessionRecordStore;
  readonly redis: RedisConnection;
}

/**
 * Starts the cluster before the file's tests (options, or a function answering them, e.g. once a webhook receiver
 * the instances need is listening), opens the test's view of its records, and after the tests closes both and
 * expects no process left (the topology's, nor `extraPids`). Call at the top level of a test file.
 */
export function clusterForFile(options: ClusterOptions | (() => Promise<ClusterOptions> | ClusterOptions), extraPids: () => readonly number[] = () => []): FileCluster {
  let started: TestCluster | undefined;
  let view: ClusterRecords | undefined;
  beforeAll(async () => {
    started = await startCluster(typeof options === 'function' ? await options() : options);
    view = await openClusterRecords(started);
  }, 180_000);
  afterAll(async () => {
    await view?.close();
    if (started) expect(await stopClusterLeavingNone(started, extraPids())).toEqual([]);
  });
  const need = (): TestCluster => {
    if (!started) throw new Error('the cluster is not started yet (use it inside a test or hook)');
    return started;
  };
  const cluster: TestCluster = {
    get redis() {
      return need().redis;
    },
    get emulator() {
      return need().emulator;
    },
    get secret() {
      return need().secret;
    },
    get keys() {
      return need().keys;
    },
    get instances() {
      return need().instances;
    },
    get nginx() {
      return need().nginx;
    },
    get url() {
      return need().url;
    },
    addInstance: () => need().addInstance(),
    stop: () => need().stop(),
  };
  return {
    cluster,
    get records() {
      need();
      return view!.records;
    },
    get redis() {
      need();
      return view!.redis;
    },
  };
}

export type WebhookReceiver = Awaited<ReturnType<typeof startReceiver>>;

/**
 * `clusterForFile` with a real webhook receiver (answering 204, verifying each signature with `secret`) started
 * first: every instance delivers its `session.ended` events there. The receiver stops after the file's tests.
 */
export function clusterWithWebhooksForFile(secret: string, options: ClusterOptions): FileCluster & { readonly receiver: WebhookReceiver } {
  let rx: WebhookReceiver | undefined;
  const file = clusterForFile(async () => {
    rx = await startReceiver(secret, (_n, _req, res) => res.writeHead(204).end());
    return { ...options, env: { ...options.env, LIVE_AUDIO_WEBHOOK_URL: rx.url, LIVE_AUDIO_WEBHOOK_SECRET: secret } };
  });
  afterAll(() => rx?.stop());
  return {
    cluster: file.cluster,
    get records() {
      return file.records;
    },
    get redis() {
      return file.redis;
    },
    get receiver() {
      if (!rx) throw new Error('the webhook receiver is not started yet');
      return rx;
    },
  };
}

/** The verified `session.ended` deliveries the receiver got for `sessionId`, parsed, in arrival order. */
export function sessionEndedOf<E extends { data: { session_id: string } }>(rx: WebhookReceiver, sessionId: string): E[] {
  return rx.received
    .filter((r) => r.verified)
    .map((r) => JSON.parse(r.body) as E)
    .filter((e) => e.data.session_id === sessionId);
}

import { randomBytes } from 'node:crypto';
import { startGeminiLiveEmulator, type EmulatorOptions, type GeminiLiveEmulator } from '../../src/emulator';
import { generateApiKey } from '../../src/services/auth';
import { startNginx, type NginxLoadBalancer } from './nginx';
import { startRedis, type RedisServer } from './redis-server';
import { spawnServer, type SpawnedServer } from './spawned-server';
import { freePort } from './system-binary';
import { processAlive } from '../ops/helpers';

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

import { START_ENV, START_NODE_FLAGS } from '../../src/config/process-flags';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { generateApiKey } from '../../src/services/auth';

const ROOT = path.resolve(__dirname, '../..');

export interface SpawnedServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** API keys configured for the process (name → key). */
  readonly keys: { alice: string; bob: string };
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** The process's JSON log lines so far. */
  logLines(): Array<Record<string, unknown>>;
  /** Resident set size of the server process, bytes (Linux /proc). */
  rss(): number;
  /** Resolves with the exit once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone; removes its temp folder. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnServerOptions {
  /** Where the server's upstream lives (an emulator's `baseUrl`); default: the in-process demo emulator. */
  geminiBaseUrl?: string;
  /** Extra environment (wins over the defaults). */
  env?: Record<string, string>;
  /** Give up when the server has not said it listens within this long (default 30 s). */
  startTimeoutMs?: number;
  /** `node` flags before the script (default: `--import tsx`). */
  nodeArgs?: string[];
  /** The two API keys (default: fresh ones); several instances of one cluster share theirs. */
  keys?: { alice: string; bob: string };
}

/** Resident set size of any process, bytes (0 when it is gone). */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Starts `backend-server.ts` as a real child process on a free loopback port, with two API keys and its own
 * key file in a temp folder, and waits until it logs that it listens. Pass `geminiBaseUrl` for an external emulator.
 */
export async function spawnServer(opts: SpawnServerOptions = {}): Promise<SpawnedServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-spawned-'));
  const keys = opts.keys ?? { alice: generateApiKey(), bob: generateApiKey() };
  const upstream: Record<string, string> = opts.geminiBaseUrl
    ? { GEMINI_API_KEY: 'test-gemini-key', GEMINI_BASE_URL: opts.geminiBaseUrl }
    : {};
  // Started as `npm start` starts it: its allocator environment and node flags (src/config/process-flags.ts) first.
  const child = spawn(process.execPath, [...START_NODE_FLAGS, ...(opts.nodeArgs ?? ['--import', 'tsx']), 'backend-server.ts'], {
    cwd: ROOT,
    env: {
      ...START_ENV,
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      PORT: '0',
      LIVE_AUDIO_API_KEYS: `alice:${keys.alice},bob:${keys.bob}`,
      LIVE_AUDIO_API_KEYS_FILE: path.join(dir, 'keys.json'),
      ...upstream,
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  let port = 0;
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  while (!port && Date.now() < deadline && child.exitCode === null) {
    const m = /"port":(\d+)[^\n]*listening on/.exec(out);
    if (m) port = Number(m[1]);
    else await new Promise((r) => setTimeout(r, 50));
  }
  if (!port) {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`server did not start:\n${out.slice(-4000)}`);
  }
  const pid = child.pid!;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid,
    child,
    keys,
    output: () => out,
    logLines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    rss: () => rssOf(pid),
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One `GET path` with a fresh connection; resolves with the status and how long it took (ms), or `timeout`. */
export function timedGet(url: string, timeoutMs = 5000): Promise<{ status: number | 'timeout' | 'error'; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ status: 'timeout', ms: performance.now() - t0 });
    });
    req.on('error', () => resolve({ status: 'error', ms: performance.now() - t0 }));
  });
}

export interface HealthProbe {
  /** Stops probing; resolves with every latency seen (ms) and the worst one. */
  stop(): Promise<{ samples: number[]; maxMs: number; p99Ms: number; failures: number }>;
}

/**
 * Probes `GET <url>/health` back to back (one at a time, `intervalMs` apart) while an attack runs: the latency of
 * a tiny request on a fresh connection is the server's event-loop delay as a client feels it.
 */
export function probeHealth(url: string, intervalMs = 50): HealthProbe {
  const samples: number[] = [];
  let failures = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await timedGet(`${url}/health`, 10_000);
      if (r.status === 200) samples.push(r.ms);
      else {
        failures++;
        samples.push(r.ms);
      }
      await new Promise((res) => setTimeout(res, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const sorted = [...samples].sort((a, b) => a - b);
      return {
        samples,
        maxMs: sorted.length ? sorted[sorted.length - 1] : 0,
        p99Ms: sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] : 0,
        failures,
      };
    },
  };
}

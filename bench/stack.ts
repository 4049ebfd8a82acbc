/**
 * The system under test, as child processes of the bench: the real server (`backend-server.ts`, bundled by esbuild
 * into plain JavaScript so no TypeScript loader runs inside it) pointed at the Gemini Live emulator in a process of
 * its own. Each gets a clean environment; the server's limits are raised for the bench user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { START_ENV, START_NODE_FLAGS } from '../src/config/process-flags';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { generateApiKey } from '../src/services/auth/api-key';
import { ffmpegPath } from './fixture';
import type { EmulatorHostPlan } from './emulator-host';
import { httpGet } from './prom';

export const REPO_ROOT = path.resolve(__dirname, '..');
/**
 * Under node_modules so that the bundles resolve their (external) packages from the repository; one folder per
 * checkout: worktrees that share one node_modules (a symlink) would otherwise overwrite each other's bundles while
 * their benches run (a server then starts another branch's code, or a half-written file).
 */
export const BUILD_DIR = path.join(
  REPO_ROOT,
  'node_modules',
  '.cache',
  `live-audio-bench-${createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12)}`,
);

export interface Bundles {
  server: string;
  emulatorHost: string;
  naiveWorker: string;
  /** The ffmpeg launcher's entry, beside server.js: the server forks it by that name next to its own file. */
  'launcher-entry': string;
  /** The decoding threads' entry, beside server.js for the same reason (LIVE_AUDIO_DECODE_THREADS). */
  'decode-thread-entry': string;
}

/** Bundles the entry points the bench runs as child processes (esbuild, ~1 s). */
export async function buildBundles(): Promise<Bundles> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved at run time (an optional or CommonJS-only module)
  const esbuild = require('esbuild') as typeof import('esbuild');
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  const entries = {
    server: path.join(REPO_ROOT, 'backend-server.ts'),
    emulatorHost: path.join(REPO_ROOT, 'bench', 'emulator-host.ts'),
    naiveWorker: path.join(REPO_ROOT, 'bench', 'naive', 'worker.ts'),
    'launcher-entry': path.join(REPO_ROOT, 'src', 'services', 'audio', 'launcher', 'launcher-entry.ts'),
    'decode-thread-entry': path.join(REPO_ROOT, 'src', 'services', 'audio', 'threads', 'decode-thread-entry.ts'),
  };
  const out = {} as Bundles;
  await Promise.all(
    (Object.keys(entries) as (keyof Bundles)[]).map(async (k) => {
      const outfile = path.join(BUILD_DIR, `${k}.js`);
      await esbuild.build({
        entryPoints: [entries[k]],
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        packages: 'external',
        sourcemap: true,
        outfile,
        logLevel: 'error',
      });
      out[k] = outfile;
    }),
  );
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A child process whose output is kept (last lines) for error messages. */
export class Child {
  readonly proc: ChildProcess;
  private readonly tail: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    cmd: string,
    args: string[],
    opts: { env: NodeJS.ProcessEnv; cwd: string; onStdoutLine?: (line: string) => void },
  ) {
    this.proc = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code) => {
        liveChildren.delete(this.proc);
        resolve(code);
      });
      this.proc.once('error', (err) => {
        this.keep(`spawn error: ${err.message}`);
        liveChildren.delete(this.proc);
        resolve(null);
      });
    });
    const lines = (stream: NodeJS.ReadableStream | null, onLine?: (l: string) => void) => {
      let buf = '';
      stream?.setEncoding?.('utf8');
      stream?.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.keep(line);
          onLine?.(line);
        }
      });
    };
    lines(this.proc.stdout, opts.onStdoutLine);
    lines(this.proc.stderr);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  private keep(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
  }

  output(): string {
    return this.tail.join('\n');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Children still running, killed if the bench exits abruptly. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL');
  });
}

export interface StackOptions {
  bundles: Bundles;
  plan: EmulatorHostPlan;
  /** Extra server environment (overrides). */
  serverEnv?: Record<string, string>;
  /** `node` flags for the server, e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  serverNodeArgs?: string[];
}

export interface Stack {
  baseUrl: string;
  wsUrl: string;
  apiKey: string;
  server: Child;
  emulator: Child;
  emulatorControlUrl: string;
  /** The emulator's Gemini endpoint (more server instances point there too: `--instances`). */
  geminiBaseUrl: string;
  workDir: string;
  stop(): Promise<void>;
}

function baseEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ'];
  const env: NodeJS.ProcessEnv = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

const BIG = '1000000000';

/** Every per-user and per-IP limit raised (session counts, whose minimum is 1) or off (`0`, the rate limits). */
export const BENCH_LIMITS_ENV: Record<string, string> = {
  LIVE_AUDIO_MAX_SESSIONS_PER_USER: BIG,
  LIVE_AUDIO_MAX_CONCURRENT_SESSIONS: BIG,
  LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: BIG,
  LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: BIG,
  LIVE_AUDIO_MAX_AUDIO_BYTES_PER_MINUTE: String(Number.MAX_SAFE_INTEGER),
  // Every load-generator connection comes from 127.0.0.1.
  LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP: '0',
};

/** The server's settings for a benchmark: production mode, quiet logs, every per-user limit raised or off. */
export function benchServerEnv(o: { port: number; apiKey: string; keysFile: string; geminiBaseUrl: string }): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(o.port),
    LOG_LEVEL: 'warn',
    LOG_PRETTY: 'false',
    GEMINI_API_KEY: 'bench-upstream-key',
    GEMINI_BASE_URL: o.geminiBaseUrl,
    GEMINI_SETUP_TIMEOUT_MS: '60000',
    LIVE_AUDIO_EMULATOR: 'off',
    LIVE_AUDIO_API_KEYS: `bench:${o.apiKey}`,
    LIVE_AUDIO_API_KEYS_FILE: o.keysFile,
    FFMPEG_PATH: ffmpegPath(),
    ...BENCH_LIMITS_ENV,
    LIVE_AUDIO_DRAIN_MS: '0',
    // What `npm start` and the Docker image set (the allocator setting the memory figures rely on).
    ...START_ENV,
    // The benchmark scrapes /metrics on loopback without a token.
    METRICS_PUBLIC: 'true',
  };
}

/** Starts the emulator host and the server; resolves once the server answers `/ready`. */
export async function startStack(o: StackOptions): Promise<Stack> {
  installExitHook();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-bench-'));
  const planFile = path.join(workDir, 'plan.json');
  fs.writeFileSync(planFile, JSON.stringify(o.plan));

  let hostLine: ((l: string) => void) | undefined;
  const hostReady = new Promise<{ baseUrl: string; controlUrl: string }>((resolve) => {
    hostLine = (l) => {
      if (l.startsWith('{')) resolve(JSON.parse(l));
    };
  });
  const emulator = new Child('emulator', process.execPath, [o.bundles.emulatorHost, planFile], {
    env: baseEnv(),
    cwd: workDir,
    onStdoutLine: (l) => hostLine?.(l),
  });
  const host = await Promise.race([
    hostReady,
    emulator.exited.then(() => {
      throw new Error(`emulator host exited:\n${emulator.output()}`);
    }),
    delay(20_000).then(() => {
      throw new Error(`emulator host did not start:\n${emulator.output()}`);
    }),
  ]);

  const apiKey = generateApiKey();
  const port = await freePort();
  const env = {
    ...baseEnv(),
    ...benchServerEnv({ port, apiKey, keysFile: path.join(workDir, 'keys.json'), geminiBaseUrl: host.baseUrl }),
    ...o.serverEnv,
  };
  // cwd = the work dir: no repository `.env` is loaded into the server.
  // The node flags of `npm start` and the Docker image first: a flag given again later (serverNodeArgs) wins.
  const server = new Child('server', process.execPath, [...START_NODE_FLAGS, ...(o.serverNodeArgs ?? []), o.bundles.server], { env, cwd: workDir });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.proc.exitCode !== null) {
      await emulator.stop();
      throw new Error(`server exited (${server.proc.exitCode}):\n${server.output()}`);
    }
    try {
      const r = await httpGet(`${baseUrl}/ready`, 2_000);
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      await emulator.stop();
      throw new Error(`server did not become ready:\n${server.output()}`);
    }
    await delay(100);
  }

  return {
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws/live-audio`,
    apiKey,
    server,
    emulator,
    emulatorControlUrl: host.controlUrl,
    geminiBaseUrl: host.baseUrl,
    workDir,
    async stop() {
      await server.stop();
      await emulator.stop();
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

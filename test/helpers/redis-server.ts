import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, requireBinary, waitForPort } from './system-binary';

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** PID of the current redis-server process (changes on restart). */
  readonly pid: number;
  /** What the current process printed. */
  output(): string;
  /** SIGTERM (then SIGKILL after 5 s) by PID; resolves when the process is gone. Idempotent. */
  stop(): Promise<void>;
  /** Stops it and starts a fresh, empty redis-server on the same port (no persistence: the data is gone). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that accepts nothing and answers nothing (a hung server, not a closed port). */
  pause(): void;
  resume(): void;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

/**
 * Starts Debian's `redis-server` as a child process on a free loopback port: no RDB snapshots, no AOF, its own
 * working folder in a temp dir, logging to stdout; stopped by its PID only.
 */
export async function startRedis(opts: { port?: number; /** Extra redis-server arguments, e.g. ['--requirepass', 'x']. */ args?: string[] } = {}): Promise<RedisServer> {
  const bin = requireBinary('redis-server', 'redis-server');
  const port = opts.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-redis-'));
  let child: ChildProcess | undefined;
  let out = '';

  const launch = async (): Promise<void> => {
    out = '';
    const c = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no', '--logfile', '', '--loglevel', 'notice', ...(opts.args ?? [])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child = c;
    try {
      await waitForPort(port, 10_000, 'redis-server', () => c.exitCode === null && c.signalCode === null);
    } catch (err) {
      c.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${out.slice(-2000)}`);
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid ?? 0;
    },
    output: () => out,
    stop,
    async restart() {
      await stop();
      await launch();
    },
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async close() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A redis-server for one test file, and what to undo after each of its tests. */
export interface FileRedis {
  /** The file's server (started before its first test). */
  readonly server: RedisServer;
  /** Runs each `undo` after the current test (the last added first). */
  cleanup(...undo: Array<() => Promise<void> | void>): void;
}

/**
 * Starts a redis-server before the file's tests and closes it after them, and runs each test's cleanups after it.
 * Call at the top level of a test file.
 */
export function redisForFile(): FileRedis {
  let server: RedisServer | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.close();
  });
  afterEach(async () => {
    for (const undo of cleanups.splice(0).reverse()) await undo();
  });
  return {
    get server() {
      if (!server) throw new Error('redis-server is not started yet (use it inside a test or hook)');
      return server;
    },
    cleanup: (...undo) => void cleanups.push(...undo),
  };
}

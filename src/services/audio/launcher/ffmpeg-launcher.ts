import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../../util/logger';
import type { DecoderProcessLauncher, LaunchHandlers, RunningDecoderProcess } from '../decoder-process';
import { HEADER_BYTES, TOKEN_BYTES, type FromLauncher, type ToLauncher } from './launcher-protocol';

export interface FfmpegLauncherOptions {
  logger?: Logger;
  /** After the launcher died, the next one starts after this long, doubling while they keep dying (ms). */
  restartBackoffMs?: number;
  maxRestartBackoffMs?: number;
  /** A connection to the private socket must send its header within this long (ms). */
  handshakeTimeoutMs?: number;
  /** Connections waiting for their header at once; beyond it the oldest is dropped. */
  maxPendingHandshakes?: number;
  /** The launcher must say it is ready within this long (ms), else it is killed and started again. */
  readyTimeoutMs?: number;
}

/** What the launcher did, for logs, tests and the bench. */
export interface FfmpegLauncherStats {
  ready: boolean;
  pid: number | undefined;
  /** Launchers started (the first one included). */
  launchersStarted: number;
  /** Decoder processes started through the launcher. */
  launched: number;
  /** Starts refused because no launcher was ready (the caller spawned in-process). */
  refused: number;
  /** Connections to the private socket dropped without a valid header (wrong token, unknown id, silence). */
  connectionsRejected: number;
  /** Decoder processes running or starting through the launcher now. */
  inFlight: number;
}

const DEFAULTS = { restartBackoffMs: 200, maxRestartBackoffMs: 10_000, handshakeTimeoutMs: 5_000, maxPendingHandshakes: 64, readyTimeoutMs: 20_000 };
/** A launcher that lived this long before dying was healthy: the restart back-off starts over. */
const HEALTHY_LIFETIME_MS = 30_000;
/** The launcher's V8 heap: it holds a few maps of small objects. */
const LAUNCHER_HEAP_MB = 32;

/** The launcher's entry, beside this file (compiled: dist/…/launcher; bundled: the bundle's folder holds it too). */
function launcherEntry(): string {
  return join(__dirname, __filename.endsWith('.ts') ? 'launcher-entry.ts' : 'launcher-entry.js');
}

/** One decoder process asked of the launcher. */
class LaunchedProcess implements RunningDecoderProcess {
  pid = 0;
  socket: Socket | undefined;
  private started = false;
  private exited = false;
  private ended = false;
  private readonly exitCallbacks: Array<() => void> = [];

  constructor(
    readonly id: number,
    readonly generation: number,
    private readonly handlers: LaunchHandlers,
    private readonly sendKill: (p: LaunchedProcess) => void,
    private readonly forget: (p: LaunchedProcess) => void,
  ) {}

  get isEnded(): boolean {
    return this.ended;
  }

  get hasExited(): boolean {
    return this.exited;
  }

  stdinBuffered(): number {
    return this.socket?.writableLength ?? 0;
  }

  onStdinDrain(cb: () => void): void {
    this.socket?.on('drain', cb);
  }

  onExit(cb: () => void): void {
    if (this.exited) cb();
    else this.exitCallbacks.push(cb);
  }

  kill(): void {
    if (!this.exited && !this.ended) this.sendKill(this);
  }

  spawned(pid: number): void {
    this.pid = pid;
    this.maybeStart();
  }

  attach(socket: Socket): void {
    this.socket = socket;
    this.maybeStart();
  }

  stderr(line: string): void {
    if (!this.ended) this.handlers.stderr(line);
  }

  /** It exited (`err` null for code 0) or could not be started. */
  finish(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.forget(this);
    if (!this.started) {
      // It never ran for us (no socket, or no pid): whatever ran is gone or dies with its closed socket.
      this.socket?.destroy();
      this.markExited();
      this.handlers.ended(err ?? new Error('ffmpeg ended before it was connected'));
      return;
    }
    this.markExited();
    this.handlers.ended(err);
    // Its output ends with the socket's EOF (the stream waits for it); a socket left half-open is closed.
    const socket = this.socket;
    setTimeout(() => socket?.destroy(), 5_000).unref();
  }

  private markExited(): void {
    if (this.exited) return;
    this.exited = true;
    for (const cb of this.exitCallbacks.splice(0)) cb();
  }

  private maybeStart(): void {
    if (this.started || this.ended || !this.pid || !this.socket) return;
    this.started = true;
    this.handlers.started(this, this.socket);
  }
}

/**
 * Starts ffmpeg decoders from a small Node child process (the launcher), so that the fork never blocks the server's
 * event loop: `child_process.spawn` is synchronous in the parent, and forking the server (hundreds of MB of page
 * tables) and waiting for the child's exec takes tens of ms per start on a loaded machine, seconds for a burst.
 *
 * The server listens on a Unix socket in a fresh 0700 directory; the launcher is told its path and a random token
 * over the IPC channel (never in argv or the environment). For each start the launcher connects, sends the token
 * and the decoder's id, and spawns ffmpeg with that connected socket as stdin and stdout: the audio goes between
 * the server and ffmpeg directly. A connection without the token within `handshakeTimeoutMs` is dropped. The
 * launcher reports pid, stderr lines and the exit over IPC, and kills on request.
 *
 * When the launcher dies its decoders are killed (by pid, and their sockets end) and reported as crashed (the
 * session decoder restarts them within its budget); a new launcher starts after a back-off, and until it is ready
 * `launch` returns false (the caller spawns in-process). When the server dies, the launcher's IPC channel closes and
 * it kills its ffmpeg children and exits.
 *
 * Scheduling: the launcher is started at boot and keeps the nice value the server's main thread had then; its
 * ffmpegs inherit the launcher's. On Linux the nice value is per thread (`renice -p` / `os.setPriority(pid)` changes
 * the main thread only), so a server reniced later must be reniced as a tree, or its decoders run at the old value
 * (in-process decoders, forked later by the main thread, would take the new one). The respawn-storm attack test
 * had this hole: its renice of the server's pid left the launcher and its ffmpegs at 0, one cause of its failures
 * with the launcher under load (`test/ops/helpers.ts` `setProcessTreePriority` now renices the tree; after that it
 * still failed 3 of 13 loaded runs with the launcher vs 0 of 13 without, on run-queue waits of the main thread, not
 * on more work there). Its state and the starts by path are on `/metrics` (`DecoderStarts`).
 */
export class FfmpegLauncher implements DecoderProcessLauncher {
  private readonly o: typeof DEFAULTS;
  private readonly log: Logger;
  private readonly token = randomBytes(TOKEN_BYTES);
  private readonly procs = new Map<number, LaunchedProcess>();
  private readonly pendingHandshakes = new Set<Socket>();
  private dir: string | undefined;
  private server: Server | undefined;
  private child: ChildProcess | undefined;
  private childStartedAt = 0;
  private generation = 0;
  private ready = false;
  private closed = false;
  /** Its entry file is not there (e.g. a bundle without it): it never runs. */
  private missing = false;
  private failures = 0;
  private nextId = 1;
  private restartTimer: NodeJS.Timeout | undefined;
  private readyTimer: NodeJS.Timeout | undefined;
  private readonly counts = { launchersStarted: 0, launched: 0, refused: 0, connectionsRejected: 0 };
  private readyWaiters: Array<() => void> = [];

  constructor(opts: FfmpegLauncherOptions = {}) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'ffmpeg-launcher' });
    const defined = Object.fromEntries(Object.entries(opts).filter(([k, v]) => k !== 'logger' && v !== undefined));
    this.o = { ...DEFAULTS, ...defined };
  }

  /** Listens on the private socket and starts the launcher; resolves once it is ready (or was closed). */
  async start(): Promise<void> {
    if (this.server || this.closed || this.missing) return this.whenReady();
    if (!existsSync(launcherEntry())) {
      this.log.error({ entry: launcherEntry() }, 'the ffmpeg launcher is not installed beside the server; decoders start in-process');
      this.missing = true;
      return;
    }
    this.dir = mkdtempSync(join(tmpdir(), 'live-audio-launcher-')); // mode 0700: only this user may connect
    const server = createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    this.server = server;
    server.on('error', (err) => this.log.error({ err: err.message }, 'launcher socket error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.unref();
    this.startChild();
    return this.whenReady();
  }

  /** Resolves when a launcher is ready (or the launcher was closed). */
  whenReady(): Promise<void> {
    if (this.ready || this.closed || this.missing) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  get available(): boolean {
    return this.ready && !this.closed && !!this.child?.connected;
  }

  get pid(): number | undefined {
    return this.ready ? this.child?.pid : undefined;
  }

  stats(): FfmpegLauncherStats {
    return { ready: this.ready, pid: this.pid, inFlight: this.procs.size, ...this.counts };
  }

  launch(ffmpegPath: string, args: string[], handlers: LaunchHandlers): boolean {
    if (!this.available) {
      this.counts.refused++;
      return false;
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffff0 ? 1 : this.nextId + 1;
    const proc = new LaunchedProcess(
      id,
      this.generation,
      handlers,
      (p) => this.send({ t: 'kill', id: p.id }, p.generation),
      (p) => this.procs.delete(p.id),
    );
    this.procs.set(id, proc);
    if (!this.send({ t: 'start', id, ffmpegPath, args }, this.generation)) {
      this.procs.delete(id);
      this.counts.refused++;
      return false;
    }
    this.counts.launched++;
    return true;
  }

  /** Stops the launcher (it kills what it still runs), closes the socket; resolves once the launcher is gone. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ready = false;
    clearTimeout(this.restartTimer);
    clearTimeout(this.readyTimer);
    for (const w of this.readyWaiters.splice(0)) w();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      if (child.connected) child.disconnect(); // it kills its ffmpeg children and exits
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await gone;
      clearTimeout(timer);
    }
    this.failAll(new Error('ffmpeg was killed with signal SIGKILL'));
    for (const s of this.pendingHandshakes) s.destroy();
    this.pendingHandshakes.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** The private socket's path (for the attack tests; it is no secret: the token is). */
  get socketPath(): string {
    return join(this.dir ?? tmpdir(), 'decoders.sock');
  }

  private send(m: ToLauncher, generation: number): boolean {
    const child = this.child;
    if (!child?.connected || generation !== this.generation) return false;
    try {
      return child.send(m);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not message the ffmpeg launcher');
      return false;
    }
  }

  private startChild(): void {
    if (this.closed) return;
    this.generation++;
    const generation = this.generation;
    const ts = __filename.endsWith('.ts');
    const entry = launcherEntry();
    const nodeArgs = [`--max-old-space-size=${LAUNCHER_HEAP_MB}`, ...(ts ? ['--require', require.resolve('tsx/cjs')] : [])];
    let child: ChildProcess;
    try {
      // A small environment: ffmpeg inherits it, and the server's secrets have no business there.
      child = spawn(process.execPath, [...nodeArgs, entry], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' },
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not start the ffmpeg launcher');
      this.scheduleRestart();
      return;
    }
    this.child = child;
    this.childStartedAt = performance.now();
    this.counts.launchersStarted++;
    child.unref();
    (child as unknown as { channel?: { unref(): void } }).channel?.unref();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => this.log.warn({ stderr: text.slice(0, 500) }, 'ffmpeg launcher stderr'));
    child.on('error', (err) => this.log.error({ err: err.message }, 'ffmpeg launcher error'));
    child.on('message', (m: FromLauncher) => this.onMessage(m, generation));
    child.once('exit', (code, signal) => this.onChildExit(generation, code, signal));
    this.readyTimer = setTimeout(() => {
      this.log.error({ timeoutMs: this.o.readyTimeoutMs }, 'the ffmpeg launcher did not get ready; killing it');
      child.kill('SIGKILL');
    }, this.o.readyTimeoutMs);
    this.readyTimer.unref();
    this.send({ t: 'init', socketPath: this.socketPath, token: this.token.toString('hex') }, generation);
  }

  private onMessage(m: FromLauncher, generation: number): void {
    if (generation !== this.generation) return;
    if (m.t === 'ready') {
      clearTimeout(this.readyTimer);
      this.ready = !this.closed;
      this.log.info({ pid: this.child?.pid, socketPath: this.socketPath }, 'ffmpeg launcher ready');
      for (const w of this.readyWaiters.splice(0)) w();
      return;
    }
    const proc = this.procs.get(m.id);
    if (!proc) return;
    switch (m.t) {
      case 'spawned':
        proc.spawned(m.pid);
        return;
      case 'stderr':
        proc.stderr(m.line);
        return;
      case 'exit':
        proc.finish(
          m.signal ? new Error(`ffmpeg was killed with signal ${m.signal}`) : m.code ? new Error(`ffmpeg exited with code ${m.code}`) : null,
        );
        return;
      case 'failed':
        proc.finish(new Error(m.message));
        return;
    }
  }

  private onChildExit(generation: number, code: number | null, signal: string | null): void {
    if (generation !== this.generation) return;
    clearTimeout(this.readyTimer);
    this.ready = false;
    this.child = undefined;
    // Its decoders: kill the ones it spawned (they outlive it), report every one as crashed.
    this.failAll(new Error('ffmpeg was killed with signal SIGKILL'));
    if (this.closed) return;
    const lived = performance.now() - this.childStartedAt;
    this.failures = lived > HEALTHY_LIFETIME_MS ? 1 : this.failures + 1;
    this.log.error({ code, signal, failures: this.failures }, 'the ffmpeg launcher died; decoders start in-process until a new one is ready');
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.closed) return;
    const wait = Math.min(this.o.maxRestartBackoffMs, this.o.restartBackoffMs * 2 ** Math.min(16, Math.max(0, this.failures - 1)));
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => this.startChild(), wait);
    this.restartTimer.unref();
  }

  private failAll(err: Error): void {
    for (const proc of [...this.procs.values()]) {
      if (proc.pid && !proc.hasExited) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      proc.finish(err);
    }
    this.procs.clear();
  }

  /** A connection to the private socket: the launcher's, for one decoder, if it sends the header first. */
  private onConnection(sock: Socket): void {
    if (this.pendingHandshakes.size >= this.o.maxPendingHandshakes) {
      const oldest = this.pendingHandshakes.values().next().value;
      if (oldest) this.reject(oldest);
    }
    this.pendingHandshakes.add(sock);
    let got: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => this.reject(sock), this.o.handshakeTimeoutMs);
    timer.unref();
    sock.on('error', (err) => this.log.debug({ err: err.message }, 'decoder socket error'));
    sock.once('close', () => {
      clearTimeout(timer);
      this.pendingHandshakes.delete(sock);
    });
    const onData = (data: Buffer) => {
      got = got.length ? Buffer.concat([got, data]) : data;
      if (got.length < HEADER_BYTES) return;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.pause();
      this.pendingHandshakes.delete(sock);
      const header = got.subarray(0, HEADER_BYTES);
      const rest = got.subarray(HEADER_BYTES);
      const id = header.readUInt32BE(TOKEN_BYTES);
      const proc = this.procs.get(id);
      if (!timingSafeEqual(header.subarray(0, TOKEN_BYTES), this.token) || !proc || proc.socket || proc.isEnded) {
        this.reject(sock);
        return;
      }
      if (rest.length) sock.unshift(rest);
      proc.attach(sock);
    };
    sock.on('data', onData);
  }

  private reject(sock: Socket): void {
    this.pendingHandshakes.delete(sock);
    this.counts.connectionsRejected++;
    sock.destroy();
  }
}

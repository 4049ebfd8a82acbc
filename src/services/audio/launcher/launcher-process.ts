import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { encodeHeader, MAX_STDERR_LINE, MAX_STDERR_LINES, type FromLauncher, type ToLauncher } from './launcher-protocol';

/**
 * The ffmpeg launcher's program (run by `launcher-entry.ts` in its own small Node process). It holds no audio: for
 * each `start` it connects to the server's private socket, sends the header (token + id), and spawns ffmpeg with
 * that connected socket as ffmpeg's stdin and stdout, then closes its own copy; the audio flows between the server
 * and ffmpeg directly. `child_process.spawn` forks this small process (not the server's big one) and blocks only
 * this event loop.
 *
 * It lives exactly as long as its IPC channel: when the server goes away (exit, crash, SIGKILL) the channel closes,
 * and the launcher SIGKILLs every ffmpeg it started and exits (ffmpeg would also end on its own: its socket's other
 * end is gone).
 */
export function runLauncher(): void {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('ffmpeg launcher: no IPC channel (it is started by the server)\n');
    process.exit(2);
  }
  const post = (m: FromLauncher) => {
    if (process.connected) send(m);
  };
  const children = new Map<number, ChildProcess>();
  /** Starts under way (connecting, not spawned yet) and the kills asked for meanwhile. */
  const inFlight = new Set<number>();
  const killed = new Set<number>();
  let socketPath = '';
  let token = Buffer.alloc(0);

  const shutdown = () => {
    for (const child of children.values()) child.kill('SIGKILL');
    process.exit(0);
  };
  process.on('disconnect', shutdown);
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', () => undefined); // a Ctrl-C reaches the whole group: the server decides when we go

  // One start at a time: connect, header, spawn. (Connecting ahead of the spawns would leave the server holding
  // connections whose header waits behind every spawn before it: seconds for a burst on a loaded machine.)
  const queue: Array<{ id: number; ffmpegPath: string; args: string[] }> = [];
  let busy = false;
  const pump = () => {
    if (busy) return;
    const next = queue.shift();
    if (!next) return;
    busy = true;
    let released = false;
    start(next.id, next.ffmpegPath, next.args, () => {
      if (released) return;
      released = true;
      busy = false;
      setImmediate(pump);
    });
  };

  const start = (id: number, ffmpegPath: string, args: string[], done: () => void) => {
    if (killed.delete(id)) {
      inFlight.delete(id); // killed while it waited its turn: never started
      post({ t: 'exit', id, code: null, signal: 'SIGKILL' });
      done();
      return;
    }
    const sock = connect({ path: socketPath });
    sock.pause(); // never read: the bytes on this socket are ffmpeg's input
    sock.on('error', (err) => {
      done();
      if (!inFlight.delete(id)) return;
      killed.delete(id);
      post({ t: 'failed', id, message: `launcher could not connect: ${err.message}` });
    });
    sock.once('connect', () => {
      sock.write(encodeHeader(token, id), (err) => {
        if (err) return; // 'error' reports it
        inFlight.delete(id);
        done();
        if (killed.delete(id)) {
          sock.destroy();
          post({ t: 'exit', id, code: null, signal: 'SIGKILL' });
          return;
        }
        let child: ChildProcess;
        try {
          child = spawn(ffmpegPath, args, { stdio: [sock, sock, 'pipe'], env: process.env });
        } catch (e) {
          sock.destroy();
          post({ t: 'failed', id, message: (e as Error).message });
          return;
        }
        sock.destroy(); // ffmpeg holds its own copies now
        if (child.pid === undefined) {
          child.once('error', (e) => post({ t: 'failed', id, message: e.message }));
          return;
        }
        children.set(id, child);
        post({ t: 'spawned', id, pid: child.pid });
        let lines = 0;
        let partial = '';
        child.stderr?.setEncoding('utf8');
        child.stderr?.on('data', (text: string) => {
          const parts = (partial + text).split(/\r?\n|\r/);
          partial = parts.pop() ?? '';
          if (partial.length > MAX_STDERR_LINE) partial = partial.slice(0, MAX_STDERR_LINE);
          for (const line of parts) if (line && lines++ < MAX_STDERR_LINES) post({ t: 'stderr', id, line: line.slice(0, MAX_STDERR_LINE) });
        });
        child.once('close', (code, signal) => {
          if (partial && lines < MAX_STDERR_LINES) post({ t: 'stderr', id, line: partial });
          children.delete(id);
          post({ t: 'exit', id, code, signal });
        });
      });
    });
  };

  process.on('message', (m: ToLauncher) => {
    switch (m.t) {
      case 'init':
        socketPath = m.socketPath;
        token = Buffer.from(m.token, 'hex');
        post({ t: 'ready' });
        return;
      case 'start':
        inFlight.add(m.id);
        queue.push({ id: m.id, ffmpegPath: m.ffmpegPath, args: m.args });
        pump();
        return;
      case 'kill': {
        const child = children.get(m.id);
        if (child) child.kill('SIGKILL');
        else if (inFlight.has(m.id)) killed.add(m.id);
        return;
      }
    }
  });
}

import type { ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';

/**
 * How an ffmpeg decoder process is started: the seam under `FfmpegPcmStream`. Two implementations:
 * - in the server's own process, by fluent-ffmpeg (`child_process.spawn`: blocks the event loop while Node forks
 *   the whole server and waits for the child's exec); `FfmpegPcmStream` does this itself when no launcher is given
 *   or the launcher cannot take a start;
 * - by the ffmpeg launcher (`launcher/ffmpeg-launcher.ts`): a small Node child forks ffmpeg, which reads and
 *   writes a Unix socket connected to the server.
 */

/** A running decoder process, whichever way it was started. */
export interface RunningDecoderProcess {
  readonly pid: number;
  /** Bytes written to its stdin that it has not taken yet. */
  stdinBuffered(): number;
  /** Its stdin took what was buffered. */
  onStdinDrain(cb: () => void): void;
  /** It exited. */
  onExit(cb: () => void): void;
  /** SIGKILL. */
  kill(): void;
}

/** What a launched process reports to the stream that asked for it. */
export interface LaunchHandlers {
  /**
   * It runs: `io` is its stdin (write; `end()` is EOF) and its stdout (read). Called at most once, before `ended`
   * unless it never ran.
   */
  started(proc: RunningDecoderProcess, io: Duplex): void;
  /** One line of its stderr. */
  stderr(line: string): void;
  /**
   * It is gone: `null` after exit code 0, else an error worded like fluent-ffmpeg's (`ffmpeg exited with code N`,
   * `ffmpeg was killed with signal SIG…`, or why it could not be run). Called once.
   */
  ended(err: Error | null): void;
}

/** Starts ffmpeg processes outside the server's main thread. */
export interface DecoderProcessLauncher {
  /** It would take a start now (a launcher process is ready). */
  readonly available: boolean;
  /** Starts `ffmpegPath args`; false when it cannot take a start now (the caller then spawns in-process). */
  launch(ffmpegPath: string, args: string[], handlers: LaunchHandlers): boolean;
}

/** A child process of this Node process (fluent-ffmpeg's) as a `RunningDecoderProcess`. */
export function childAsDecoderProcess(child: ChildProcess & { pid: number }): RunningDecoderProcess {
  return {
    pid: child.pid,
    stdinBuffered: () => child.stdin?.writableLength ?? 0,
    onStdinDrain: (cb) => void child.stdin?.on('drain', cb),
    onExit: (cb) => void child.once('exit', cb),
    kill: () => void child.kill('SIGKILL'),
  };
}

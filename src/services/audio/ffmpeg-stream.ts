import { PassThrough, Writable } from 'node:stream';
import type { PcmStream } from './pcm-stream';
import ffmpeg from 'fluent-ffmpeg';
import type { Logger } from '../../util/logger';
import { UPSTREAM_SAMPLE_RATE } from './audio-types';
import { AudioDecodeError } from './session-audio-decoder';
import { argumentsOfCommand, childOfStartedCommand } from './fluent-ffmpeg-child';
import { lowerProcessPriority } from './process-priority';
import { childAsDecoderProcess, type DecoderProcessLauncher, type RunningDecoderProcess } from './decoder-process';
import type { DecoderStartPath, DecoderStartSink } from './decoder-starts';

export interface FfmpegPcmStreamOptions {
  ffmpegPath: string;
  /** ffmpeg input format (`-f`): 'webm', 'ogg', 'mp4', 's16le', 'f32le', ... */
  inputFormat: string;
  /** The decoder ffmpeg must use (`-c:a`, forced: nothing else is probed): 'opus', 'aac', 'pcm_s16le', ... */
  codec: string;
  /**
   * A process that takes no input and gives no output for this long while it owes some (and its output is not
   * held by `setOutputPaused`) is killed and reported as AUDIO_DECODER_STALLED (0 = never).
   */
  stallMs?: number;
  /**
   * Whether the owner is still waiting for output of what it wrote (e.g. a ledger of written audio). Without it, any
   * output after a write counts as the answer to everything written before.
   */
  owesOutput?: () => boolean;
  /** Extra input options placed before `-i pipe:0`, e.g. ['-ar', '24000', '-ac', '2'] for raw input. */
  inputOptions?: string[];
  logger: Logger;
  /** Decoded 16 kHz mono s16le, even-length. */
  onPcm: (pcm: Buffer) => void;
  /**
   * Starts the process outside the server's main thread (the ffmpeg launcher); without one, or when it cannot take
   * the start, fluent-ffmpeg spawns it in this process.
   */
  launcher?: DecoderProcessLauncher;
  /**
   * How far below the server's CPU priority the process runs (LIVE_AUDIO_DECODER_NICE: added to the server's nice
   * value; 0 or absent: the same), set as soon as it is spawned: the server's event loop, which relays every session,
   * then wins a contended CPU over any one decoder.
   */
  niceness?: number;
  /** Told once the process runs: by which path it was started and how long that took (for `/metrics`). */
  starts?: DecoderStartSink;
  /** A process was spawned (pid known). */
  onSpawn?: (pid: number) => void;
  /** The spawned process exited. */
  onExit?: () => void;
  /**
   * The stream failed (decode error or crash). Called at most once, after the remaining PCM was delivered,
   * and never after `kill()`.
   */
  onFailure: (err: AudioDecodeError) => void;
  /**
   * The stream stalled (see `stallMs`): called at once, before the process is killed, so that the owner can replace
   * it before anything else is written. `onFailure` follows when the stream is done.
   */
  onStall?: (err: AudioDecodeError) => void;
}

/** What the owner of a stream gives it: set at creation, or when a pooled stream is taken (`bind`). */
export type FfmpegStreamHandlers = Pick<FfmpegPcmStreamOptions, 'onPcm' | 'onFailure' | 'onStall' | 'owesOutput' | 'stallMs' | 'logger'>;

/** After the process ended, how long to wait for the last stdout bytes. */
const OUTPUT_DRAIN_GRACE_MS = 1000;
/**
 * Until its first output, a stream is still starting (spawn, dynamic loading, probing: seconds on a loaded machine):
 * it counts as stalled only after this long (or twice the stall deadline) from its creation.
 */
const START_DEADLINE_MS = 10_000;
/** After a SIGKILL, how long before the stream is considered finished even without an exit report. */
const KILL_GRACE_MS = 2000;

/**
 * Error lines ffmpeg may print while the input is open before the stream is declared undecodable (ffmpeg skips an
 * isolated corrupt Opus packet and goes on; structural corruption is caught earlier by WebmStreamChecker).
 */
const MAX_ERROR_LINES = 5;

const fluentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * One long-lived ffmpeg process, driven through fluent-ffmpeg:
 * `ffmpeg -hide_banner -loglevel repeat+error -protocol_whitelist pipe -f <fmt> -c:a <codec> [opts] -i pipe:0
 *  -ac 1 -ar 16000 -vn -f s16le pipe:1`: the demuxer and the decoder are forced (no probing of untrusted bytes for
 * another format or codec) and no protocol but the pipe may be opened (`repeat+` keeps ffmpeg from folding repeated
 * errors into a late "Last message repeated N times" line). It is fed through a PassThrough (stdin); its stdout is
 * delivered through `onPcm` and can be held (`setOutputPaused`): ffmpeg then blocks on its output, stops reading
 * its input, and decoded audio does not pile up in memory.
 *
 * Failure policy:
 * - 5 error lines on stderr while input is still open → the stream is killed and reported as AUDIO_DECODE_FAILED
 *   (ffmpeg skips bad packets and keeps going; a single one is only logged);
 * - non-zero exit → AUDIO_DECODE_FAILED with ffmpeg's stderr summarised;
 * - exit 0 before the input was ended → AUDIO_DECODE_FAILED;
 * - killed by a signal we did not send → AUDIO_DECODER_CRASHED;
 * - could not be started → AUDIO_DECODER_CRASHED;
 * - took no input and gave no output for `stallMs` while owing output (e.g. SIGSTOPped) → killed, AUDIO_DECODER_STALLED.
 * Error lines printed after the input was ended (e.g. a recording cut inside a block) are only logged.
 */
export class FfmpegPcmStream implements PcmStream {
  /** Resolves once the process is gone and its output delivered (or it never started). Never rejects. */
  readonly done: Promise<void>;

  // Bytes wait here (and in the child's stdin) until ffmpeg reads them; `queuedBytes` tells the owner how many.
  private readonly input = new PassThrough({ writableHighWaterMark: 0, readableHighWaterMark: 0 });
  private readonly output: Writable;
  private readonly command: ffmpeg.FfmpegCommand;
  private log: Logger;
  private proc: RunningDecoderProcess | null = null;
  private resolveDone!: () => void;

  private spawned = false;
  private exited = false;
  private commandEnded = false;
  private outputFinished = false;
  private settled = false;
  /**
   * The process must die (killed by the owner, stalled, failed). Kept because the process may not exist yet:
   * fluent-ffmpeg prepares it asynchronously (capability probe, path lookup), seconds on a loaded machine.
   */
  private killRequested = false;
  private inputEnded = false;
  private killedByOwner = false;
  private silent = false;
  /** Output after a stall is dropped: its writes are replayed into a replacement, which gives that audio instead. */
  private muted = false;
  private failure: AudioDecodeError | null = null;
  private failScheduled = false;
  private errorLinesWhileOpen = 0;
  private readonly stderrLines: string[] = [];
  private carry: Buffer | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private outputPaused = false;
  /** Output callbacks held while paused (each one releases the stdout pipe). */
  private heldOutput: Array<() => void> = [];
  /** Since when output is owed (input that must produce audio was written after the last output). */
  private owedSince: number | undefined;
  /** Last sign of life: output, stdin drained, spawn, or output released. */
  private lastProgressAt = performance.now();
  private stallTimer: NodeJS.Timeout | undefined;
  /** Created, or taken from the pool (`bind`): a start before the first output is timed from here. */
  private createdAt = performance.now();
  /** When the process was asked for (the start's duration is timed from here). */
  private readonly askedAt = performance.now();
  /** How the process is being started. */
  private startPath: DecoderStartPath = 'in_process';
  private bound = false;
  /** The process has given output (it is up; before that it may still be loading). */
  private firstOutput = false;

  constructor(private opts: FfmpegPcmStreamOptions) {
    this.log = opts.logger;
    this.done = new Promise<void>((resolve) => (this.resolveDone = resolve));
    this.output = new Writable({
      emitClose: false, // fluent-ffmpeg kills the process 20 ms after the output stream's 'close'
      write: (chunk: Buffer, _enc, cb) => {
        this.handleOutput(chunk);
        if (this.outputPaused && !this.silent && !this.muted) this.heldOutput.push(() => cb());
        else cb();
      },
    });
    this.output.on('finish', () => {
      this.outputFinished = true;
      this.maybeSettle();
    });
    this.output.on('error', (err) => this.log.warn({ err: err.message }, 'ffmpeg output stream error'));
    this.input.on('error', (err) => this.log.debug({ err: err.message }, 'ffmpeg input stream error'));

    this.command = ffmpeg({ logger: fluentLogger, stdoutLines: 20 })
      .setFfmpegPath(opts.ffmpegPath)
      .input(this.input)
      .inputOptions(['-hide_banner', '-loglevel', 'repeat+error', '-protocol_whitelist', 'pipe'])
      .inputFormat(opts.inputFormat)
      .inputOptions(['-c:a', opts.codec]);
    if (opts.inputOptions?.length) this.command.inputOptions(opts.inputOptions);
    this.command.noVideo().audioChannels(1).audioFrequency(UPSTREAM_SAMPLE_RATE).format('s16le');

    if (opts.launcher && this.launch(opts.launcher)) {
      this.startPath = 'launcher';
      return;
    }
    this.command.on('start', (commandLine: string) => {
      const child = childOfStartedCommand(this.command);
      this.onStart(child && child.pid !== undefined ? childAsDecoderProcess(child as typeof child & { pid: number }) : null, commandLine);
    });
    this.command.on('stderr', (line: string) => this.onStderrLine(line));
    this.command.on('error', (err: Error) => this.onCommandEnd(err));
    this.command.on('end', () => this.onCommandEnd(null));
    try {
      this.command.pipe(this.output, { end: true });
    } catch (err) {
      this.onCommandEnd(err as Error);
    }
  }

  /** Has the launcher start the process (same arguments, built by fluent-ffmpeg); false if it cannot. */
  private launch(launcher: DecoderProcessLauncher): boolean {
    const args = argumentsOfCommand(this.command);
    return launcher.launch(this.opts.ffmpegPath, args, {
      // Its stdin and stdout are one socket: input goes in (and `end()` is EOF), PCM comes out.
      started: (proc, io) => {
        this.input.pipe(io);
        io.pipe(this.output, { end: true });
        this.onStart(proc, `ffmpeg ${args.join(' ')}`);
      },
      stderr: (line) => this.onStderrLine(line),
      ended: (err) => this.onCommandEnd(err),
    });
  }

  /**
   * Hands a stream that was started ahead (a warm pool's, with no owner yet) to its owner: from now on its output,
   * failure and stall go to `h`, and its start and stall clocks run from now. Once only, before the first write.
   */
  bind(h: FfmpegStreamHandlers): void {
    if (this.bound) throw new Error('FfmpegPcmStream: already bound');
    this.bound = true;
    this.opts = { ...this.opts, ...h };
    this.log = h.logger;
    this.createdAt = performance.now();
    this.lastProgressAt = this.createdAt;
  }

  /** pid of the running process (undefined before spawn and after exit). */
  get pid(): number | undefined {
    return this.proc && !this.exited ? this.proc.pid : undefined;
  }

  /** The process is running. */
  get alive(): boolean {
    return this.spawned && !this.exited;
  }

  /** The stream accepts more input (not ended, not failed, not killed, not finished). */
  get usable(): boolean {
    return !this.inputEnded && !this.killedByOwner && !this.failure && !this.failScheduled && !this.commandEnded;
  }

  /** Bytes handed to this stream and not yet taken by the process. */
  get queuedBytes(): number {
    return this.input.writableLength + this.input.readableLength + (this.proc ? this.proc.stdinBuffered() : 0);
  }

  /** Input that must produce audio is not answered yet: bytes not taken, or no output since audio was written. */
  get owesOutput(): boolean {
    // (Also before the process has spawned: its input waits for it.)
    return !this.exited && !this.killedByOwner && !this.commandEnded && (this.owedSince !== undefined || this.queuedBytes > 0);
  }

  /** Its output is held (`setOutputPaused(true)`). */
  get outputHeld(): boolean {
    return this.outputPaused;
  }

  /**
   * Holds or releases ffmpeg's output. While held, decoded audio stays in ffmpeg (which stops reading its input) and
   * the stall deadline does not run.
   */
  setOutputPaused(paused: boolean): void {
    if (this.outputPaused === paused) return;
    this.outputPaused = paused;
    if (!paused) {
      this.lastProgressAt = performance.now();
      for (const release of this.heldOutput.splice(0)) release();
    }
  }

  /**
   * Hands bytes to ffmpeg's stdin and resolves at once: they wait in the stream's buffer (`queuedBytes`) while the
   * process is busy or its output is held; the owner bounds that queue. Bytes written to an unusable stream are
   * dropped. `owesOutput`: the bytes hold audio, so output must follow (arms the stall deadline).
   */
  write(buf: Buffer, owesOutput = true): Promise<void> {
    if (!this.usable || this.settled) return Promise.resolve();
    if (owesOutput && this.owedSince === undefined) {
      this.owedSince = performance.now();
      if (this.owedSince - this.lastProgressAt > 0) this.lastProgressAt = this.owedSince;
    }
    this.armStallCheck();
    this.input.write(buf);
    return Promise.resolve();
  }

  /**
   * Ends stdin and waits until ffmpeg has exited and all its PCM was delivered. If it gives nothing (no output, no
   * exit) for `timeoutMs` while its output is not held, the process is killed (not reported as a crash); a process
   * that has given no output yet may still be starting and gets START_DEADLINE_MS.
   */
  async end(timeoutMs: number): Promise<void> {
    if (!this.inputEnded) {
      this.inputEnded = true;
      this.input.end();
    }
    if (this.settled) return;
    // The bound is on silence, not on the whole drain: a process that is still decoding (or whose output we hold)
    // may take as long as it needs; one that gives nothing for `timeoutMs` is killed.
    const check = setInterval(() => {
      if (this.settled || this.outputPaused) return;
      const since = this.firstOutput ? this.lastProgressAt : this.createdAt;
      const limit = this.firstOutput ? timeoutMs : Math.max(timeoutMs, START_DEADLINE_MS);
      if (performance.now() - since < limit) return;
      clearInterval(check);
      this.log.warn({ timeoutMs }, 'ffmpeg did not finish after its input ended; killing it');
      this.killedByOwner = true;
      this.sendKill();
    }, Math.max(10, Math.min(250, Math.floor(timeoutMs / 4))));
    await this.done;
    clearInterval(check);
  }

  /**
   * Fails the stream with `err` (reported through onFailure once the stream is done), but lets ffmpeg finish the
   * input it already has, so the audio before the failure point is still delivered.
   */
  async failAndEnd(err: AudioDecodeError, timeoutMs: number): Promise<void> {
    if (!this.failure && !this.killedByOwner) this.failure = err;
    await this.end(timeoutMs);
  }

  /** SIGKILL now; no more output and no failure report. */
  kill(): void {
    this.silent = true;
    this.killedByOwner = true;
    for (const release of this.heldOutput.splice(0)) release();
    if (!this.inputEnded) {
      this.inputEnded = true;
      this.input.end();
    }
    this.sendKill();
  }

  private armStallCheck(): void {
    const stallMs = this.opts.stallMs ?? 0;
    if (!(stallMs > 0) || this.stallTimer || this.settled) return;
    const every = Math.max(25, Math.min(1000, Math.floor(stallMs / 5)));
    this.stallTimer = setInterval(() => this.checkStall(stallMs), every);
    this.stallTimer.unref?.();
  }

  private checkStall(stallMs: number): void {
    // Not spawned yet counts too: a process that never starts (e.g. its capability probe hangs) accepts nothing.
    if (this.settled || this.killedByOwner || this.failure || this.failScheduled || this.exited || this.commandEnded) {
      clearInterval(this.stallTimer);
      this.stallTimer = undefined;
      return;
    }
    const owed = (this.opts.owesOutput ? this.opts.owesOutput() : this.owedSince !== undefined) || this.queuedBytes > 0;
    if (!owed) {
      clearInterval(this.stallTimer);
      this.stallTimer = undefined;
      return;
    }
    if (this.outputPaused) return; // held by us: not the decoder's fault
    // Before its first output, a stream may still be starting (spawns queue up under load): a longer deadline.
    const deadline = this.firstOutput ? stallMs : Math.max(2 * stallMs, START_DEADLINE_MS);
    const idle = performance.now() - (this.firstOutput ? this.lastProgressAt : this.createdAt);
    if (idle < deadline) return;
    clearInterval(this.stallTimer);
    this.stallTimer = undefined;
    this.failure = new AudioDecodeError(
      'AUDIO_DECODER_STALLED',
      `The audio decoder accepted nothing for ${Math.round(idle)} ms and was replaced`,
    );
    this.log.warn({ ffmpegPid: this.proc?.pid, idleMs: Math.round(idle), queuedBytes: this.queuedBytes }, 'ffmpeg stalled; killing it');
    this.muted = true;
    for (const release of this.heldOutput.splice(0)) release();
    try {
      this.opts.onStall?.(this.failure);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'onStall threw');
    }
    this.sendKill();
  }

  private sendKill(): void {
    this.killRequested = true;
    if (this.proc && this.spawned && !this.exited) {
      try {
        this.proc.kill();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not kill ffmpeg');
      }
    }
    // A process that is still being prepared by fluent-ffmpeg is killed in onStart.
    // Safety net: never leave `done` pending forever.
    this.setTimer(() => {
      if (!this.settled) {
        this.log.warn('ffmpeg stream did not report its end after SIGKILL');
        this.settle();
      }
    }, KILL_GRACE_MS);
  }

  private onStart(proc: RunningDecoderProcess | null, commandLine: string): void {
    this.proc = proc;
    if (!proc) return; // spawn failed; 'error' follows
    this.spawned = true;
    const niceErr = lowerProcessPriority(proc.pid, this.opts.niceness ?? 0);
    if (niceErr) this.log.debug({ ffmpegPid: proc.pid, err: niceErr.message }, 'could not lower the decoder priority');
    this.lastProgressAt = performance.now();
    proc.onStdinDrain(() => {
      this.lastProgressAt = performance.now();
    });
    proc.onExit(() => {
      this.exited = true;
      this.opts.onExit?.();
    });
    this.log.debug({ ffmpegPid: proc.pid, args: commandLine.replace(/^\S+/, 'ffmpeg') }, 'ffmpeg started');
    this.opts.starts?.started({ path: this.startPath, ms: performance.now() - this.askedAt });
    this.opts.onSpawn?.(proc.pid);
    // Asked to die before it existed (killed, stalled while fluent-ffmpeg was still preparing it, or settled by the
    // kill safety net): no one else will ever end it, and its stdin may never close.
    if (this.killRequested) {
      try {
        proc.kill();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not kill ffmpeg');
      }
    }
  }

  private onStderrLine(line: string): void {
    const text = line.trim();
    if (!text) return;
    if (this.stderrLines.length < 20) this.stderrLines.push(text);
    this.log.debug({ stderr: summariseStderr([text]) }, 'ffmpeg stderr');
    if (this.inputEnded || this.killedByOwner || this.failure || this.failScheduled) return;
    // ffmpeg recovers from an isolated bad packet; persistent errors mean the stream is not decodable.
    if (++this.errorLinesWhileOpen < MAX_ERROR_LINES) return;
    // Gather the lines of the same burst, then fail the stream.
    this.failScheduled = true;
    setImmediate(() => {
      if (this.killedByOwner || this.failure || this.settled) return;
      this.failure = new AudioDecodeError(
        'AUDIO_DECODE_FAILED',
        `Audio could not be decoded: ${summariseStderr(this.stderrLines) || 'decoder error'}`,
      );
      this.sendKill();
    });
  }

  private onCommandEnd(err: Error | null): void {
    if (this.commandEnded) return;
    this.commandEnded = true;
    if (err && !this.killedByOwner && !this.failure) {
      const msg = err.message || String(err);
      const signal = /killed with signal (\w+)/.exec(msg);
      if (signal) {
        this.failure = new AudioDecodeError(
          'AUDIO_DECODER_CRASHED',
          `The audio decoder process was terminated unexpectedly (${signal[1]})`,
        );
      } else if (/exited with code/.test(msg)) {
        const code = /exited with code (-?\d+)/.exec(msg)?.[1];
        this.failure = new AudioDecodeError(
          'AUDIO_DECODE_FAILED',
          `Audio could not be decoded: ${summariseStderr(this.stderrLines) || `decoder exited with code ${code}`}`,
        );
      } else {
        this.failure = new AudioDecodeError(
          'AUDIO_DECODER_CRASHED',
          `The audio decoder could not be run: ${summariseStderr([msg])}`,
        );
      }
    } else if (!err && !this.inputEnded && !this.killedByOwner && !this.failure) {
      this.failure = new AudioDecodeError(
        'AUDIO_DECODE_FAILED',
        `Audio could not be decoded: the decoder stopped before the end of the stream` +
          (this.stderrLines.length ? ` (${summariseStderr(this.stderrLines)})` : ''),
      );
    } else if (this.stderrLines.length && !this.failure) {
      this.log.debug({ stderr: summariseStderr(this.stderrLines) }, 'ffmpeg finished with messages');
    }
    if (!this.spawned) {
      this.outputFinished = true; // nothing can arrive
    } else if (!this.outputFinished) {
      this.setTimer(() => {
        if (!this.outputFinished) {
          this.log.warn('ffmpeg output did not end after the process exited');
          this.outputFinished = true;
          this.maybeSettle();
        }
      }, OUTPUT_DRAIN_GRACE_MS);
    }
    this.maybeSettle();
  }

  private handleOutput(chunk: Buffer): void {
    this.lastProgressAt = performance.now();
    this.firstOutput = true;
    this.owedSince = undefined;
    if (this.silent || this.muted) return;
    let buf = chunk;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    if (buf.length & 1) {
      this.carry = Buffer.from(buf.subarray(buf.length - 1));
      buf = buf.subarray(0, buf.length - 1);
    }
    if (buf.length > 0) this.opts.onPcm(buf);
  }

  private maybeSettle(): void {
    if (this.commandEnded && this.outputFinished) this.settle();
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearInterval(this.stallTimer);
    this.stallTimer = undefined;
    for (const release of this.heldOutput.splice(0)) release();
    if (this.failure && !this.silent) {
      this.log.warn({ code: this.failure.code, reason: this.failure.message }, 'audio decoder failed');
      this.opts.onFailure(this.failure);
    }
    this.resolveDone();
  }

  private setTimer(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }
}

/**
 * Makes ffmpeg's stderr fit for a client-visible message: drops `[demuxer @ 0x...]` prefixes, `pipe:0:` prefixes and
 * file-system paths, de-duplicates, keeps at most 3 lines and 300 characters.
 */
export function summariseStderr(lines: readonly string[]): string {
  const out: string[] = [];
  for (const raw of lines) {
    const line = raw
      .replace(/^\[([^\]@]+?)\s*@\s*0x[0-9a-f]+\]\s*/i, (_m, name: string) => (name === 'NULL' ? '' : `${name}: `))
      .replace(/\bpipe:[01]:\s*/g, '')
      .replace(/(^|[\s'"(=])(?:[A-Za-z]:)?[\\/][^\s'"):]+/g, '$1<path>')
      .replace(/\s+/g, ' ')
      .trim();
    if (line && !out.includes(line)) out.push(line);
    if (out.length === 3) break;
  }
  const text = out.join('; ');
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

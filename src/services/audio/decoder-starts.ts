/**
 * How the server's ffmpeg decoder processes get started, for `/metrics`: by which path (the ffmpeg launcher, or
 * in the server's own process), how long each start took, and whether the launcher is up.
 */

/** `launcher`: a small child process forked it (`launcher/`); `in_process`: the server forked it itself. */
export type DecoderStartPath = 'launcher' | 'in_process';

/** One decoder process that runs now. */
export interface DecoderStarted {
  path: DecoderStartPath;
  /** From asking for the process to it running (pid known, its stdin and stdout connected), ms. */
  ms: number;
}

/** The ffmpeg launcher as far as metrics go. */
export interface DecoderLauncherStatus {
  /** A launcher process is ready to take starts. */
  up: boolean;
  /** Launcher processes started after the first one (it died, or did not get ready in time). */
  restarts: number;
}

/** Where a decoder factory's process starts can be watched. */
export interface DecoderStartSource {
  /** Calls `listener` for every decoder process that starts from now on. */
  onStarted(listener: (e: DecoderStarted) => void): void;
  /** The launcher's state; undefined when the factory has none (LIVE_AUDIO_DECODER_LAUNCHER=false). */
  launcherStatus(): DecoderLauncherStatus | undefined;
}

/** What a decoder stream reports its start to. */
export interface DecoderStartSink {
  started(e: DecoderStarted): void;
}

/** A factory's start log: streams report to it (`started`), metrics listen (`onStarted`). */
export class DecoderStarts implements DecoderStartSource, DecoderStartSink {
  private readonly listeners: Array<(e: DecoderStarted) => void> = [];
  /** Starts so far, by path. */
  readonly counts: Record<DecoderStartPath, number> = { launcher: 0, in_process: 0 };

  constructor(private readonly launcher: () => DecoderLauncherStatus | undefined = () => undefined) {}

  started(e: DecoderStarted): void {
    this.counts[e.path]++;
    for (const l of this.listeners) l(e);
  }

  onStarted(listener: (e: DecoderStarted) => void): void {
    this.listeners.push(listener);
  }

  launcherStatus(): DecoderLauncherStatus | undefined {
    return this.launcher();
  }
}

import { ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import type { FfmpegCommand } from 'fluent-ffmpeg';

/**
 * The ffmpeg child process of a fluent-ffmpeg command, read in its `start` event. fluent-ffmpeg 2.1.3 has no
 * public way to reach it (its `start` event carries only the command line) but keeps it on the command as
 * `ffmpegProc` from just before `start` until the process ends; the decoder needs it for its pid (metrics,
 * attack tests), its stdin's `drain` (stall detection) and `exit`. This is the only file that relies on that
 * field; test/audio/fluent-ffmpeg-child.test.ts runs a real ffmpeg and fails when fluent-ffmpeg changes it.
 */
export function childOfStartedCommand(command: FfmpegCommand): ChildProcess | null {
  const proc: unknown = Reflect.get(command, 'ffmpegProc');
  return proc instanceof ChildProcess ? proc : null;
}

/**
 * The argument list fluent-ffmpeg would run for `command` with its output piped (`… pipe:1`), for a process started
 * elsewhere (the ffmpeg launcher). fluent-ffmpeg builds it in `_getArguments`, not public either; the command is
 * cloned so that the original can still be run in-process. test/audio/fluent-ffmpeg-child.test.ts checks the list.
 */
export function argumentsOfCommand(command: FfmpegCommand): string[] {
  const copy = command.clone().output(new PassThrough());
  const build: unknown = Reflect.get(copy, '_getArguments');
  if (typeof build !== 'function') throw new Error('fluent-ffmpeg has no _getArguments: the ffmpeg launcher cannot build the command');
  const args: unknown = build.call(copy);
  if (!Array.isArray(args)) throw new Error('fluent-ffmpeg _getArguments did not return a list');
  return args.map(String);
}

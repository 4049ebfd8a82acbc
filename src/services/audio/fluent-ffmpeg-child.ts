import { ChildProcess } from 'node:child_process';
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

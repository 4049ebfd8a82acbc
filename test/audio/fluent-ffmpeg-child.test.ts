import { ChildProcess } from 'node:child_process';
import ffmpeg from 'fluent-ffmpeg';
import { childOfStartedCommand } from '../../src/services/audio/fluent-ffmpeg-child';
import { chooseFfmpeg } from '../../src/services/audio/ffmpeg-path';

/**
 * fluent-ffmpeg has no public handle on its child process; `childOfStartedCommand` reads the one private field the
 * decoder relies on. This runs the real ffmpeg through the installed fluent-ffmpeg and fails the day that changes.
 */
describe('the ffmpeg child of a fluent-ffmpeg command', () => {
  it('is a live ChildProcess in the start event, with a pid, a writable stdin and an exit event', async () => {
    const { path } = await chooseFfmpeg({});
    ffmpeg.setFfmpegPath(path);
    const cmd = ffmpeg().input('anullsrc=r=16000:cl=mono').inputFormat('lavfi').duration(0.2).format('null').output('-');
    expect(childOfStartedCommand(cmd)).toBeNull(); // nothing before it starts
    const seen = await new Promise<{ proc: ChildProcess | null; pid: number | undefined; exited: Promise<number | null> }>((resolve, reject) => {
      cmd.on('start', () => {
        const proc = childOfStartedCommand(cmd);
        resolve({ proc, pid: proc?.pid, exited: new Promise((r) => proc?.once('exit', (code) => r(code))) });
      });
      cmd.on('error', reject);
      cmd.run();
    });
    expect(seen.proc).toBeInstanceOf(ChildProcess);
    expect(typeof seen.pid).toBe('number');
    expect(seen.proc?.stdin).toBeTruthy();
    expect(await seen.exited).toBe(0);
  });
});

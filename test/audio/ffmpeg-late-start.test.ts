/**
 * The ffmpeg leak seen under heavy load (issue 13, bench/diagnose/ffmpeg-leak.ts: 224 ffmpeg processes alive after
 * 60 sessions had ended and the server had closed, at load average 25-38). fluent-ffmpeg prepares a process
 * asynchronously (its capability probe runs ffmpeg itself first); on a loaded machine that takes longer than the
 * decoder's start deadline, the stream is declared stalled and "killed" while no process exists yet, the kill
 * safety net settles it, and the process that fluent-ffmpeg starts afterwards used to run forever (its stdin is
 * never closed: the owner has moved on to a replacement). The slow machine is stood in for by a real ffmpeg behind
 * a wrapper whose capability probe is slow; everything else is real.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FfmpegPcmStream } from '../../src/services/audio/ffmpeg-stream';
import { silentLogger } from '../../src/util/logger';
import { ffmpegBinary } from '../helpers/ffmpeg';
import { HELLO, loadChunks } from '../helpers/fixtures';
import { childProcesses, processAlive } from '../ops/helpers';
import { waitFor } from './helpers';

const PROBE_DELAY_S = 12; // beyond the stream's 10 s start deadline

describe('an ffmpeg process started after its stream was given up', () => {
  let dir: string;
  let wrapper: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ffmpeg-late-start-'));
    wrapper = path.join(dir, 'ffmpeg');
    fs.writeFileSync(
      wrapper,
      [
        '#!/bin/sh',
        '# fluent-ffmpeg capability probes (-formats, -codecs, -encoders, -filters) take long, as on a loaded machine',
        'for a in "$@"; do',
        `  case "$a" in -formats|-codecs|-encoders|-filters) sleep ${PROBE_DELAY_S};; esac`,
        'done',
        `exec ${ffmpegBinary()} "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('stalled before it existed: the process fluent-ffmpeg starts later is killed at once, and counted gone', async () => {
    let alive = 0;
    const pids: number[] = [];
    const stalls: string[] = [];
    const stream = new FfmpegPcmStream({
      ffmpegPath: wrapper,
      inputFormat: 'webm',
      codec: 'opus',
      stallMs: 100,
      logger: silentLogger,
      onPcm: () => undefined,
      onFailure: () => undefined,
      onStall: (e) => stalls.push(e.code),
      onSpawn: (pid) => {
        alive++;
        pids.push(pid);
      },
      onExit: () => alive--,
    });
    await stream.write(loadChunks(HELLO)[0]!);
    // Owed output and no process: the start deadline (10 s) declares it stalled; the owner would take a replacement.
    await waitFor(() => stalls.length === 1, 20_000);
    expect(stalls).toEqual(['AUDIO_DECODER_STALLED']);
    expect(pids).toEqual([]); // still being prepared
    await stream.done; // settled by the kill safety net, long before the process exists
    // Then fluent-ffmpeg starts it (the probe returns): it must not outlive that moment.
    await waitFor(() => pids.length === 1, 30_000);
    const pid = pids[0]!;
    await waitFor(() => !processAlive(pid), 5_000);
    await waitFor(() => alive === 0, 5_000);
    expect(childProcesses(process.pid, 'ffmpeg')).not.toContain(pid);
  }, 60_000);
});

/**
 * The floor: what one ffmpeg process, alone, needs to decode the fixture on the machine at hand (CPU ms per second
 * of audio), with the server's own flags (WebM demuxer and Opus decoder forced, 16 kHz mono s16le out). The
 * server's CPU per session-second is reported as a multiple of it (`cost_ratio`), which carries from one machine to
 * the next where absolute figures do not.
 *
 * The CPU is the process's own over its whole life (start-up, dynamic loading, decoding, exit), user + system, as
 * the kernel accounts it to the parent when the child is reaped: `cutime + cstime` of /proc/self/stat grow by it.
 * Their 10 ms resolution is why the figure is the total over several runs divided by the total audio; ffmpeg's own
 * `-benchmark` line (microseconds, up to the end of decoding only) is kept per run as a cross-check.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readStat } from './proc';

export interface FfmpegBuild {
  path: string;
  /** First line of `ffmpeg -version`. */
  version: string;
}

export function ffmpegBuild(ffmpeg: string): FfmpegBuild {
  let version = 'unknown';
  try {
    version = execFileSync(ffmpeg, ['-version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    // reported as unknown
  }
  return { path: ffmpeg, version };
}

export interface FloorMeasurement {
  /** CPU ms per second of audio: all runs' CPU (whole process lives) over all runs' audio. */
  msPerAudioS: number;
  /** Each run's figure from ffmpeg's `-benchmark` line (up to the end of decoding), ms per audio second. */
  runs: number[];
  audioS: number;
}

/** The server's decoder flags (FfmpegPcmStream), reading the whole recording from stdin. */
export const FLOOR_ARGS = [
  '-hide_banner',
  '-nostats',
  '-loglevel',
  'info',
  '-benchmark',
  '-protocol_whitelist',
  'pipe',
  '-f',
  'webm',
  '-c:a',
  'opus',
  '-i',
  'pipe:0',
  '-vn',
  '-ac',
  '1',
  '-ar',
  '16000',
  '-f',
  's16le',
  'pipe:1',
];

/** `bench: utime=0.031s stime=0.008s rtime=0.040s` → CPU ms, or undefined. */
export function parseBenchmarkLine(stderr: string): number | undefined {
  const m = /utime=([\d.]+)s\s+stime=([\d.]+)s/.exec(stderr);
  return m ? (Number(m[1]) + Number(m[2])) * 1000 : undefined;
}

/**
 * Decodes `webm` (one whole recording) `runs` times, one process each, and returns the median CPU per audio second.
 * `audioS`: the recording's decoded length.
 */
export function measureFloor(ffmpeg: string, webm: Buffer, audioS: number, runs = 7): FloorMeasurement {
  const figures: number[] = [];
  const before = readStat(process.pid);
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(ffmpeg, FLOOR_ARGS, { input: webm, maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`floor: ffmpeg failed: ${r.stderr?.toString().slice(-300)}`);
    const decodedS = r.stdout.length / 32_000;
    if (Math.abs(decodedS - audioS) > 0.1) throw new Error(`floor: decoded ${decodedS.toFixed(2)} s, expected ${audioS.toFixed(2)} s`);
    const ms = parseBenchmarkLine(r.stderr.toString());
    if (ms !== undefined) figures.push(ms / audioS);
  }
  const after = readStat(process.pid);
  if (!before || !after) throw new Error('floor: /proc/self/stat unreadable');
  const totalMs = after.reapedChildrenCpuMs - before.reapedChildrenCpuMs;
  return { msPerAudioS: totalMs / (runs * audioS), runs: figures, audioS };
}

export function describeFloor(b: FfmpegBuild, f: FloorMeasurement): string {
  return (
    `floor: one ffmpeg process decodes the ${f.audioS.toFixed(2)} s recording with ${f.msPerAudioS.toFixed(2)} ms CPU per audio second ` +
    `(whole process lives, ${f.runs.length} runs; ffmpeg's own -benchmark per run, to the end of decoding: ${f.runs.map((r) => r.toFixed(2)).join(', ')})`
  );
}

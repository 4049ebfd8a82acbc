/**
 * `npx tsx bench/diagnose/in-process-floor.ts [runs=40] [recording]`: what decoding a browser WebM/Opus recording
 * in-process costs (issue 13), next to the floor (one ffmpeg alone, bench/floor.ts). In one process: the
 * recording's chunks, as recorded, through `WebmOpusStream` (demuxer + libopus at 16 kHz mono, sliced over turns of
 * the event loop) `runs` times; CPU is this process's user + system over all runs divided by all the audio decoded
 * (a warm-up run first, not counted). Printed: both figures in ms CPU per audio second, their ratio, the load average.
 */
import { measureFloor, ffmpegBuild } from '../floor';
import { benchFfmpeg } from '../common';
import { loadAverages } from '../proc';
import { loadChunks } from '../../test/helpers/fixtures';
import { WebmOpusStream } from '../../src/services/audio/opus/webm-opus-stream';
import { silentLogger } from '../../src/util/logger';

async function decodeOnce(chunks: Buffer[]): Promise<number> {
  let bytes = 0;
  const stream = new WebmOpusStream({ logger: silentLogger, onPcm: (b) => (bytes += b.length), onFailure: (e) => { throw e; } }); // prettier-ignore
  for (const c of chunks) await stream.write(c);
  await stream.end(5000);
  return bytes / 32_000;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 40);
  const name = process.argv[3] ?? 'chromium-long-22s';
  const chunks = loadChunks(name);
  const loadBefore = loadAverages();
  await decodeOnce(chunks); // warm-up: the addon loaded, the code compiled
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  let audioS = 0;
  for (let i = 0; i < runs; i++) audioS += await decodeOnce(chunks);
  const cpu = process.cpuUsage(t0);
  const wallMs = performance.now() - w0;
  const inProcess = (cpu.user + cpu.system) / 1000 / audioS;
  const ffmpeg = benchFfmpeg();
  const floor = measureFloor(ffmpeg, Buffer.concat(chunks), audioS / runs);
  const wasm = process.env.OPUS_FORCE_WASM ? ' (OPUS_FORCE_WASM: the wasm build)' : '';
  console.log(`recording ${name}: ${(audioS / runs).toFixed(2)} s of audio, ${runs} runs`);
  console.log(`in-process (WebmOpusStream, @evan/opus${wasm}): ${inProcess.toFixed(3)} ms CPU per audio second (${wallMs.toFixed(0)} ms wall for ${audioS.toFixed(0)} s)`);
  console.log(`floor (one ffmpeg alone, ${ffmpegBuild(ffmpeg).version}): ${floor.msPerAudioS.toFixed(3)} ms CPU per audio second`);
  console.log(`ratio in-process / floor: ${(inProcess / floor.msPerAudioS).toFixed(2)}; load average before ${loadBefore}, after ${loadAverages()}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/**
 * `npm run bench -- --sessions N --duration S --transport rest|ws [--mode load|ramp|soak|compare]`
 *
 * Starts the real server (bundled) and the Gemini Live emulator as child processes, drives them from this process,
 * prints what it measured, and ends with one JSON line. See BENCHMARKS.md for the method.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseBenchArgs, UsageError, USAGE, type BenchArgs } from './cli-args';
import { benchFfmpeg, environmentLines, floorFor, loadOnFreshStack, log } from './common';
import { loadRecording } from './fixture';
import { describeRun, smokeLine, summaryLine } from './load-bench';
import { loadAverages } from './proc';
import { buildBundles } from './stack';
import { describeProfile, summarizeProfile } from './profile-summary';
import { runRamp } from './ramp';
import { runSoak } from './soak';
import { runCompare } from './naive/compare';
import { loadOnCluster } from './cluster/instances';

async function main(args: BenchArgs): Promise<void> {
  const ffmpeg = benchFfmpeg(args.serverEnv);
  for (const l of environmentLines(ffmpeg)) log(l);
  const rec = loadRecording(args.recording);
  log(`recording: ${rec.name}, ${rec.chunks.length} chunks of ${rec.timesliceMs} ms, ${(rec.loopMs / 1000).toFixed(2)} s looped; utterances end at ${rec.firstLoop.map((u) => (u.speechEndMs / 1000).toFixed(2)).join(', ')} s`);
  const floor = floorFor(rec, ffmpeg).msPerAudioS;
  const bundles = await buildBundles();

  switch (args.mode) {
    case 'load': {
      if (args.instances > 1) {
        const r = await loadOnCluster(bundles, rec, args);
        for (const l of describeRun(r.load)) log(l);
        log(r.forwardingLine);
        log(`load average at the end ${loadAverages()}`);
        log(JSON.stringify({ ...JSON.parse(summaryLine(r.load)), instances: args.instances, forwarding: r.forwarding }));
        return;
      }
      // Absolute: the server runs in a temporary working directory.
      const profileDir = args.profileDir ? path.resolve(args.profileDir) : undefined;
      if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
      const serverNodeArgs = [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...args.serverNodeArgs];
      if (args.serverNodeArgs.length) log(`server node flags: ${args.serverNodeArgs.join(' ')}`);
      if (Object.keys(args.serverEnv).length) log(`server settings: ${Object.entries(args.serverEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`);
      const r = await loadOnFreshStack(bundles, rec, {
        sessions: args.sessions,
        transport: args.transport === 'both' ? 'rest' : args.transport,
        durationS: args.durationS,
        serverNodeArgs,
        serverEnv: args.serverEnv,
        floorMsPerAudioS: floor,
      });
      for (const l of describeRun(r)) log(l);
      if (profileDir) {
        const files = fs
          .readdirSync(profileDir)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => path.join(profileDir, f))
          .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
        if (files[0]) {
          log(`server CPU profile: ${files[0]}`);
          for (const l of describeProfile(summarizeProfile(JSON.parse(fs.readFileSync(files[0], 'utf8'))))) log(l);
        }
      }
      log(`load average at the end ${loadAverages()}`);
      log(summaryLine(r));
      return;
    }
    case 'smoke': {
      const r = await loadOnFreshStack(bundles, rec, {
        sessions: args.sessions,
        transport: args.transport === 'both' ? 'rest' : args.transport,
        durationS: args.durationS,
        serverEnv: args.serverEnv,
        floorMsPerAudioS: floor,
      });
      for (const l of describeRun(r)) log(l);
      log(smokeLine(r.summary, loadAverages()));
      log(summaryLine(r));
      return;
    }
    case 'ramp': {
      const transports = args.transport === 'both' ? (['rest', 'ws'] as const) : [args.transport];
      const ramps = [];
      for (const transport of transports) ramps.push(await runRamp(bundles, rec, { ...args, transport }, floor));
      log(`load average at the end ${loadAverages()}`);
      const capacity = Object.fromEntries(ramps.map((r) => [r.transport, r.capacity_sessions]));
      log(JSON.stringify(ramps.length === 1 ? { ...ramps[0], capacity, floor_ms_per_audio_s: floor } : { mode: 'ramp', capacity, floor_ms_per_audio_s: floor, ramps }));
      return;
    }
    case 'soak':
      log(JSON.stringify(await runSoak(bundles, rec, args)));
      return;
    case 'compare':
      log(JSON.stringify(await runCompare(bundles, rec, args)));
      return;
  }
}

if (require.main === module) {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const hardStop = setTimeout(() => {
    process.stderr.write('bench: overall time limit reached, exiting\n');
    process.exit(3);
  }, 3 * 60 * 60 * 1000);
  hardStop.unref();
  process.once('SIGINT', () => process.exit(130));
  main(args).then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

/**
 * `npx tsx bench/first-chunk.ts [trials] [pool sizes, e.g. 0,2]`: how long the first chunk of a new recording takes
 * to reach the model, with and without warm decoders (LIVE_AUDIO_DECODER_POOL_SIZE).
 *
 * In one process (server and emulator share `performance.now()`): for each trial a new REST session posts the
 * recording's first chunk (1 s of audio, WebM head included); the figure is from the moment the request is sent
 * to the emulator's receipt of the first audio of that session. Trials are spaced so that the pool has refilled,
 * as it has between two users' recordings. Small N, meant for a quiet-ish machine; the load average is printed.
 * `LIVE_AUDIO_DECODER_LAUNCHER=false` in the environment: decoders forked in-process (default: the ffmpeg launcher).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config';
import { startGeminiLiveEmulator } from '../src/emulator';
import { createLiveAudioServer } from '../src/server';
import { generateApiKey } from '../src/services/auth/api-key';
import { benchFfmpeg, environmentLines, log } from './common';
import { loadRecording } from './fixture';
import { loadAverages } from './proc';
import { BENCH_LIMITS_ENV } from './stack';
import { dist, fmtDist } from './stats';

const API = '/api/v1/live-audio';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function post(port: number, apiKey: string, p: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: p, agent: false, headers: { 'Content-Type': 'application/json', 'X-API-Key': apiKey } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function trialRun(poolSize: number, trials: number, chunk0: string): Promise<number[]> {
  const emu = await startGeminiLiveEmulator({ apiKeys: ['bench-key'], clock: () => performance.now() });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'first-chunk-'));
  const apiKey = generateApiKey();
  const config = loadConfig({
    NODE_ENV: 'test',
    GEMINI_API_KEY: 'bench-key',
    GEMINI_BASE_URL: emu.baseUrl,
    LIVE_AUDIO_API_KEYS: `bench:${apiKey}`,
    LIVE_AUDIO_API_KEYS_FILE: path.join(dir, 'keys.json'),
    FFMPEG_PATH: benchFfmpeg(),
    ...BENCH_LIMITS_ENV,
    LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
    LIVE_AUDIO_DECODER_POOL_SIZE: String(poolSize),
    LIVE_AUDIO_DECODER_LAUNCHER: process.env.LIVE_AUDIO_DECODER_LAUNCHER ?? 'true',
  });
  const server = await createLiveAudioServer(config);
  const port = await server.listen(0, '127.0.0.1');
  const out: number[] = [];
  try {
    // One session stays open throughout (a server in use): the pool is warm between the trials' sessions.
    await post(port, apiKey, `${API}/session/start`, JSON.stringify({ session_id: 'keepalive' }));
    for (let i = 0; i < trials; i++) {
      const id = `first_${i}`;
      if ((await post(port, apiKey, `${API}/session/start`, JSON.stringify({ session_id: id }))) !== 200) throw new Error('session start failed');
      const conn = emu.connections[emu.connections.length - 1]!;
      const sentAt = performance.now();
      const status = await post(port, apiKey, `${API}/transcribe`, `{"session_id":"${id}","format":"webm","audio_data":"${chunk0}"}`);
      if (status !== 200) throw new Error(`transcribe ${status}`);
      const deadline = performance.now() + 10_000;
      let at: number | undefined;
      while (at === undefined && performance.now() < deadline) {
        at = conn.messages.find((m) => m.kind === 'audio' && m.at >= sentAt)?.at;
        if (at === undefined) await sleep(1);
      }
      if (at === undefined) throw new Error('no audio reached the emulator');
      out.push(at - sentAt);
      await post(port, apiKey, `${API}/session/end`, JSON.stringify({ session_id: id }));
      await sleep(300);
    }
  } finally {
    await server.close();
    await emu.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

async function main(): Promise<void> {
  const trials = Number(process.argv[2] ?? 30);
  const sizes = (process.argv[3] ?? '0,2').split(',').map(Number);
  for (const l of environmentLines(benchFfmpeg())) log(l);
  const rec = loadRecording();
  const result: Record<string, unknown> = { trials };
  for (const size of sizes) {
    const d = dist(await trialRun(size, trials, rec.base64[0]));
    log(`pool size ${size}: first chunk of a new recording, request sent → its first audio at the model: ${fmtDist(d)}; load average ${loadAverages()}`);
    result[`pool_${size}`] = { p50_ms: +d.p50.toFixed(1), p90_ms: +d.p90.toFixed(1), p99_ms: +d.p99.toFixed(1), max_ms: +d.max.toFixed(1) };
  }
  log(JSON.stringify(result));
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`first-chunk bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

/**
 * `npx tsx bench/diagnose/rest-request-cpu.ts [requests=3000] [rounds=2]`: the server's CPU per REST request, apart
 * from relaying (issue 13). The bench's own server bundle and environment (bench/stack.ts); `requests` ×
 * `POST /transcribe` of a real 1 s chunk (base64, ~22 KB) from 8 keep-alive sockets, for a session that does not
 * exist, so every request pays HTTP parsing, the middleware chain, authentication, the body read, its shape scan,
 * `JSON.parse`, validation, the error answer and the metrics, and nothing is decoded or sent upstream. 300 warm-up
 * requests first. Printed per round: the server process's user + system CPU divided by the requests, and the load
 * average (CPU time is much less sensitive than latency to what else runs on the machine, but not immune).
 */
import fs from 'node:fs';
import http from 'node:http';
import { hostPlan, log } from '../common';
import { loadRecording } from '../fixture';
import { readStat } from '../proc';
import { buildBundles, startStack } from '../stack';

const requests = Number(process.argv[2] ?? 3000);
const rounds = Number(process.argv[3] ?? 2);
const SOCKETS = 8;

async function main(): Promise<void> {
  const rec = loadRecording();
  const stack = await startStack({ bundles: await buildBundles(), plan: hostPlan(rec, false) });
  const agent = new http.Agent({ keepAlive: true, maxSockets: SOCKETS });
  const body = JSON.stringify({ session_id: 'no-such-session', audio_data: rec.chunks[Math.min(5, rec.chunks.length - 1)].toString('base64'), format: 'webm' });
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-API-Key': stack.apiKey };
  const statuses = new Map<number, number>();
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(`${stack.baseUrl}/api/v1/live-audio/transcribe`, { method: 'POST', agent, headers }, (res) => {
        statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(body);
    });
  const burst = async (n: number) => {
    let next = 0;
    await Promise.all(Array.from({ length: SOCKETS }, async () => {
      while (next++ < n) await post();
    }));
  };
  try {
    await burst(300);
    for (let r = 1; r <= rounds; r++) {
      const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      const before = readStat(stack.server.pid)!.cpuMs;
      await burst(requests);
      await new Promise((res) => setTimeout(res, 300));
      const after = readStat(stack.server.pid)!.cpuMs;
      log(`round ${r}: ${Math.round((1000 * (after - before)) / requests)} µs of server CPU per request (${requests} requests of ${body.length} bytes; load ${load})`);
    }
    log(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
  } finally {
    agent.destroy();
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

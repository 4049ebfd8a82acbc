/**
 * `npx tsx bench/cluster/forwarding-cost.ts [--requests N] [--concurrency C]`
 *
 * What instance-to-instance forwarding adds to a call: the same /transcribe-sized POST (a 1 s MediaRecorder chunk
 * as base64 in JSON, ~22 KB) sent straight to an "owner" process, and sent to a "front" process that forwards it
 * to the owner (Forwarder: a Redis lookup of the peer, keep-alive HTTP, the answer streamed back). Three real
 * processes and a real redis-server; the client keeps its connections alive like a browser. Prints p50/p90/p99 of
 * both and the difference, then one JSON line. Not a capacity figure for the whole server (the owner does no
 * session work here): that is `npm run bench -- --instances 2` once the cluster is wired into the server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startRedis } from '../../test/helpers/redis-server';
import { freePort } from '../../test/helpers/system-binary';

const ROOT = path.resolve(__dirname, '../..');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

function startNode(role: string, port: number, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/cluster/forward-node.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ROLE: role, PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => /ready/.test(d.toString()) && resolve(child));
    child.once('exit', (code) => reject(new Error(`${role} exited ${code}`)));
  });
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

async function run(url: string, body: Buffer, requests: number, concurrency: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const times: number[] = [];
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length, 'x-api-key': 'ak_bench' } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
          times.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) await one();
    }),
  );
  agent.destroy();
  return times.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const requests = arg('requests', 2000);
  const concurrency = arg('concurrency', 4);
  const redis = await startRedis();
  const env = { REDIS_URL: redis.url, SECRET: randomBytes(32).toString('hex'), KEY_PREFIX: 'bench:' };
  const ownerPort = await freePort();
  const frontPort = await freePort();
  const children: ChildProcess[] = [];
  try {
    children.push(await startNode('owner', ownerPort, env));
    children.push(await startNode('front', frontPort, env));
    const body = Buffer.from(JSON.stringify({ session_id: 'bench_1', format: 'webm', audio_data: randomBytes(16_500).toString('base64') }));
    console.log(`${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}; ${requests} POSTs of ${body.length} bytes, ${concurrency} at a time, each way`);
    await run(`http://127.0.0.1:${ownerPort}/t`, body, 200, concurrency); // warm-up
    await run(`http://127.0.0.1:${frontPort}/t`, body, 200, concurrency);
    const direct = await run(`http://127.0.0.1:${ownerPort}/api/v1/live-audio/transcribe`, body, requests, concurrency);
    const forwarded = await run(`http://127.0.0.1:${frontPort}/api/v1/live-audio/transcribe`, body, requests, concurrency);
    const row = (name: string, t: number[]) => `${name.padEnd(10)} p50 ${pct(t, 0.5).toFixed(2)} ms  p90 ${pct(t, 0.9).toFixed(2)} ms  p99 ${pct(t, 0.99).toFixed(2)} ms`;
    console.log(row('direct', direct));
    console.log(row('forwarded', forwarded));
    const added = { p50: pct(forwarded, 0.5) - pct(direct, 0.5), p90: pct(forwarded, 0.9) - pct(direct, 0.9), p99: pct(forwarded, 0.99) - pct(direct, 0.99) };
    console.log(`added by forwarding: p50 ${added.p50.toFixed(2)} ms, p90 ${added.p90.toFixed(2)} ms, p99 ${added.p99.toFixed(2)} ms`);
    console.log(JSON.stringify({ requests, concurrency, bodyBytes: body.length, directMs: { p50: pct(direct, 0.5), p99: pct(direct, 0.99) }, forwardedMs: { p50: pct(forwarded, 0.5), p99: pct(forwarded, 0.99) }, addedMs: added }));
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await redis.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

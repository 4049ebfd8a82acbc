/**
 * `npm run bench -- --instances N [--sessions S --duration D --transport rest|ws]`: the load benchmark against N
 * server instances sharing a real redis-server (cluster mode) behind Debian's nginx doing plain round-robin, so
 * about (N-1)/N of the REST calls are forwarded to the instance owning their session. Then the forwarding cost:
 * the same `GET /session/:id/status` sent to the owner and to another instance (which forwards it), alternately,
 * p50/p99 of both and the difference. CPU and memory figures are the first instance's.
 */
import { START_NODE_FLAGS } from '../../src/config/process-flags';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startNginx } from '../../test/helpers/nginx';
import { startRedis } from '../../test/helpers/redis-server';
import type { BenchArgs } from '../cli-args';
import { hostPlan, log } from '../common';
import { ChunkPlan, type Recording } from '../fixture';
import { runLoadBench, type LoadBenchResult } from '../load-bench';
import { benchServerEnv, Child, delay, freePort, startStack, type Bundles } from '../stack';
import type { ConnectionLag } from '../upstream-lag';

export interface ClusterLoadResult {
  load: LoadBenchResult;
  forwarding: { calls: number; directP50Ms: number; directP99Ms: number; forwardedP50Ms: number; forwardedP99Ms: number; addedP50Ms: number; addedP99Ms: number };
  forwardingLine: string;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const r2 = (x: number) => Math.round(x * 100) / 100;

async function waitReady(url: string, child: Child): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`instance exited:\n${child.output()}`);
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`instance did not become ready:\n${child.output()}`);
    await delay(100);
  }
}

export async function loadOnCluster(bundles: Bundles, rec: Recording, args: BenchArgs): Promise<ClusterLoadResult> {
  const redis = await startRedis();
  const secret = randomBytes(32).toString('hex');
  const clusterEnv = (id: string) => ({ REDIS_URL: redis.url, LIVE_AUDIO_CLUSTER_SECRET: secret, LIVE_AUDIO_INSTANCE_ID: id, TRUST_PROXY: 'loopback' });
  const stack = await startStack({ bundles, plan: hostPlan(rec, true), serverEnv: { ...args.serverEnv, ...clusterEnv('bench-1') } });
  const others: Child[] = [];
  const ports = [Number(new URL(stack.baseUrl).port)];
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  try {
    for (let i = 2; i <= args.instances; i++) {
      const port = await freePort();
      const env = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...benchServerEnv({ port, apiKey: stack.apiKey, keysFile: path.join(stack.workDir, `keys-${i}.json`), geminiBaseUrl: stack.geminiBaseUrl }),
        ...args.serverEnv,
        ...clusterEnv(`bench-${i}`),
      };
      const child = new Child(`server-${i}`, process.execPath, [...START_NODE_FLAGS, bundles.server], { env, cwd: stack.workDir });
      others.push(child);
      await waitReady(`http://127.0.0.1:${port}`, child);
      ports.push(port);
    }
    nginx = await startNginx({ upstreamPorts: ports });
    log(`cluster: ${args.instances} instances (ports ${ports.join(', ')}) sharing redis ${redis.url}, nginx round-robin on ${nginx.url}`);
    const load = await runLoadBench({
      sessions: args.sessions,
      transport: args.transport === 'both' ? 'rest' : args.transport,
      durationS: args.durationS,
      plan: new ChunkPlan(rec),
      target: { baseUrl: nginx.url, wsUrl: `${nginx.url.replace(/^http/, 'ws')}/ws/live-audio`, apiKey: stack.apiKey },
      serverPid: stack.server.proc.pid!,
      emulatorPid: stack.emulator.proc.pid,
      upstreamLags: async () => ((await (await fetch(`${stack.emulatorControlUrl}/lag`)).json()) as { connections: ConnectionLag[] }).connections,
      log: (l) => log(`  · ${l}`),
    });

    // Forwarding cost: a session on instance 1, its status read there and through instance 2, alternately.
    const owner = `http://127.0.0.1:${ports[0]}`;
    const other = `http://127.0.0.1:${ports[1]}`;
    const headers = { 'X-API-Key': stack.apiKey, 'Content-Type': 'application/json' };
    const sid = `fwd_${Date.now()}`;
    const started = await fetch(`${owner}/api/v1/live-audio/session/start`, { method: 'POST', headers, body: JSON.stringify({ session_id: sid }) });
    if (started.status !== 200) throw new Error(`forwarding probe: start answered ${started.status}`);
    const time = async (url: string) => {
      const t0 = performance.now();
      const r = await fetch(`${url}/api/v1/live-audio/session/${sid}/status`, { headers });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`forwarding probe: status answered ${r.status}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 20; i++) await time(i % 2 ? other : owner);
    const direct: number[] = [];
    const forwarded: number[] = [];
    const calls = 300;
    for (let i = 0; i < calls; i++) {
      direct.push(await time(owner));
      forwarded.push(await time(other));
    }
    await fetch(`${owner}/api/v1/live-audio/session/end`, { method: 'POST', headers, body: JSON.stringify({ session_id: sid }) });
    const f = {
      calls,
      directP50Ms: r2(pct(direct, 0.5)),
      directP99Ms: r2(pct(direct, 0.99)),
      forwardedP50Ms: r2(pct(forwarded, 0.5)),
      forwardedP99Ms: r2(pct(forwarded, 0.99)),
      addedP50Ms: r2(pct(forwarded, 0.5) - pct(direct, 0.5)),
      addedP99Ms: r2(pct(forwarded, 0.99) - pct(direct, 0.99)),
    };
    const forwardingLine =
      `forwarding cost (${calls} GET /session/:id/status each, alternating, after the load): on the owner p50 ${f.directP50Ms} ms p99 ${f.directP99Ms} ms; ` +
      `through another instance p50 ${f.forwardedP50Ms} ms p99 ${f.forwardedP99Ms} ms; added p50 ${f.addedP50Ms} ms p99 ${f.addedP99Ms} ms`;
    return { load, forwarding: f, forwardingLine };
  } finally {
    await nginx?.stop();
    for (const c of others) await c.stop();
    await stack.stop();
    await redis.close();
  }
}

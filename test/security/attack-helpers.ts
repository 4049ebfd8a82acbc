/**
 * Measuring a spawned server process while it is attacked: CPU time (Linux /proc), RSS peaks, heap from
 * /metrics. Shared by the test/security suites of this branch.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { rssOf } from '../helpers/spawned-server';

const CLK_TCK = 100;

/** User + system CPU time of a process so far, ms (0 when it is gone). */
export function cpuMsOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

export interface RssSampler {
  /** Stops sampling; the highest RSS seen, bytes. */
  stop(): number;
}

/** Samples a process's RSS every `intervalMs` and keeps the peak. */
export function sampleRss(pid: number, intervalMs = 25): RssSampler {
  let peak = rssOf(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssOf(pid));
    },
  };
}

/** GET /metrics (with the bearer token) as text. */
export function getMetrics(baseUrl: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}/metrics`, { headers: { Authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${res.statusCode}: ${body.slice(0, 200)}`))));
    });
    req.on('error', reject);
  });
}

/** The value of one sample line of a Prometheus text (`name{labels}`), or undefined. */
export function metricValue(text: string, nameWithLabels: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${nameWithLabels} `)) return Number(line.slice(nameWithLabels.length + 1));
  }
  return undefined;
}

/** `node` flags for `spawnServer` that let `collectGarbage` run a full GC in the spawned server (test-only preload). */
export const GC_NODE_ARGS = ['--expose-gc', '--require', path.join(__dirname, 'gc-on-signal.cjs'), '--import', 'tsx'];

/** Asks a server started with `GC_NODE_ARGS` for a full garbage collection, and gives it a moment. */
export async function collectGarbage(pid: number): Promise<void> {
  process.kill(pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 300));
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** Reads the server's Prometheus text exposition (`GET /metrics`). */
import http from 'node:http';

/**
 * GET without keep-alive (`Connection: close`), so the bench never leaves an idle socket open in the server between
 * its measurements of open handles.
 */
export function httpGet(url: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { Connection: 'close' }, timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export class PromSnapshot {
  constructor(readonly samples: Sample[]) {}

  static async fetch(baseUrl: string): Promise<PromSnapshot> {
    const r = await httpGet(`${baseUrl}/metrics`);
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return new PromSnapshot(parseProm(r.body));
  }

  /** Sum of the samples named `name` whose labels include `labels`. NaN when none matches. */
  value(name: string, labels: Record<string, string> = {}): number {
    let found = false;
    let sum = 0;
    for (const s of this.samples) {
      if (s.name !== name) continue;
      if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
      found = true;
      sum += s.value;
    }
    return found ? sum : NaN;
  }

  /** A summary's quantile, in ms. */
  quantileMs(name: string, q: string): number {
    return this.value(name, { quantile: q }) * 1000;
  }
}

/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): where the process spent its CPU, by package / Node core module /
 * own code, and the hottest functions (self time).
 *
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [top]
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Profiled wall time, ms. */
  wallMs: number;
  /** Not idle, ms. */
  busyMs: number;
  byArea: { area: string; ms: number; pct: number }[];
  topFunctions: { fn: string; area: string; ms: number; pct: number }[];
}

/** Where a frame belongs: an npm package, a Node core module, the app's own code, or a V8 pseudo-frame. */
export function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  // The bench's bundle of backend-server.ts (own code; packages stay external), or the sources themselves.
  if (/live-audio-bench[^/]*\/server\.js$/.test(url) || /\/src\/.*\.ts$/.test(url) || /backend-server\.[jt]s$/.test(url)) return 'live-audio (own code)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/').slice(0, 2).join('/');
  return url.split('/').slice(-1)[0];
}

export function summarizeProfile(p: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const wallMs = (p.endTime - p.startTime) / 1000;
  let idleMs = 0;
  const areas = new Map<string, number>();
  const fns = new Map<string, { area: string; ms: number }>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const ms = us / 1000;
    if (functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const key = `${functionName || '(anonymous)'} ${url ? `${url.split('/').slice(-1)[0]}:${lineNumber + 1}` : ''}`.trim();
    const f = fns.get(key) ?? { area, ms: 0 };
    f.ms += ms;
    fns.set(key, f);
  }
  const busyMs = wallMs - idleMs;
  const pct = (ms: number) => Math.round((1000 * ms) / busyMs) / 10;
  return {
    wallMs,
    busyMs,
    byArea: [...areas].sort((a, b) => b[1] - a[1]).map(([area, ms]) => ({ area, ms: Math.round(ms), pct: pct(ms) })),
    topFunctions: [...fns]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, top)
      .map(([fn, f]) => ({ fn, area: f.area, ms: Math.round(f.ms), pct: pct(f.ms) })),
  };
}

export function describeProfile(s: ProfileSummary, areas = 12): string[] {
  return [
    `profile: ${(s.wallMs / 1000).toFixed(1)} s, busy ${(s.busyMs / 1000).toFixed(1)} s (${((100 * s.busyMs) / s.wallMs).toFixed(1)}% of one core on the main thread)`,
    `  by area (self time, % of busy): ${s.byArea
      .slice(0, areas)
      .map((a) => `${a.area} ${a.pct}%`)
      .join(', ')}`,
    '  hottest functions (self time):',
    ...s.topFunctions.map((f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}  [${f.area}]`),
  ];
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const s = summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile, Number(process.argv[3] ?? 15));
  for (const l of describeProfile(s)) process.stdout.write(`${l}\n`);
}

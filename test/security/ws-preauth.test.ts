/**
 * Issue 11 rows 3 and 9, as attacks on a real spawned server process (`backend-server.ts`, default settings):
 *
 * - row 3: strangers open WebSockets and, before authenticating, flood frames while never reading a reply:
 *   1-byte `{}` frames as fast as the socket takes them, and 2 MiB `[[[[…]]]]` frames. Each socket is closed
 *   after a handful of frames, the server's CPU and RSS stay bounded, /health answers within 250 ms throughout,
 *   and the memory is given back.
 * - row 9: 60+ upgrades from one address use up its budget; a valid key still connects.
 *
 * Attackers are raw TCP clients (test/helpers/raw-ws.ts) started with seeded jitter; the seed is in every failure
 * message (`SECURITY_SEED=<n>` replays it). Figures are printed (`ws-preauth:` lines) for the report.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { clientFrame, rawWsConnect, type RawWs } from '../helpers/raw-ws';
import { probeHealth, spawnServer, timedGet, type SpawnedServer } from '../helpers/spawned-server';
import { prng } from '../ops/helpers';
import { connect, connectRefused, wsUrl } from '../helpers/ws-test-client';
import { GC_NODE_ARGS, MiB, collectGarbage, cpuMsOf, getMetrics, metricValue, mib, sampleRss } from './attack-helpers';
import type { FloodResult } from './ws-flood-attacker';

const SEED = Number(process.env.SECURITY_SEED ?? Math.floor(Math.random() * 1e9));
const PATH = '/ws/live-audio';
const METRICS_TOKEN = 'metrics-token-for-the-attack-tests';
/**
 * Each attack keeps this many sockets flooding for ATTACK_MS (a new one as soon as the server drops one), like the
 * issue's 8-second run. The per-address upgrade budget (60 a minute) is off for row 3: an attacker with many
 * addresses is not bound by it, and the pre-auth rules must hold on their own.
 */
const ATTACK_CONCURRENCY = 8;
const ATTACK_MS = 8_000;
const HEALTH_BOUND_MS = 250;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const report = (line: string) => process.stdout.write(`ws-preauth: ${line}\n`);
const because = (what: string) => `${what} (seed ${SEED}; replay with SECURITY_SEED=${SEED})`;

/** Runs the attacker (ws-flood-attacker.ts) as its own process and returns its per-socket results. */
function runAttacker(url: string, mode: 'tiny' | 'nested', seed: number, concurrency = ATTACK_CONCURRENCY, ms = ATTACK_MS): Promise<FloodResult[]> {
  return new Promise((resolve, reject) => {
    const args = [path.join(__dirname, 'ws-flood-attacker.ts'), url, mode, String(concurrency), String(ms), String(seed)];
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd: path.resolve(__dirname, '../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The attacker shares this machine with the server: at the lowest priority it takes only CPU the server and
    // the /health probes leave (a real attacker's CPU is not ours to share).
    try {
      os.setPriority(child.pid!, 19);
    } catch {
      /* already gone */
    }
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`attacker exited ${code}: ${err.slice(-2000)}`));
      resolve((JSON.parse(out.trim().split('\n').pop()!) as { results: FloodResult[] }).results);
    });
  });
}

interface AttackFigures {
  results: FloodResult[];
  cpuMs: number;
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  healthMaxMs: number;
  /** The server's own worst event-loop delay during the attack (its /metrics, reset right before). */
  loopDelayMaxMs: number;
  healthSamples: number;
  healthFailures: number;
  /** `frames` of every 'websocket refused before authentication' log line of this attack. */
  serverFrames: number[];
  reasons: string[];
}

/** Heap and external memory the server retains: measured right after a full GC. */
async function retainedMemory(srv: SpawnedServer): Promise<number> {
  await collectGarbage(srv.pid);
  const m = await getMetrics(srv.url, METRICS_TOKEN);
  const kind = (k: string) => metricValue(m, `live_audio_process_memory_bytes{kind="${k}"}`) ?? NaN;
  return kind('heap_used') + kind('external');
}

/** The worst event-loop delay since the previous scrape (the scrape resets it), ms. */
async function loopDelayMaxMs(srv: SpawnedServer): Promise<number> {
  return (metricValue(await getMetrics(srv.url, METRICS_TOKEN), 'live_audio_event_loop_delay_seconds{quantile="max"}') ?? NaN) * 1000;
}

/** Runs the flooders (another process, seeded start jitter) and measures the server process around them. */
async function attack(srv: SpawnedServer, mode: 'tiny' | 'nested', seed: number): Promise<AttackFigures> {
  const logsBefore = srv.logLines().length;
  const heapBefore = await retainedMemory(srv);
  await loopDelayMaxMs(srv);
  const rssBefore = srv.rss();
  const cpuBefore = cpuMsOf(srv.pid);
  const rss = sampleRss(srv.pid);
  const health = probeHealth(srv.url, 25);
  const results = await runAttacker(srv.url, mode, seed);
  // The server side of every socket is gone (closes are logged) before the numbers are taken.
  const deadline = Date.now() + 5_000;
  const refusedLines = () => srv.logLines().slice(logsBefore).filter((l) => l.msg === 'websocket refused before authentication');
  while (refusedLines().length < results.filter((r) => r.upgraded).length && Date.now() < deadline) await sleep(50);
  const cpuMs = cpuMsOf(srv.pid) - cpuBefore;
  const h = await health.stop();
  const rssPeak = rss.stop();
  const loopDelay = await loopDelayMaxMs(srv);
  // Once it stops: what the server still holds.
  await sleep(500);
  const heapAfter = await retainedMemory(srv);
  const lines = refusedLines();
  return {
    results,
    cpuMs,
    rssBefore,
    rssPeak,
    rssAfter: srv.rss(),
    heapBefore,
    heapAfter,
    healthMaxMs: h.maxMs,
    loopDelayMaxMs: loopDelay,
    healthSamples: h.samples.length,
    healthFailures: h.failures,
    serverFrames: lines.map((l) => Number(l.frames)),
    reasons: [...new Set(lines.map((l) => String(l.reason)))],
  };
}

function describeFigures(name: string, f: AttackFigures): string {
  const sent = f.results.map((r) => r.framesSent);
  const ended = f.results.map((r) => r.endedAfterMs ?? Infinity);
  return (
    `${name}: ${ATTACK_CONCURRENCY} sockets at a time for ${ATTACK_MS} ms, ${f.results.length} in all ` +
    `(${f.results.filter((r) => r.upgraded).length} upgraded); frames the server looked at per socket ` +
    `max ${Math.max(...f.serverFrames)} (${f.reasons.join(', ')}); frames the attacker got into the network before the ` +
    `close: median ${sent.sort((a, b) => a - b)[Math.floor(sent.length / 2)]}, max ${Math.max(...sent)}, ` +
    `${sent.reduce((a, b) => a + b, 0)} in all; closed after ≤ ` +
    `${Math.max(...ended)} ms; server CPU ${f.cpuMs} ms; RSS before ${mib(f.rssBefore)}, peak ${mib(f.rssPeak)} ` +
    `(+${mib(f.rssPeak - f.rssBefore)}), after ${mib(f.rssAfter)}; heap + external after a full GC: before ${mib(f.heapBefore)}, after ` +
    `${mib(f.heapAfter)}; /health max ${f.healthMaxMs.toFixed(1)} ms over ${f.healthSamples} probes ` +
    `(server event-loop delay max ${f.loopDelayMaxMs.toFixed(1)} ms) ` +
    `(${f.healthFailures} failed); seed ${SEED}`
  );
}

function expectBounded(name: string, f: AttackFigures, maxCpuMs: number): void {
  const summary = describeFigures(name, f);
  report(summary);
  expect({ upgraded: f.results.every((r) => r.upgraded), why: because(summary) }).toEqual({ upgraded: true, why: because(summary) });
  // Every socket was refused by the server, after at most LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES + 1 frames.
  expect(f.results.length).toBeGreaterThanOrEqual(ATTACK_CONCURRENCY * 2);
  expect(f.serverFrames).toHaveLength(f.results.length);
  for (const n of f.serverFrames) expect({ n, ok: n <= 5, why: because(summary) }).toMatchObject({ ok: true });
  // ...and dropped: no flooder was left writing until its deadline.
  for (const r of f.results) expect({ ended: r.endedAfterMs !== null && r.endedAfterMs < 5_000, why: because(summary) }).toMatchObject({ ended: true });
  const checks = {
    cpu: f.cpuMs <= maxCpuMs,
    rssGrowthUnder100MiB: f.rssPeak - f.rssBefore < 100 * MiB,
    heapBackWithin20MiB: f.heapAfter - f.heapBefore < 20 * MiB,
    healthUnderBound: f.healthMaxMs < HEALTH_BOUND_MS && f.healthFailures === 0,
  };
  expect({ ...checks, why: because(summary) }).toEqual({
    cpu: true,
    rssGrowthUnder100MiB: true,
    heapBackWithin20MiB: true,
    healthUnderBound: true,
    why: because(summary),
  });
}

describe(`WebSocket frames before authentication, replies never read (issue 11 row 3; seed ${SEED})`, () => {
  let srv: SpawnedServer;
  beforeAll(async () => {
    // (GC_NODE_ARGS: a test-only SIGUSR2 → full GC hook, to measure what the server retains.)
    srv = await spawnServer({ nodeArgs: GC_NODE_ARGS, env: { METRICS_TOKEN, LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: '0' } });
    // Warm up (JIT, first upgrade and refusal paths, the first allocations) before measuring.
    for (let i = 0; i < 5; i++) await timedGet(`${srv.url}/health`);
    const warm = await rawWsConnect(srv.url, PATH);
    await warm.write(clientFrame('{}'));
    await warm.ended;
    await runAttacker(srv.url, 'tiny', SEED, 2, 1_000);
    await runAttacker(srv.url, 'nested', SEED, 2, 1_000);
  }, 60_000);
  afterAll(async () => srv?.stop());

  it('a flood of 1-byte {} frames: closed after a few frames each, CPU/RSS bounded, /health fast', async () => {
    const f = await attack(srv, 'tiny', SEED);
    expect(f.reasons.every((r) => r === 'not_auth' || r === 'too_many_frames')).toBe(true);
    // CPU over the 8 s, including ~0.7 s for the ~300 /health probes themselves (measured alone); the run
    // took ~11 s of CPU for the same 8 s.
    expectBounded('{} flood', f, 2_500);
  }, 60_000);

  it('2 MiB nested frames: refused unparsed, CPU/RSS bounded, /health fast', async () => {
    const f = await attack(srv, 'nested', SEED + 1);
    expect(f.reasons).toEqual(['frame_too_large']);
    expectBounded('2 MiB nested frames', f, 2_500);
  }, 60_000);
});

describe(`60+ upgrades from one address, then a valid key (issue 11 row 9; seed ${SEED})`, () => {
  let srv: SpawnedServer;
  beforeAll(async () => {
    srv = await spawnServer({ env: { LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: '5' } });
  }, 60_000);
  afterAll(async () => srv?.stop());

  it('strangers use up the address budget; valid credentials on the upgrade still connect', async () => {
    const rand = prng(SEED + 2);
    const statuses: number[] = [];
    const held: RawWs[] = [];
    for (let i = 0; i < 70; i++) {
      try {
        held.push(await rawWsConnect(srv.url, PATH));
        statuses.push(101);
      } catch (err) {
        statuses.push(Number(/HTTP\/1\.1 (\d+)/.exec((err as Error).message)?.[1] ?? 0));
      }
      if (rand() < 0.2) await sleep(1);
    }
    report(`row 9: 70 anonymous upgrades from 127.0.0.1 → ${statuses.filter((s) => s === 101).length} × 101, ${statuses.filter((s) => s === 429).length} × 429`);
    expect({ accepted: statuses.filter((s) => s === 101).length, refused: statuses.filter((s) => s === 429).length, why: because('row 9') }).toEqual({
      accepted: 60,
      refused: 10,
      why: because('row 9'),
    });
    // The budget holds against strangers...
    const stranger = await connectRefused(wsUrl(srv.url));
    expect(stranger).toMatchObject({ status: 429, body: { code: 'CONNECTION_RATE_LIMITED' } });
    // ...but a valid key on the upgrade connects, in the query (browsers) and in a header.
    const byQuery = await connect(wsUrl(srv.url, { token: srv.keys.alice }));
    expect((await byQuery.next('auth_success')).user.username).toBe('alice');
    const byHeader = await connect(wsUrl(srv.url), { headers: { 'X-API-Key': srv.keys.bob } });
    expect((await byHeader.next('auth_success')).user.username).toBe('bob');
    byQuery.send({ type: 'ping' });
    await byQuery.next('pong');
    byQuery.close();
    byHeader.close();
    for (const c of held) c.destroy();
  }, 60_000);
});

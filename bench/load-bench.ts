/**
 * One load run against a running server: start N sessions, let them stream through a steady phase while sampling
 * the server's CPU and memory from /proc, then stop and put together the figures (the one-line JSON summary and the
 * details behind it).
 */
import { ChunkPlan } from './fixture';
import { LoadGenerator, type LoadTarget, type SessionReport, type Transport } from './load';
import { cpuBetween, machineCpuMs, readStat, sampleTree, type TreeSample } from './proc';
import { PromSnapshot } from './prom';
import { dist, fmtDist, mean, quantile, round, type Dist } from './stats';
import type { ConnectionLag } from './upstream-lag';

/** The sampling interval of the server's event-loop delay monitor (Metrics' default), included in its values. */
export const EVENT_LOOP_RESOLUTION_MS = 20;

/**
 * Issue 13's "kept up": the steady phase's upstream lag p99 within this much of real time, every session started, 0
 * errors. (Sessions with any single chunk over it are counted apart, as `sessions_behind`.)
 */
export const KEPT_UP_LAG_MS = 100;

/** Kept up with real time, as issue 13 defines it; the ramp's steps are judged by the same rule. */
export function keptUp(s: Pick<LoadSummary, 'sessions' | 'sessions_started' | 'errors' | 'lag_p99_ms'>): boolean {
  return s.sessions_started === s.sessions && s.errors === 0 && s.lag_p99_ms !== null && s.lag_p99_ms <= KEPT_UP_LAG_MS;
}

export interface LoadBenchOptions {
  sessions: number;
  transport: Transport;
  durationS: number;
  plan: ChunkPlan;
  target: LoadTarget;
  /** The server process (CPU, RSS, ffmpeg children). */
  serverPid: number;
  /** The emulator's process, when it runs on its own (its CPU is reported separately). */
  emulatorPid?: number;
  /**
   * The floor measured at the start of the run (bench/floor.ts): one ffmpeg's CPU ms per audio second. The summary
   * reports the server's CPU per session-second as a multiple of it (`cost_ratio`).
   */
  floorMsPerAudioS?: number;
  /** Per-connection upstream lag (emulator side). */
  upstreamLags: () => Promise<ConnectionLag[]>;
  /** Session starts are spread over this window; default 15 ms per session, between 1 and 10 s. */
  startWindowMs?: number;
  /** Pause between the last start and the steady phase. Default 2 s. */
  settleMs?: number;
  log?: (line: string) => void;
}

/** The one-line summary (plus a few extra fields after the required ones). */
export interface LoadSummary {
  sessions: number;
  transport: Transport;
  duration_s: number;
  kept_up: boolean;
  relay_p50_ms: number | null;
  relay_p99_ms: number | null;
  transcribe_p50_ms: number | null;
  transcribe_p99_ms: number | null;
  words_after_speech_p50_ms: number | null;
  cpu_pct: number | null;
  rss_mb: number | null;
  children_rss_mb: number | null;
  mb_per_session: number | null;
  // extras
  lag_p99_ms: number | null;
  lag_max_ms: number | null;
  /** Sessions with at least one steady-phase chunk later than KEPT_UP_LAG_MS (0 = even the worst chunk was on time). */
  sessions_behind: number;
  send_lag_max_ms: number | null;
  node_cpu_pct: number | null;
  ffmpeg_cpu_pct: number | null;
  children_pss_mb: number | null;
  cpu_ms_per_session_s: number | null;
  /** Node's and ffmpeg's shares of it. */
  node_ms_per_session_s: number | null;
  ffmpeg_ms_per_session_s: number | null;
  /** One ffmpeg's CPU per audio second on this machine (measured at the start of the run). */
  floor_ms_per_audio_s: number | null;
  /** cpu_ms_per_session_s ÷ floor_ms_per_audio_s. */
  cost_ratio: number | null;
  /** REST: the server's own /transcribe handling (request received to response sent, minus the designed wait for news). */
  transcribe_handling_p50_ms: number | null;
  transcribe_handling_p99_ms: number | null;
  relay_le_10ms_pct: number | null;
  event_loop_p99_ms: number | null;
  emulator_cpu_pct: number | null;
  loadgen_cpu_pct: number | null;
  /** CPU used by processes other than the bench's own during the steady phase (% of one core): should be ~0. */
  other_cpu_pct: number | null;
  /** Of `other_cpu_pct`: CPU the hypervisor gave to other guests while this machine wanted it (% of one core). */
  steal_cpu_pct: number | null;
  sessions_started: number;
  errors: number;
}

export const REQUIRED_SUMMARY_FIELDS = [
  'sessions',
  'transport',
  'duration_s',
  'kept_up',
  'relay_p50_ms',
  'relay_p99_ms',
  'transcribe_p50_ms',
  'transcribe_p99_ms',
  'words_after_speech_p50_ms',
  'cpu_pct',
  'rss_mb',
  'children_rss_mb',
  'mb_per_session',
  'floor_ms_per_audio_s',
  'cost_ratio',
  'transcribe_handling_p50_ms',
  'transcribe_handling_p99_ms',
] as const;

export interface LoadBenchResult {
  summary: LoadSummary;
  details: {
    startPhaseS: number;
    steadyWallS: number;
    startMs: Dist;
    sendLagMs: Dist;
    lagSteadyMs: Dist;
    lagAllMs: Dist;
    /** Steady-phase lag of the chunks that start a new recording (a new decoding stream: in-process, or an ffmpeg) versus the others. */
    lagStreamStartMs: Dist;
    lagContinuationMs: Dist;
    sessionsBehind: number;
    upstreamConnections: number;
    transcribeClientMs: Dist;
    transcribeServer: { p50: number; p90: number; p99: number };
    /** The server's /transcribe time without the designed wait for news. */
    transcribeHandling: { p50: number; p90: number; p99: number };
    relayServer: { p50: number; p90: number; p99: number };
    words: { fromSpeechEndChunk: Dist; fromTurnEndChunk: Dist; fromSpokenEnd: Dist; missed: number };
    memory: { baselineRssMb: number; steadyRssMb: number; peakRssMb: number; childrenRssMb: number; childrenPssMb: number; ffmpegAlive: number };
    cpu: { nodePct: number; ffmpegPct: number; emulatorPct: number; loadgenPct: number };
    eventLoop: { p50Ms: number; p99Ms: number; maxMs: number };
    errors: string[];
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (kb: number) => kb / 1024;

export async function runLoadBench(o: LoadBenchOptions): Promise<LoadBenchResult> {
  const log = o.log ?? (() => undefined);
  const startWindowMs = o.startWindowMs ?? Math.min(10_000, Math.max(1_000, o.sessions * 15));
  const settleMs = o.settleMs ?? 2_000;

  await sleep(500);
  const baseline = sampleTree(o.serverPid);
  if (!baseline) throw new Error('server process not found');

  const t0 = performance.now();
  const gen = new LoadGenerator(o.target, { sessions: o.sessions, transport: o.transport, plan: o.plan, startWindowMs });
  log(`starting ${o.sessions} ${o.transport} sessions over ${(startWindowMs / 1000).toFixed(1)} s`);
  await gen.start();
  log(`${gen.started}/${o.sessions} sessions started in ${((performance.now() - t0) / 1000).toFixed(1)} s; settling`);
  await sleep(settleMs);

  // Steady phase.
  const steadyStartRel = performance.now() - t0;
  await PromSnapshot.fetch(o.target.baseUrl); // resets the event-loop delay window
  const s0 = sampleTree(o.serverPid);
  if (!s0) throw new Error('the server process exited before the steady phase');
  const emu0 = o.emulatorPid ? readStat(o.emulatorPid) : undefined;
  const gen0 = process.cpuUsage();
  const m0 = machineCpuMs();
  const h0 = await PromSnapshot.fetch(o.target.baseUrl);
  const samples: TreeSample[] = [s0];
  log(`steady phase: ${o.durationS} s`);
  const end = performance.now() + o.durationS * 1000;
  while (performance.now() < end - 1000) {
    await sleep(Math.min(1000, end - performance.now() - 1000));
    const s = sampleTree(o.serverPid);
    if (s) samples.push(s);
  }
  await sleep(Math.max(0, end - performance.now()));
  const s1 = sampleTree(o.serverPid, { pss: true });
  if (!s1) throw new Error('the server process exited during the steady phase');
  samples.push(s1);
  const emu1 = o.emulatorPid ? readStat(o.emulatorPid) : undefined;
  const genCpu = process.cpuUsage(gen0);
  const m1 = machineCpuMs();
  const prom = await PromSnapshot.fetch(o.target.baseUrl);
  const steadyWallS = (s1.at - s0.at) / 1000;

  log('stopping sessions');
  await gen.stop();
  const lags = await o.upstreamLags();
  const reports = gen.reports();

  const machineBusyMs = m1.busyMs - m0.busyMs;
  const machineStealMs = m1.stealMs - m0.stealMs;
  return summarize({ o, reports, lags, baseline, s0, s1, samples, emu0, emu1, genCpu, prom, h0, steadyStartRel, steadyWallS, machineBusyMs, machineStealMs });
}

interface Collected {
  o: LoadBenchOptions;
  reports: SessionReport[];
  lags: ConnectionLag[];
  baseline: TreeSample;
  s0: TreeSample;
  s1: TreeSample;
  samples: TreeSample[];
  emu0: ReturnType<typeof readStat>;
  emu1: ReturnType<typeof readStat>;
  genCpu: NodeJS.CpuUsage;
  prom: PromSnapshot;
  h0: PromSnapshot;
  steadyStartRel: number;
  steadyWallS: number;
  /** CPU time the whole machine used in the steady phase (every process), ms. */
  machineBusyMs: number;
  /** Of which stolen by the hypervisor (other guests ran on our cores), ms. */
  machineStealMs: number;
}

function summarize(c: Collected): LoadBenchResult {
  const { o, reports, lags, s0, s1, samples, prom } = c;
  const N = o.sessions;
  const timeslice = o.plan.rec.timesliceMs;
  // Chunks scheduled inside the steady phase for every session (sessions started at or after t0).
  const nMin = Math.ceil(c.steadyStartRel / timeslice);

  const cpu = cpuBetween(s0, s1);
  const childrenRss = (s: TreeSample) => s.children.reduce((t, ch) => t + ch.rssKb, 0);
  const steadyRssKb = mean(samples.map((s) => s.self.rssKb));
  const peakRssKb = Math.max(...samples.map((s) => s.self.rssKb));
  const childrenRssKb = mean(samples.map(childrenRss));
  const childrenPssKb = s1.children.reduce((t, ch) => t + (ch.pssKb ?? 0), 0);
  const emulatorPct = c.emu0 && c.emu1 ? (100 * (c.emu1.cpuMs - c.emu0.cpuMs)) / (c.steadyWallS * 1000) : NaN;
  const loadgenPct = (100 * (c.genCpu.user + c.genCpu.system)) / 1000 / (c.steadyWallS * 1000);
  // Everything else running on the machine meanwhile (colleagues' tests...): busy CPU minus the bench's processes.
  const machinePct = (100 * c.machineBusyMs) / (c.steadyWallS * 1000);
  // (Clamped at 0: the process and machine counters are read a few ms apart, at 10 ms resolution.)
  const otherPct = Math.max(0, machinePct - (cpu.selfPct + cpu.childrenPct) - (Number.isFinite(emulatorPct) ? emulatorPct : 0) - loadgenPct);
  const stealPct = (100 * c.machineStealMs) / (c.steadyWallS * 1000);

  const lagSteady = lags.flatMap((l) => l.lags.slice(nMin));
  const lagAll = lags.flatMap((l) => l.lags);
  const perLoop = o.plan.perLoop;
  const lagStart = lags.flatMap((l) => l.lags.filter((_, n) => n >= nMin && n % perLoop === 0));
  const lagCont = lags.flatMap((l) => l.lags.filter((_, n) => n >= nMin && n % perLoop !== 0));
  const sessionsBehind = lags.filter((l) => l.lags.slice(nMin).some((x) => x > KEPT_UP_LAG_MS)).length;
  const sendLags = reports.flatMap((r) => r.sendLagsMs.slice(nMin));
  const errors = reports.flatMap((r) => r.errors.map((e) => `${r.id}: ${e}`));
  const started = reports.filter((r) => Number.isFinite(r.startMs) && r.chunksSent > 0).length;
  const transcribe = reports.flatMap((r) => r.transcribeMs);
  const words = reports.flatMap((r) => r.words);
  const missed = reports.reduce((t, r) => t + r.missedTurns, 0);

  const relay = {
    p50: prom.quantileMs('live_audio_relay_latency_recent_seconds', '0.5'),
    p90: prom.quantileMs('live_audio_relay_latency_recent_seconds', '0.9'),
    p99: prom.quantileMs('live_audio_relay_latency_recent_seconds', '0.99'),
  };
  const tHandling = {
    p50: prom.quantileMs('live_audio_transcribe_handling_recent_seconds', '0.5'),
    p90: prom.quantileMs('live_audio_transcribe_handling_recent_seconds', '0.9'),
    p99: prom.quantileMs('live_audio_transcribe_handling_recent_seconds', '0.99'),
  };
  const tServer = {
    p50: prom.quantileMs('live_audio_transcribe_duration_recent_seconds', '0.5'),
    p90: prom.quantileMs('live_audio_transcribe_duration_recent_seconds', '0.9'),
    p99: prom.quantileMs('live_audio_transcribe_duration_recent_seconds', '0.99'),
  };
  // Steady-phase share of chunks relayed within 10 ms, from the histogram's exact 10 ms bucket edge.
  const bucket = (p: PromSnapshot, le: string) => p.value('live_audio_relay_latency_seconds_bucket', { le });
  const steadyCount = bucket(prom, '+Inf') - bucket(c.h0, '+Inf');
  const le10 = steadyCount > 0 ? (100 * (bucket(prom, '0.01') - bucket(c.h0, '0.01'))) / steadyCount : NaN;
  // monitorEventLoopDelay records the timer interval itself (20 ms resolution in Metrics): subtract it.
  const loopDelay = (q: string) => prom.value('live_audio_event_loop_delay_seconds', { quantile: q }) * 1000 - EVENT_LOOP_RESOLUTION_MS;
  const eventLoop = { p50Ms: loopDelay('0.5'), p99Ms: loopDelay('0.99'), maxMs: loopDelay('max') };
  const cpuPct = cpu.selfPct + cpu.childrenPct;
  const lagD = dist(lagSteady);
  const sendD = dist(sendLags);
  const transcribeD = dist(transcribe);
  const perSessionS = (ms: number) => (ms / N / cpu.wallMs) * 1000;
  const msPerSessionS = perSessionS(cpu.selfMs) + perSessionS(cpu.childrenMs);
  const floor = o.floorMsPerAudioS;
  const rest = o.transport === 'rest';

  const summary: LoadSummary = {
    sessions: N,
    transport: o.transport,
    duration_s: o.durationS,
    kept_up: false, // below, from the figures
    relay_p50_ms: round(relay.p50, 2),
    relay_p99_ms: round(relay.p99, 2),
    transcribe_p50_ms: o.transport === 'rest' ? round(transcribeD.p50, 1) : null,
    transcribe_p99_ms: o.transport === 'rest' ? round(transcribeD.p99, 1) : null,
    words_after_speech_p50_ms: round(quantile(words.map((w) => w.fromSpeechEndChunkMs), 0.5), 0),
    cpu_pct: round(cpuPct, 1),
    rss_mb: round(mb(steadyRssKb), 1),
    children_rss_mb: round(mb(childrenRssKb), 1),
    mb_per_session: round(mb(steadyRssKb - c.baseline.self.rssKb) / N, 3),
    lag_p99_ms: round(lagD.p99, 1),
    lag_max_ms: round(lagD.max, 1),
    sessions_behind: sessionsBehind,
    send_lag_max_ms: round(sendD.max, 1),
    node_cpu_pct: round(cpu.selfPct, 1),
    ffmpeg_cpu_pct: round(cpu.childrenPct, 1),
    children_pss_mb: round(mb(childrenPssKb), 1),
    cpu_ms_per_session_s: round(msPerSessionS, 2),
    node_ms_per_session_s: round(perSessionS(cpu.selfMs), 2),
    ffmpeg_ms_per_session_s: round(perSessionS(cpu.childrenMs), 2),
    floor_ms_per_audio_s: floor !== undefined ? round(floor, 2) : null,
    cost_ratio: floor !== undefined && floor > 0 ? round(msPerSessionS / floor, 2) : null,
    transcribe_handling_p50_ms: rest ? round(tHandling.p50, 2) : null,
    transcribe_handling_p99_ms: rest ? round(tHandling.p99, 2) : null,
    relay_le_10ms_pct: round(le10, 2),
    event_loop_p99_ms: round(eventLoop.p99Ms, 1),
    emulator_cpu_pct: round(emulatorPct, 1),
    loadgen_cpu_pct: round(loadgenPct, 1),
    other_cpu_pct: round(otherPct, 1),
    steal_cpu_pct: round(stealPct, 1),
    sessions_started: started,
    errors: errors.length,
  };
  summary.kept_up = lagSteady.length > 0 && lags.length >= N && keptUp(summary);

  return {
    summary,
    details: {
      startPhaseS: c.steadyStartRel / 1000,
      steadyWallS: c.steadyWallS,
      startMs: dist(reports.map((r) => r.startMs).filter(Number.isFinite)),
      sendLagMs: sendD,
      lagSteadyMs: lagD,
      lagAllMs: dist(lagAll),
      lagStreamStartMs: dist(lagStart),
      lagContinuationMs: dist(lagCont),
      sessionsBehind,
      upstreamConnections: lags.length,
      transcribeClientMs: transcribeD,
      transcribeServer: tServer,
      transcribeHandling: tHandling,
      relayServer: relay,
      words: {
        fromSpeechEndChunk: dist(words.map((w) => w.fromSpeechEndChunkMs)),
        fromTurnEndChunk: dist(words.map((w) => w.fromTurnEndChunkMs)),
        fromSpokenEnd: dist(words.map((w) => w.fromSpokenEndMs)),
        missed,
      },
      memory: {
        baselineRssMb: mb(c.baseline.self.rssKb),
        steadyRssMb: mb(steadyRssKb),
        peakRssMb: mb(peakRssKb),
        childrenRssMb: mb(childrenRssKb),
        childrenPssMb: mb(childrenPssKb),
        ffmpegAlive: prom.value('live_audio_ffmpeg_processes_alive'),
      },
      cpu: { nodePct: cpu.selfPct, ffmpegPct: cpu.childrenPct, emulatorPct, loadgenPct },
      eventLoop,
      errors: errors.slice(0, 10),
    },
  };
}

/** The last line the bench prints. */
export function summaryLine(r: LoadBenchResult): string {
  return JSON.stringify(r.summary);
}

/** `bench:smoke`'s one line for people (CI prints it): the cost ratio and the relay's p99, with what they depend on. */
export function smokeLine(s: LoadSummary, loadAverages: string): string {
  const v = (x: number | null, unit = '') => (x === null ? '-' : `${x}${unit}`);
  return (
    `bench:smoke ${s.sessions} ${s.transport} sessions × ${s.duration_s} s: cost ratio ${v(s.cost_ratio)}× the floor ` +
    `(${v(s.cpu_ms_per_session_s)} ms CPU per session-second = node ${v(s.node_ms_per_session_s)} + ffmpeg ${v(s.ffmpeg_ms_per_session_s)}; ` +
    `floor ${v(s.floor_ms_per_audio_s)} ms per audio second), relay p99 ${v(s.relay_p99_ms, ' ms')} (p50 ${v(s.relay_p50_ms, ' ms')}), ` +
    `kept up ${s.kept_up ? 'yes' : 'no'}, errors ${s.errors}, load average ${loadAverages}`
  );
}

/** Human-readable lines for one run. */
export function describeRun(r: LoadBenchResult): string[] {
  const s = r.summary;
  const d = r.details;
  const f = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
  return [
    `sessions ${s.sessions} (${s.sessions_started} started) over ${s.transport}, steady ${f(d.steadyWallS)} s after a ${f(d.startPhaseS)} s start phase`,
    `kept up with real time: ${s.kept_up ? 'yes' : 'NO'} (upstream lag p99 ≤ ${KEPT_UP_LAG_MS} ms: ${fmtDist(d.lagSteadyMs)}; ${d.sessionsBehind} sessions had a chunk over ${KEPT_UP_LAG_MS} ms; client send lag ${fmtDist(d.sendLagMs)})`,
    `  upstream lag incl. start phase: ${fmtDist(d.lagAllMs)}; upstream connections ${d.upstreamConnections}`,
    `  steady lag of chunks starting a new recording (new decoding stream): ${fmtDist(d.lagStreamStartMs)}; of the others: ${fmtDist(d.lagContinuationMs)}`,
    `relay-added latency (server, last ≤60 s): p50 ${f(d.relayServer.p50, 2)} / p90 ${f(d.relayServer.p90, 2)} / p99 ${f(d.relayServer.p99, 2)} ms; ${f(s.relay_le_10ms_pct ?? NaN, 2)}% of steady chunks ≤ 10 ms`,
    ...(s.transport === 'rest'
      ? [
          `/transcribe latency (client): ${fmtDist(d.transcribeClientMs)}; server p50 ${f(d.transcribeServer.p50)} / p99 ${f(d.transcribeServer.p99)} ms`,
          `  server handling without the designed wait for news: p50 ${f(d.transcribeHandling.p50, 2)} / p90 ${f(d.transcribeHandling.p90, 2)} / p99 ${f(d.transcribeHandling.p99, 2)} ms`,
        ]
      : []),
    `user's words after end of speech: from its chunk's send ${fmtDist(d.words.fromSpeechEndChunk)}`,
    `  from the chunk completing the VAD silence ${fmtDist(d.words.fromTurnEndChunk)}; from the spoken end ${fmtDist(d.words.fromSpokenEnd)}; missed turns ${d.words.missed}`,
    `server CPU: node ${f(d.cpu.nodePct)}% + ffmpeg ${f(d.cpu.ffmpegPct)}% = ${f(s.cpu_pct ?? NaN)}% of one core (${f((s.cpu_pct ?? NaN) / 2)}% of both); ${f(s.cpu_ms_per_session_s ?? NaN, 2)} ms CPU per session-second (node ${f(s.node_ms_per_session_s ?? NaN, 2)} + ffmpeg ${f(s.ffmpeg_ms_per_session_s ?? NaN, 2)})`,
    `cost ratio: ${f(s.cost_ratio ?? NaN, 2)} × the floor of ${f(s.floor_ms_per_audio_s ?? NaN, 2)} ms CPU per audio second (one ffmpeg alone)`,
    `server memory: node RSS ${f(d.memory.steadyRssMb)} MB (baseline ${f(d.memory.baselineRssMb)}, peak ${f(d.memory.peakRssMb)}) → ${f(s.mb_per_session ?? NaN, 3)} MB/session; ffmpeg children (${d.memory.ffmpegAlive}) RSS ${f(d.memory.childrenRssMb)} MB, PSS ${f(d.memory.childrenPssMb)} MB (${f(d.memory.childrenPssMb / s.sessions, 2)} MB/session)`,
    `event-loop delay (beyond the 20 ms sampling interval) p50 ${f(d.eventLoop.p50Ms)} / p99 ${f(d.eventLoop.p99Ms)} / max ${f(d.eventLoop.maxMs)} ms; session start ${fmtDist(d.startMs)}`,
    `other processes: emulator ${f(d.cpu.emulatorPct)}%, load generator ${f(d.cpu.loadgenPct)}%, everything else on the machine ${f(s.other_cpu_pct ?? NaN)}% of one core (of which stolen by the hypervisor for other guests ${f(s.steal_cpu_pct ?? NaN)}%)`,
    ...(d.errors.length ? [`errors (${s.errors}): ${d.errors.join(' | ')}`] : []),
  ];
}

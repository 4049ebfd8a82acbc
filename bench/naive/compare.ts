/**
 * Compare mode: the same chunk schedule (N sessions, real time, random phase) through three decoding designs, each
 * in a worker process of its own, measured from outside (/proc: the worker and its ffmpeg children). Also checks
 * what each design delivers against a whole-file decode of the same bytes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchArgs } from '../cli-args';
import { log } from '../common';
import { FIXTURES_DIR, ffmpegPath, type Recording } from '../fixture';
import { cpuBetween, readPssKb, sampleTree, type TreeSample } from '../proc';
import { Child, type Bundles } from '../stack';
import { fmtDist, round } from '../stats';
import { designFactory, type DesignName } from './decoders';
import type { WorkerConfig, WorkerResult } from './worker';

export interface DesignFigures {
  design: DesignName;
  sessions: number;
  kept_up: boolean;
  cpu_pct: number | null;
  cpu_ms_per_session_s: number | null;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  latency_max_ms: number | null;
  chunks_skipped: number;
  chunks_failed: number;
  audio_delivered_pct: number | null;
  peak_processes: number;
  children_rss_mb: number | null;
  children_pss_mb: number | null;
  spawns_per_s: number | null;
}

export interface QualityFigures {
  design: DesignName;
  samples_pct: number;
  identical_to_whole_file_decode: boolean;
  /** Mean over chunks of the best correlation (±100 ms) between the chunk's output and the reference at its place. */
  mean_chunk_correlation: number;
}

/** Runs one design in a worker and measures it. */
async function runDesign(bundles: Bundles, rec: Recording, design: DesignName, sessions: number, durationS: number): Promise<{ r: WorkerResult; f: DesignFigures }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-bench-naive-'));
  const cfgFile = path.join(dir, 'config.json');
  const cfg: WorkerConfig = {
    design,
    sessions,
    durationS,
    recordingDir: path.join(FIXTURES_DIR, rec.name),
    chunkEndMs: rec.chunkEndMs,
    loopMs: rec.loopMs,
    timesliceMs: rec.timesliceMs,
    ffmpegPath: ffmpegPath(),
    startWindowMs: Math.min(10_000, Math.max(1_000, sessions * 15)),
  };
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  let begin: (() => void) | undefined;
  let end: ((r: WorkerResult) => void) | undefined;
  const begun = new Promise<void>((r) => (begin = r));
  const ended = new Promise<WorkerResult>((r) => (end = r));
  const child = new Child(`naive-${design}`, process.execPath, [bundles.naiveWorker, cfgFile], {
    env: { PATH: process.env.PATH ?? '' },
    cwd: dir,
    onStdoutLine: (l) => {
      if (l === 'BEGIN') begin?.();
      else if (l.startsWith('END ')) end?.(JSON.parse(l.slice(4)));
    },
  });
  try {
    await Promise.race([begun, child.exited.then(() => Promise.reject(new Error(`worker exited:\n${child.output()}`)))]);
    const s0 = sampleTree(child.pid)!;
    let peak = 0;
    const rss: number[] = [];
    const pss: number[] = [];
    let last: TreeSample = s0;
    const sampler = setInterval(() => {
      const s = sampleTree(child.pid);
      if (!s) return;
      last = s;
      peak = Math.max(peak, s.children.length);
      rss.push(s.children.reduce((t, c) => t + c.rssKb, 0));
      // PSS of every child is costly to read; sample it every few seconds.
      if (rss.length % 5 === 0) pss.push(s.children.reduce((t, c) => t + (readPssKb(c.pid) ?? 0), 0));
    }, 1000);
    const deadline = (durationS + 120) * 1000;
    const r = await Promise.race([
      ended,
      child.exited.then(() => Promise.reject(new Error(`worker exited:\n${child.output()}`))),
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`worker ${design} took too long`)), deadline)),
    ]);
    clearInterval(sampler);
    const s1 = sampleTree(child.pid) ?? last;
    const cpu = cpuBetween(s0, s1);
    const cpuMs = cpu.selfMs + cpu.childrenMs;
    const spawnsPerS = design === 'long-lived' ? NaN : r.chunksDone / cpu.wallMs * 1000;
    const avg = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
    const f: DesignFigures = {
      design,
      sessions,
      kept_up: r.chunksSkipped === 0 && r.chunksFailed === 0 && r.latencyMs.p99 <= 100,
      cpu_pct: round(cpu.selfPct + cpu.childrenPct, 1),
      cpu_ms_per_session_s: round(cpuMs / r.sessionSeconds, 2),
      latency_p50_ms: round(r.latencyMs.p50, 1),
      latency_p99_ms: round(r.latencyMs.p99, 1),
      latency_max_ms: round(r.latencyMs.max, 1),
      chunks_skipped: r.chunksSkipped,
      chunks_failed: r.chunksFailed,
      audio_delivered_pct: round((100 * r.samplesDelivered) / r.samplesExpected, 1),
      peak_processes: peak,
      children_rss_mb: round(avg(rss) / 1024, 1),
      children_pss_mb: round(avg(pss) / 1024, 1),
      spawns_per_s: round(spawnsPerS, 1),
    };
    return { r, f };
  } finally {
    await child.stop(5_000);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One session, one loop of the recording, chunk after chunk: what each design outputs versus a whole-file decode. */
export async function qualityCheck(rec: Recording, design: DesignName): Promise<QualityFigures> {
  const ff = ffmpegPath();
  const per = rec.chunks.length;
  const cumEndMs = (n: number) => Math.floor(n / per) * rec.loopMs + rec.chunkEndMs[n % per];
  const outputs: Buffer[][] = [];
  let resolveChunk: (() => void) | undefined;
  const session = designFactory(design, ff)({
    cumEndMs,
    keepPcm: true,
    onChunk: () => resolveChunk?.(),
  });
  for (let n = 0; n < per; n++) {
    const before = session.pcm.length;
    await new Promise<void>((resolve) => {
      resolveChunk = resolve;
      session.write(n, rec.chunks[n]);
    });
    outputs.push(session.pcm.slice(before));
  }
  await session.close();
  const all = Buffer.concat(session.pcm);
  const ref = rec.pcm;
  // Per chunk: its output against the reference at the chunk's place, best lag within ±100 ms.
  const corr: number[] = [];
  for (let n = 0; n < per; n++) {
    const out = Buffer.concat(outputs[n]);
    if (out.length < 64) {
      corr.push(0);
      continue;
    }
    const start = Math.round((n > 0 ? rec.chunkEndMs[n - 1] : 0) * 16);
    let best = -1;
    for (let lag = -1600; lag <= 1600; lag += 8) {
      let sxy = 0;
      let sxx = 0;
      let syy = 0;
      for (let i = 0; i < out.length / 2; i += 2) {
        const j = start + lag + i;
        if (j < 0 || j * 2 + 1 >= ref.length) continue;
        const x = out.readInt16LE(i * 2);
        const y = ref.readInt16LE(j * 2);
        sxy += x * y;
        sxx += x * x;
        syy += y * y;
      }
      if (sxx > 0 && syy > 0) best = Math.max(best, sxy / Math.sqrt(sxx * syy));
    }
    corr.push(best);
  }
  return {
    design,
    samples_pct: round((100 * all.length) / ref.length, 2) ?? 0,
    identical_to_whole_file_decode: all.equals(ref),
    mean_chunk_correlation: round(corr.reduce((a, b) => a + b, 0) / corr.length, 4) ?? 0,
  };
}

export interface CompareResult {
  mode: 'compare';
  sessions: number;
  duration_s: number;
  designs: DesignFigures[];
  quality: QualityFigures[];
  /** CPU per session-second of each design divided by the long-lived design's. */
  cpu_ratio_vs_long_lived: Partial<Record<DesignName, number | null>>;
}

export async function runCompare(bundles: Bundles, rec: Recording, args: BenchArgs): Promise<CompareResult> {
  const designs = args.designs as DesignName[];
  const quality: QualityFigures[] = [];
  for (const d of designs) {
    const q = await qualityCheck(rec, d);
    quality.push(q);
    log(`quality ${d}: ${q.samples_pct}% of the samples, identical to a whole-file decode: ${q.identical_to_whole_file_decode}, mean per-chunk correlation ${q.mean_chunk_correlation}`);
  }
  const figures: DesignFigures[] = [];
  for (const d of designs) {
    log(`compare: ${d}, ${args.sessions} sessions × ${args.durationS} s`);
    const { r, f } = await runDesign(bundles, rec, d, args.sessions, args.durationS);
    figures.push(f);
    log(
      `  ${d}: CPU ${f.cpu_pct}% of one core, ${f.cpu_ms_per_session_s} ms per session-second; chunk → PCM ${fmtDist(r.latencyMs)}; ` +
        `${f.chunks_skipped} chunks never decoded (fell behind), ${f.chunks_failed} failed; audio delivered ${f.audio_delivered_pct}%; ` +
        `peak ${f.peak_processes} ffmpeg processes, RSS ${f.children_rss_mb} MB / PSS ${f.children_pss_mb} MB${spawnsPerChunk(d) ? `, ${f.spawns_per_s} spawns/s` : ''}`,
    );
  }
  const base = figures.find((f) => f.design === 'long-lived')?.cpu_ms_per_session_s;
  const ratio: CompareResult['cpu_ratio_vs_long_lived'] = {};
  for (const f of figures) ratio[f.design] = base && f.cpu_ms_per_session_s !== null ? round(f.cpu_ms_per_session_s / base, 1) : null;
  return { mode: 'compare', sessions: args.sessions, duration_s: args.durationS, designs: figures, quality, cpu_ratio_vs_long_lived: ratio };
}

/** The naive designs start one ffmpeg per chunk. */
const spawnsPerChunk = (d: DesignName) => d !== 'long-lived';

/**
 * Soak mode: open and close many sessions (default 10,000) with bounded concurrency, the way real clients do it
 * (start, a chunk or two, end), and compare the server's memory and open handles at the start and the end.
 * Handles are counted from outside: the server's open file descriptors (/proc/<pid>/fd: sockets, pipes to ffmpeg,
 * files), its threads, its ffmpeg children, and the live-session and ffmpeg gauges of /metrics.
 */
import type { BenchArgs } from './cli-args';
import { API, RestClient, WsSessionClient } from './client';
import { hostPlan, log } from './common';
import type { Recording } from './fixture';
import { childrenOf, countFds, readRssKb, threadCount, type FdCounts } from './proc';
import { PromSnapshot } from './prom';
import { startStack, delay, type Bundles, type Stack } from './stack';
import { round } from './stats';
import { HEAP_SNAPSHOT_SIGNAL, diffSizes, takeHeapSnapshotSummary, type NodeSizes } from './heap-snapshot';
import { InspectorSession, inspectorUrl } from './inspector-gc';
import { fmtMemoryDetail, readMemoryDetail } from './memory-probe';
import { START_NODE_FLAGS } from '../src/config/process-flags';

interface ServerState {
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  fds: FdCounts;
  threads: number;
  ffmpegChildren: number;
  sessionsLive: number;
  ffmpegAlive: number;
  /** What the server keeps of ended sessions (bounded): tombstones and transcripts. */
  tombstones: number;
  transcripts: number;
}

async function serverState(stack: Stack): Promise<ServerState> {
  const pid = stack.server.pid;
  const prom = await PromSnapshot.fetch(stack.baseUrl);
  return {
    rssMb: (readRssKb(pid) ?? NaN) / 1024,
    heapUsedMb: prom.value('live_audio_process_memory_bytes', { kind: 'heap_used' }) / 1024 / 1024,
    heapTotalMb: prom.value('live_audio_process_memory_bytes', { kind: 'heap_total' }) / 1024 / 1024,
    externalMb: prom.value('live_audio_process_memory_bytes', { kind: 'external' }) / 1024 / 1024,
    fds: countFds(pid) ?? { total: NaN, socket: NaN, pipe: NaN, anon: NaN, file: NaN, other: NaN },
    threads: threadCount(pid) ?? NaN,
    ffmpegChildren: childrenOf(pid).length,
    sessionsLive: prom.value('live_audio_sessions_live'),
    ffmpegAlive: prom.value('live_audio_ffmpeg_processes_alive'),
    tombstones: prom.value('live_audio_retained_records', { kind: 'tombstones' }),
    transcripts: prom.value('live_audio_retained_records', { kind: 'transcripts' }),
  };
}

/** Waits until the server has no live session and no ffmpeg, then lets it settle. */
async function quiesce(stack: Stack, settleMs: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const s = await serverState(stack);
    if ((s.sessionsLive === 0 && s.ffmpegChildren === 0) || Date.now() > deadline) break;
    await delay(200);
  }
  await delay(settleMs);
}

const fmt = (s: ServerState) =>
  `RSS ${s.rssMb.toFixed(1)} MB (V8 heap used ${s.heapUsedMb.toFixed(1)} of ${s.heapTotalMb.toFixed(1)} MB, external ${s.externalMb.toFixed(1)} MB), fds ${s.fds.total} (sockets ${s.fds.socket}, pipes ${s.fds.pipe}, anon ${s.fds.anon}, files ${s.fds.file}), threads ${s.threads}, ffmpeg ${s.ffmpegChildren}, live sessions ${s.sessionsLive}, kept: tombstones ${s.tombstones}, transcripts ${s.transcripts}`;

export async function runSoak(bundles: Bundles, rec: Recording, args: BenchArgs) {
  // /transcribe answers as soon as its chunk is accepted (no waiting for news): the soak is about the lifecycle.
  const stack = await startStack({
    bundles,
    plan: hostPlan(rec, false),
    serverEnv: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', ...args.serverEnv },
    serverNodeArgs: ['--inspect=127.0.0.1:0', `--heapsnapshot-signal=${HEAP_SNAPSHOT_SIGNAL}`, ...args.serverNodeArgs],
  });
  const url = inspectorUrl(stack.server.output());
  if (!url) {
    await stack.stop();
    throw new Error(`no inspector URL in the server output:\n${stack.server.output()}`);
  }
  const inspector = await InspectorSession.connect(url);
  const statuses = new Map<string, number>();
  const count = (k: string) => statuses.set(k, (statuses.get(k) ?? 0) + 1);
  let errors = 0;
  // Recreated after each phase: closing it closes its idle keep-alive sockets, which are the client's, not leaks.
  let rest = args.transport === 'rest' ? new RestClient(stack.baseUrl, stack.apiKey) : undefined;
  const dropIdleSockets = () => {
    if (!rest) return;
    rest.close();
    rest = new RestClient(stack.baseUrl, stack.apiKey);
  };
  const [c0, c1] = [rec.base64[0], rec.base64[1]];

  const oneSession = async (i: number) => {
    const id = `soak_${i}`;
    try {
      const client = rest;
      if (client) {
        const start = await client.post(`${API}/session/start`, JSON.stringify({ session_id: id, response_modality: 'text' }));
        count(`start ${start.status}`);
        if (start.status !== 200) {
          errors++;
          return;
        }
        // Two chunks (the soak server answers /transcribe as soon as the chunk is accepted), their PCM relayed, end.
        for (const c of [c0, c1]) {
          const t = await client.post(`${API}/transcribe`, `{"session_id":"${id}","format":"webm","audio_data":"${c}"}`);
          count(`transcribe ${t.status}`);
          if (t.status !== 200) errors++;
        }
        await delay(100);
        const end = await client.post(`${API}/session/end`, JSON.stringify({ session_id: id }));
        count(`end ${end.status}`);
        if (end.status !== 200) errors++;
      } else {
        const ws = new WsSessionClient(stack.wsUrl, stack.apiKey);
        try {
          await ws.open(id);
          count('ws started');
          ws.send(`{"type":"audio_chunk","format":"webm","audio_data":"${c0}"}`);
          await delay(50);
          ws.send(`{"type":"audio_chunk","format":"webm","audio_data":"${c1}"}`);
          await delay(100);
        } finally {
          await ws.end();
        }
        count('ws ended');
      }
    } catch (err) {
      errors++;
      count(`error ${(err as Error).message.slice(0, 60)}`);
    }
  };

  const runBatch = async (from: number, to: number) => {
    let next = from;
    const worker = async () => {
      while (next < to) {
        const i = next++;
        await oneSession(i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.soakConcurrency, to - from) }, worker));
  };

  /**
   * Server state once every session is closed: as the OS sees it, then after a full GC (forced through the
   * inspector), which is what the process really retains.
   */
  const checkpoint = async (label: string, sessions: number) => {
    dropIdleSockets();
    await quiesce(stack, args.soakSettleMs);
    const state = await serverState(stack);
    await inspector.collectGarbage();
    await delay(500);
    const gc = await serverState(stack);
    const detail = await readMemoryDetail(stack.server.pid, inspector, { trim: args.soakMallocTrim });
    log(`${label} (${sessions} sessions): ${fmt(state)}`);
    log(`  after a full GC: RSS ${gc.rssMb.toFixed(1)} MB, V8 heap used ${gc.heapUsedMb.toFixed(1)} of ${gc.heapTotalMb.toFixed(1)} MB, external ${gc.externalMb.toFixed(1)} MB`);
    log(fmtMemoryDetail(detail));
    return { sessions, state, gc, detail };
  };

  try {
    await delay(1000);
    const points = [await checkpoint('start', 0)];
    const warmN = Math.min(500, args.soakSessions);
    const t0 = Date.now();
    await runBatch(0, warmN);
    points.push(await checkpoint('warm', warmN));
    // Issue 13 compares the end with the first 1,000 sessions: a checkpoint there, then four steps to the end.
    const firstN = Math.min(1000, args.soakSessions);
    if (firstN > warmN) {
      await runBatch(warmN, firstN);
      points.push(await checkpoint('checkpoint', firstN));
    }
    const snapshotAtFirst: NodeSizes | undefined = args.soakHeapDiff
      ? (await takeHeapSnapshotSummary(stack.server.pid, stack.workDir, () => PromSnapshot.fetch(stack.baseUrl))).sizes
      : undefined;
    const startFrom = Math.max(warmN, firstN);
    const step = Math.max(warmN, Math.ceil((args.soakSessions - startFrom) / 4));
    for (let from = startFrom; from < args.soakSessions; from += step) {
      const to = Math.min(args.soakSessions, from + step);
      const before = Date.now();
      await runBatch(from, to);
      log(`  · ${to - from} sessions in ${((Date.now() - before) / 1000).toFixed(1)} s`);
      points.push(await checkpoint(to === args.soakSessions ? 'end' : 'checkpoint', to));
    }
    const wallS = (Date.now() - t0) / 1000;
    const [first, warm, last] = [points[0], points[1], points[points.length - 1]];
    const at1000 = points.find((p) => p.sessions === firstN) ?? warm;
    log(`statuses: ${[...statuses].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
    const emu = (await (await fetch(`${stack.emulatorControlUrl}/stats`)).json()) as { connections: number; open: number };
    log(`emulator: ${emu.connections} upstream connections, ${emu.open} still open`);

    // Finally a heap snapshot: which objects are still alive.
    const { counts: objects, sizes } = await takeHeapSnapshotSummary(stack.server.pid, stack.workDir, () => PromSnapshot.fetch(stack.baseUrl));
    if (snapshotAtFirst) {
      const n = args.soakSessions - firstN;
      const grew = diffSizes(snapshotAtFirst, sizes, 25);
      const total = [...sizes.values()].reduce((t, e) => t + e.bytes, 0) - [...snapshotAtFirst.values()].reduce((t, e) => t + e.bytes, 0);
      log(`heap snapshot, ${firstN} → ${args.soakSessions} sessions: ${(total / 1024 / 1024).toFixed(2)} MB more, ${(total / n).toFixed(0)} B per session; by kind (count, bytes per session):`);
      for (const g of grew) log(`  ${g.key}: ${g.count >= 0 ? '+' : ''}${g.count} (${(g.count / n).toFixed(2)}/session), ${(g.bytes / n).toFixed(1)} B/session`);
    }
    const tracked = ['LiveSession', 'ResilientUpstream', 'FfmpegSessionDecoder', 'FfmpegPcmStream', 'ChildProcess', 'LiveAudioConnection', 'WebSocket', 'Socket', 'Timeout'];
    log(`live instances at the end: ${tracked.map((n) => `${n} ${objects.get(n) ?? 0}`).join(', ')}`);
    const top = [...objects].sort((a, b) => b[1] - a[1]).slice(0, 8);
    log(`most numerous objects: ${top.map(([n, c]) => `${n} ${c}`).join(', ')}`);
    const pct = (a: number, b: number) => round((100 * (b - a)) / a, 1);
    const mb = (bytes: number) => bytes / 1024 / 1024;
    return {
      mode: 'soak',
      transport: args.transport,
      sessions: args.soakSessions,
      concurrency: args.soakConcurrency,
      server_env: args.serverEnv,
      // The start script's flags, then the run's own (a flag given again wins).
      server_node_args: [...START_NODE_FLAGS, ...args.serverNodeArgs],
      settle_ms: args.soakSettleMs,
      wall_s: round(wallS, 1),
      sessions_per_s: round(args.soakSessions / wallS, 1),
      errors,
      rss_start_mb: round(first.state.rssMb, 1),
      rss_warm_mb: round(warm.state.rssMb, 1),
      rss_end_mb: round(last.state.rssMb, 1),
      rss_change_pct: pct(first.state.rssMb, last.state.rssMb),
      rss_change_vs_warm_pct: pct(warm.state.rssMb, last.state.rssMb),
      rss_at_first_1000_mb: round(at1000.state.rssMb, 1),
      rss_change_vs_first_1000_pct: pct(at1000.state.rssMb, last.state.rssMb),
      rss_after_gc_change_vs_first_1000_pct: pct(at1000.gc.rssMb, last.gc.rssMb),
      rss_after_gc_start_mb: round(first.gc.rssMb, 1),
      rss_after_gc_warm_mb: round(warm.gc.rssMb, 1),
      rss_after_gc_end_mb: round(last.gc.rssMb, 1),
      heap_after_gc_start_mb: round(first.gc.heapUsedMb, 2),
      heap_after_gc_warm_mb: round(warm.gc.heapUsedMb, 2),
      heap_after_gc_end_mb: round(last.gc.heapUsedMb, 2),
      heap_after_gc_change_vs_warm_mb: round(last.gc.heapUsedMb - warm.gc.heapUsedMb, 2),
      fds_start: first.state.fds.total,
      fds_end: last.state.fds.total,
      fds_gained: last.state.fds.total - first.state.fds.total,
      threads_start: first.state.threads,
      threads_end: last.state.threads,
      ffmpeg_children_end: last.state.ffmpegChildren,
      sessions_live_end: last.state.sessionsLive,
      upstream_open_end: emu.open,
      session_objects_alive_end: Object.fromEntries(tracked.map((n) => [n, objects.get(n) ?? 0])),
      checkpoints: points.map((p) => ({
        sessions: p.sessions,
        rss_mb: round(p.state.rssMb, 1),
        rss_after_gc_mb: round(p.gc.rssMb, 1),
        heap_after_gc_mb: round(p.gc.heapUsedMb, 2),
        heap_total_after_gc_mb: round(p.gc.heapTotalMb, 2),
        fds: p.state.fds.total,
        tombstones: p.state.tombstones,
        transcripts: p.state.transcripts,
        // After the GC: RSS outside V8's resident heap pages, and where it is.
        non_v8_after_gc_mb: p.detail.v8 ? round(p.gc.rssMb - mb(p.detail.v8.physical), 1) : null,
        smaps_after_gc_mb: p.detail.smaps
          ? { brk_heap: round(p.detail.smaps.brkHeapKb / 1024, 1), anon: round(p.detail.smaps.anonKb / 1024, 1), code: round(p.detail.smaps.codeKb / 1024, 1), other: round(p.detail.smaps.otherKb / 1024, 1) }
          : null,
        glibc_after_gc_mb: p.detail.malloc
          ? { system: round(mb(p.detail.malloc.systemBytes), 1), free: round(mb(p.detail.malloc.freeBytes), 1), main_system: round(mb(p.detail.malloc.mainSystemBytes), 1), main_free: round(mb(p.detail.malloc.mainFreeBytes), 1), mmapped: round(mb(p.detail.malloc.mmapBytes), 1) }
          : null,
        v8_after_gc_mb: p.detail.v8
          ? { physical: round(mb(p.detail.v8.physical), 1), external: round(mb(p.detail.v8.external), 2), array_buffers: round(mb(p.detail.v8.arrayBuffers), 2), malloced: round(mb(p.detail.v8.malloced), 2), code: round(mb(p.detail.v8.spaces.code_space?.physical ?? NaN), 2), new: round(mb(p.detail.v8.spaces.new_space?.physical ?? NaN), 2), large: round(mb(p.detail.v8.spaces.large_object_space?.physical ?? NaN), 2) }
          : null,
        rss_after_trim_mb: p.detail.rssAfterTrimMb === undefined ? null : round(p.detail.rssAfterTrimMb, 1),
      })),
    };
  } finally {
    rest?.close();
    inspector.close();
    await stack.stop();
  }
}

import { designedWaitOf } from './designed-wait';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WindowSummary } from './window-summary';
import type { EmulatorRetained } from '../emulator';
import type { DecoderStartSource } from '../services/audio/decoder-starts';
import { AudioDecodeError, AudioLimitError, type AudioPathEvent, type DecoderProcessCounters } from '../services/audio/session-audio-decoder';
import type { LiveSession, SessionEndInfo } from '../services/session/live-session';
import type { SessionRegistry } from '../services/session/session-registry';
import type { EvictionCounts } from '../util/fair-retention';


const KNOWN_ROUTES: [RegExp, string][] = [
  [/^\/api\/v1\/live-audio\/sessions$/, '/api/v1/live-audio/sessions'],
  [/^\/api\/v1\/live-audio\/session\/start$/, '/api/v1/live-audio/session/start'],
  [/^\/api\/v1\/live-audio\/streaming\/start$/, '/api/v1/live-audio/streaming/start'],
  [/^\/api\/v1\/live-audio\/transcribe$/, '/api/v1/live-audio/transcribe'],
  [/^\/api\/v1\/live-audio\/session\/end$/, '/api/v1/live-audio/session/end'],
  [/^\/api\/v1\/live-audio\/session\/[^/]+\/status$/, '/api/v1/live-audio/session/:session_id/status'],
  [/^\/(health|ready|metrics)$/, '/$1'],
];

/** The labels of routes without parameters, looked up before the patterns. */
const STATIC_ROUTES: ReadonlySet<string> = new Set([
  ...['sessions', 'session/start', 'streaming/start', 'transcribe', 'session/end'].map((r) => `/api/v1/live-audio/${r}`),
  '/health',
  '/ready',
  '/metrics',
]);

/** A bounded route label (no ids, no arbitrary paths). */
export function routeLabel(path: string): string {
  if (STATIC_ROUTES.has(path)) return path;
  for (const [re, label] of KNOWN_ROUTES) {
    if (re.test(path)) return path.replace(re, label);
  }
  return 'other';
}

/** The embedded emulator, as far as metrics go. */
export interface EmulatorRetentionSource {
  retained(): EmulatorRetained;
}

/** What this process keeps of ended sessions: tombstones (their status) and transcripts (live ones included). */
export interface RetentionSource {
  tombstones(): number;
  /** Tombstones evicted before their time, by reason (over the cap: `records`). */
  tombstoneEvictions(): EvictionCounts;
  transcripts(): { records: number; bytes: number; evicted: number; evictions: EvictionCounts };
}

interface AudioTotals {
  inSeconds: number;
  relayedSeconds: number;
  droppedSeconds: number;
}

/**
 * The server's Prometheus metrics, in a registry of its own (several servers can live in one process).
 * Fed by registry, session and upstream events; counters owned by other components (ffmpeg processes,
 * per-session audio) are read when scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly eventLoop: IntervalHistogram;
  private readonly ended: AudioTotals = { inSeconds: 0, relayedSeconds: 0, droppedSeconds: 0 };
  private readonly live = new Set<LiveSession>();
  private decoders: DecoderProcessCounters | undefined;
  private emulator: EmulatorRetentionSource | undefined;
  private startSource: DecoderStartSource | undefined;
  private retention: RetentionSource | undefined;

  readonly sessionsStarted: Counter<'transport'>;
  readonly sessionsEnded: Counter<'reason'>;
  readonly upstreamConnects: Counter<'resumed'>;
  readonly upstreamCloses: Counter<'code'>;
  readonly upstreamReconnects: Counter<'cause'>;
  readonly upstreamFailures: Counter;
  readonly decodeErrors: Counter<'code'>;
  readonly transcribeSeconds: Histogram<'status'>;
  readonly relayLatencySeconds: Histogram;
  /** Sliding-window quantiles of the same two latencies (the histograms' buckets are too coarse for p50/p99). */
  readonly transcribeRecentSeconds: WindowSummary;
  readonly relayLatencyRecentSeconds: WindowSummary;
  /** `/transcribe`'s own handling: its latency minus the designed wait for news (sliding-window quantiles). */
  readonly transcribeHandlingRecentSeconds: WindowSummary;
  readonly httpResponses: Counter<'route' | 'method' | 'status'>;
  readonly rateLimited: Counter<'limit'>;
  /** WebM chunks the reorder buffer did something about, by what (reordered, duplicate, skipped, late, unplaced). */
  readonly reorderChunks: Counter<'kind'>;
  readonly reorderLostSeconds: Counter;
  readonly decoderRestarts: Counter<'cause'>;
  readonly decoderStalls: Counter;
  readonly audioBudgetCuts: Counter;
  /** Cluster mode: sessions brought to this instance, by how (`takeover` of a dead owner's, `handover` in a deploy). */
  readonly clusterSessionsTaken: Counter<'kind'>;
  /** Cluster mode: audio that was inside instances that died while owning a session (estimated from their records). */
  readonly clusterLostAudioSeconds: Counter;
  /** Cluster mode: REST calls forwarded to the instance owning their session, by outcome, and their duration. */
  readonly clusterForwardSeconds: Histogram<'outcome'>;
  /** ffmpeg decoder processes started, by path (`launcher`, or `in_process`: no launcher, or it was down). */
  readonly decoderStarts: Counter<'path'>;
  /** From asking for a decoder process to it running, by path. */
  readonly decoderStartSeconds: Histogram<'path'>;

  constructor(opts: { eventLoopResolutionMs?: number } = {}) {
    const r = this.registry;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client calls collect() with the metric as this; the Metrics object is needed too
    const self = this;
    this.eventLoop = monitorEventLoopDelay({ resolution: opts.eventLoopResolutionMs ?? 20 });
    this.eventLoop.enable();

    new Gauge({
      name: 'live_audio_sessions_live',
      help: 'Live sessions, by transport',
      labelNames: ['transport'],
      registers: [r],
      collect() {
        this.reset();
        const by: Record<string, number> = { rest: 0, ws: 0 };
        for (const s of self.live) by[s.params.transport] = (by[s.params.transport] ?? 0) + 1;
        for (const [transport, n] of Object.entries(by)) this.set({ transport }, n);
      },
    });
    this.clusterSessionsTaken = new Counter({
      name: 'live_audio_cluster_sessions_taken_total',
      help: 'Sessions this instance took from another one: takeover (the owner died) or handover (rolling deploy)',
      labelNames: ['kind'],
      registers: [r],
    });
    this.clusterLostAudioSeconds = new Counter({
      name: 'live_audio_cluster_lost_audio_seconds_total',
      help: 'Audio estimated lost inside instances that died while owning a session (taken over here)',
      registers: [r],
    });
    this.clusterForwardSeconds = new Histogram({
      name: 'live_audio_cluster_forward_seconds',
      help: 'REST calls forwarded to the instance owning their session, until the whole answer was relayed',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.sessionsStarted = new Counter({ name: 'live_audio_sessions_started_total', help: 'Sessions started', labelNames: ['transport'], registers: [r] });
    this.sessionsEnded = new Counter({ name: 'live_audio_sessions_ended_total', help: 'Sessions ended, by reason', labelNames: ['reason'], registers: [r] });
    this.upstreamConnects = new Counter({
      name: 'live_audio_upstream_connects_total',
      help: 'Upstream (Gemini Live) connections set up, first or resumed',
      labelNames: ['resumed'],
      registers: [r],
    });
    this.upstreamCloses = new Counter({
      name: 'live_audio_upstream_closes_total',
      help: 'Upstream connections closed, by WebSocket close code',
      labelNames: ['code'],
      registers: [r],
    });
    this.upstreamReconnects = new Counter({
      name: 'live_audio_upstream_reconnects_total',
      help: 'Upstream replacements (goAway rotation or reconnect after an unexpected close), by cause',
      labelNames: ['cause'],
      registers: [r],
    });
    this.upstreamFailures = new Counter({ name: 'live_audio_upstream_failures_total', help: 'Sessions whose upstream link gave up', registers: [r] });
    const audioCounter = (name: string, help: string, pick: (t: AudioTotals) => number) =>
      new Counter({
        name,
        help,
        registers: [r],
        collect() {
          const t = self.audioTotals();
          this.reset();
          this.inc(pick(t));
        },
      });
    audioCounter('live_audio_audio_in_seconds_total', 'Client audio decoded to PCM, seconds', (t) => t.inSeconds);
    audioCounter('live_audio_audio_relayed_seconds_total', 'PCM handed to the upstream sockets, seconds', (t) => t.relayedSeconds);
    audioCounter('live_audio_audio_dropped_seconds_total', 'PCM dropped because the upstream backlog overflowed, seconds', (t) => t.droppedSeconds);
    this.decodeErrors = new Counter({ name: 'live_audio_decode_errors_total', help: 'Audio chunks that failed to decode, by code', labelNames: ['code'], registers: [r] });
    new Gauge({
      name: 'live_audio_retained_records',
      help: 'What is kept of sessions after their end, bounded: tombstones (their status), transcripts (live ones included)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        const src = self.retention;
        if (!src) return;
        this.set({ kind: 'tombstones' }, src.tombstones());
        this.set({ kind: 'transcripts' }, src.transcripts().records);
      },
    });
    new Counter({
      name: 'live_audio_retained_evictions_total',
      help: 'Records of ended sessions dropped before their time to stay within the caps, by kind and reason (records, bytes: the key holding the most gave its oldest; per_key: over its own cap)',
      labelNames: ['kind', 'reason'],
      registers: [r],
      collect() {
        const src = self.retention;
        if (!src) return;
        this.reset();
        const kinds: Array<[string, EvictionCounts]> = [
          ['tombstones', src.tombstoneEvictions()],
          ['transcripts', src.transcripts().evictions],
        ];
        for (const [kind, counts] of kinds) for (const [reason, n] of Object.entries(counts)) this.inc({ kind, reason }, n);
      },
    });
    new Gauge({
      name: 'live_audio_retained_transcript_bytes',
      help: 'Approximate memory of the transcripts held (bounded by LIVE_AUDIO_TRANSCRIPT_MAX_BYTES)',
      registers: [r],
      collect() {
        if (self.retention) this.set(self.retention.transcripts().bytes);
      },
    });
    new Gauge({
      name: 'live_audio_ffmpeg_processes_alive',
      help: 'ffmpeg decoder processes currently running',
      registers: [r],
      collect() {
        this.set(self.decoders?.processesAlive ?? 0);
      },
    });
    new Gauge({
      name: 'live_audio_in_process_decoders',
      help: 'WebM/Opus streams decoded inside the server now (LIVE_AUDIO_WEBM_DECODER=in_process; no process, not in live_audio_ffmpeg_processes_alive)',
      registers: [r],
      collect() {
        this.set(self.decoders?.inProcessStreams ?? 0);
      },
    });
    new Counter({
      name: 'live_audio_in_process_decoders_started_total',
      help: 'WebM/Opus streams started inside the server (LIVE_AUDIO_WEBM_DECODER=in_process), as ffmpeg_processes_spawned_total counts processes',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.decoders?.inProcessStarted ?? 0);
      },
    });
    new Gauge({
      name: 'live_audio_decode_threads',
      help: 'Worker threads decoding in-process WebM/Opus now (LIVE_AUDIO_DECODE_THREADS; they start with the first stream)',
      registers: [r],
      collect() {
        this.set(self.decoders?.decodeThreads?.running ?? 0);
      },
    });
    new Counter({
      name: 'live_audio_decode_threads_lost_total',
      help: 'Decoding threads that died or stopped answering (terminated); their streams were replayed into new ones',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.decoders?.decodeThreads?.lost ?? 0);
      },
    });
    new Gauge({
      name: 'live_audio_ffmpeg_processes_pooled',
      help: 'Warm ffmpeg decoder processes waiting for a new recording (not in live_audio_ffmpeg_processes_alive)',
      registers: [r],
      collect() {
        this.set(self.decoders?.processesPooled ?? 0);
      },
    });
    new Counter({
      name: 'live_audio_ffmpeg_pool_spawned_total',
      help: 'ffmpeg processes the warm decoder pool started (handed over to a session or not)',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.decoders?.poolSpawned ?? 0);
      },
    });
    new Counter({
      name: 'live_audio_ffmpeg_processes_spawned_total',
      help: 'ffmpeg decoder processes started',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.decoders?.processesSpawned ?? 0);
      },
    });
    this.decoderStarts = new Counter({
      name: 'live_audio_ffmpeg_decoder_starts_total',
      help: 'ffmpeg decoder processes started (for sessions and the warm pool), by path: launcher, or in_process (no launcher configured, or it was down or restarting)',
      labelNames: ['path'],
      registers: [r],
    });
    this.decoderStartSeconds = new Histogram({
      name: 'live_audio_ffmpeg_decoder_start_seconds',
      help: 'From asking for an ffmpeg decoder process to it running (pid known, its input and output connected), by path',
      labelNames: ['path'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    new Gauge({
      name: 'live_audio_ffmpeg_launcher_up',
      help: 'The ffmpeg launcher (LIVE_AUDIO_DECODER_LAUNCHER) is ready to start decoders: 1, else 0 (down, restarting, or not configured)',
      registers: [r],
      collect() {
        this.set(self.startSource?.launcherStatus()?.up ? 1 : 0);
      },
    });
    new Counter({
      name: 'live_audio_ffmpeg_launcher_restarts_total',
      help: 'ffmpeg launcher processes started again after the first one (it died, or did not get ready in time)',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.startSource?.launcherStatus()?.restarts ?? 0);
      },
    });
    this.transcribeSeconds = new Histogram({
      name: 'live_audio_transcribe_duration_seconds',
      help: 'POST /transcribe latency (request received to response sent), by status code',
      labelNames: ['status'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10],
      registers: [r],
    });
    this.relayLatencySeconds = new Histogram({
      name: 'live_audio_relay_latency_seconds',
      help: "The relay's own added latency: audio chunk received to its PCM handed to the upstream socket",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r],
    });
    // Exact p50/p90/p99 for dashboards and the benchmarks: quantiles over the last 60 s (5 rotating buckets, so a
    // scrape sees the last 48-60 s), computed when scraped. The histograms above stay for aggregation.
    const recent = { percentiles: [0.5, 0.9, 0.99], maxAgeSeconds: 60, ageBuckets: 5, registers: [r] };
    this.transcribeRecentSeconds = new WindowSummary({
      name: 'live_audio_transcribe_duration_recent_seconds',
      help: 'POST /transcribe latency, quantiles over a sliding 60 s window',
      ...recent,
    });
    this.transcribeHandlingRecentSeconds = new WindowSummary({
      name: 'live_audio_transcribe_handling_recent_seconds',
      help: "POST /transcribe's own handling time (latency minus the designed bounded wait for news), quantiles over a sliding 60 s window",
      ...recent,
    });
    this.relayLatencyRecentSeconds = new WindowSummary({
      name: 'live_audio_relay_latency_recent_seconds',
      help: "The relay's own added latency (chunk received to PCM handed to the upstream socket), quantiles over a sliding 60 s window",
      ...recent,
    });
    this.httpResponses = new Counter({
      name: 'live_audio_http_responses_total',
      help: 'HTTP responses, by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers: [r],
    });
    this.reorderChunks = new Counter({
      name: 'live_audio_reorder_chunks_total',
      help: 'WebM chunks put back in order (reordered), dropped (duplicate, late), gaps skipped (skipped) or written in arrival order (unplaced)',
      labelNames: ['kind'],
      registers: [r],
    });
    this.reorderLostSeconds = new Counter({
      name: 'live_audio_reorder_lost_seconds_total',
      help: 'Audio lost in gaps the reorder buffer skipped (chunks that never arrived), seconds',
      registers: [r],
    });
    this.decoderRestarts = new Counter({
      name: 'live_audio_decoder_restarts_total',
      help: 'Decoders started again for a running recording (primed with its head), by cause',
      labelNames: ['cause'],
      registers: [r],
    });
    this.decoderStalls = new Counter({
      name: 'live_audio_decoder_stalls_total',
      help: 'Decoders killed for accepting nothing within LIVE_AUDIO_DECODER_STALL_MS',
      registers: [r],
    });
    this.audioBudgetCuts = new Counter({
      name: 'live_audio_audio_budget_cuts_total',
      help: 'Audio streams cut because their owner spent the audio seconds budget',
      registers: [r],
    });
    this.rateLimited = new Counter({ name: 'live_audio_rate_limited_total', help: 'Refusals by a rate or concurrency limit', labelNames: ['limit'], registers: [r] });
    new Gauge({
      name: 'live_audio_event_loop_delay_seconds',
      help: 'Event-loop delay since the previous scrape (perf_hooks.monitorEventLoopDelay)',
      labelNames: ['quantile'],
      registers: [r],
      collect() {
        const h = self.eventLoop;
        const s = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
        this.set({ quantile: '0.5' }, s(h.percentile(50)));
        this.set({ quantile: '0.9' }, s(h.percentile(90)));
        this.set({ quantile: '0.99' }, s(h.percentile(99)));
        this.set({ quantile: 'max' }, s(h.max));
        h.reset();
      },
    });
    new Gauge({
      name: 'live_audio_process_memory_bytes',
      help: 'Process memory (process.memoryUsage)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        const m = process.memoryUsage();
        this.set({ kind: 'rss' }, m.rss);
        this.set({ kind: 'heap_used' }, m.heapUsed);
        // What V8 holds from the system for its heap: RSS above it is the C++ side (malloc arenas, buffers, code).
        this.set({ kind: 'heap_total' }, m.heapTotal);
        this.set({ kind: 'external' }, m.external);
      },
    });
    new Gauge({
      name: 'live_audio_emulator_retained',
      help: 'What the embedded Gemini Live emulator (offline demo) holds, by kind (pcm_bytes, connection_records, ...)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        this.reset();
        const held = self.emulator?.retained();
        if (!held) return;
        this.set({ kind: 'pcm_bytes' }, held.pcmBytes);
        this.set({ kind: 'message_log_entries' }, held.messageLogEntries);
        this.set({ kind: 'connection_records' }, held.connectionRecords);
        this.set({ kind: 'open_connections' }, held.openConnections);
        this.set({ kind: 'upgrade_records' }, held.upgradeRecords);
        this.set({ kind: 'resumption_handles' }, held.resumptionHandles);
      },
    });
  }

  /** Session and upstream events of every session the registry starts. */
  observeRegistry(registry: SessionRegistry): void {
    registry.on('started', (s) => this.onStarted(s));
    registry.on('ended', (s, info) => this.onEnded(s, info));
  }

  /** What the embedded emulator holds (offline demo mode; read at scrape time). */
  observeEmulator(src: EmulatorRetentionSource): void {
    this.emulator = src;
  }

  /** What is kept of ended sessions in this process (read at scrape time). */
  observeRetention(src: RetentionSource): void {
    this.retention = src;
  }

  /** ffmpeg process counters (read at scrape time). */
  observeDecoders(src: DecoderProcessCounters): void {
    this.decoders = src;
  }

  /** How decoder processes start and the ffmpeg launcher's state (starts as they happen; the launcher at scrape time). */
  observeDecoderStarts(src: DecoderStartSource): void {
    this.startSource = src;
    // Both paths show (at 0) before their first start.
    for (const path of ['launcher', 'in_process']) this.decoderStarts.inc({ path }, 0);
    src.onStarted((e) => {
      this.decoderStarts.inc({ path: e.path });
      this.decoderStartSeconds.observe({ path: e.path }, e.ms / 1000);
    });
  }

  /** `LiveAudioService`'s `onRelayLatency` hook. */
  observeRelayLatency(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) {
      this.relayLatencySeconds.observe(ms / 1000);
      this.relayLatencyRecentSeconds.observe(ms / 1000);
    }
  }

  /**
   * Counts HTTP responses and times `/transcribe` (mount early: the clock starts when the request arrives). The
   * counters' children are bound once per (route, method, status): prom-client hashes a label object on every
   * `inc`/`observe` otherwise. The set is bounded as the labels are: routes by `routeLabel`, methods by Node's
   * parser (it refuses unknown ones), statuses by HTTP.
   */
  httpMiddleware(): RequestHandler {
    const responses = new Map<string, { inc(): void }>();
    const transcribeByStatus = new Map<number, { observe(v: number): void }>();
    return (req, res, next) => {
      const start = process.hrtime.bigint();
      res.once('finish', () => {
        const url = req.originalUrl ?? req.url;
        const q = url.indexOf('?');
        const route = routeLabel(q === -1 ? url : url.slice(0, q));
        const status = res.statusCode;
        const key = `${route} ${req.method} ${status}`;
        let counter = responses.get(key);
        if (!counter) {
          counter = this.httpResponses.labels({ route, method: req.method, status: String(status) });
          responses.set(key, counter);
        }
        counter.inc();
        if (route === '/api/v1/live-audio/transcribe' && req.method === 'POST') {
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          let h = transcribeByStatus.get(status);
          if (!h) {
            h = this.transcribeSeconds.labels({ status: String(status) });
            transcribeByStatus.set(status, h);
          }
          h.observe(seconds);
          this.transcribeRecentSeconds.observe(seconds);
          this.transcribeHandlingRecentSeconds.observe(Math.max(0, seconds - designedWaitOf(res) / 1000));
        }
      });
      next();
    };
  }

  private onStarted(s: LiveSession): void {
    this.live.add(s);
    this.sessionsStarted.inc({ transport: s.params.transport });
    // The first connection completed before the session was registered.
    const first = s.upstreamStats().connections;
    if (first > 0) this.upstreamConnects.inc({ resumed: 'false' }, first);
    s.on('upstreamConnected', (info) => this.upstreamConnects.inc({ resumed: String(info.resumed) }));
    s.on('upstreamClosed', (info) => this.upstreamCloses.inc({ code: String(info.code) }));
    s.on('upstreamRotation', (cause) => this.upstreamReconnects.inc({ cause }));
    s.on('upstreamFailed', () => this.upstreamFailures.inc());
    s.on('decodeError', (err) => this.decodeErrors.inc({ code: err.code }));
    // Chunks the decoder refused up front count as decode errors too (failures of a running stream are `decodeError`).
    s.on('chunkRefused', (err) => {
      if (err instanceof AudioDecodeError) this.decodeErrors.inc({ code: err.code });
      if (err instanceof AudioLimitError && err.code === 'AUDIO_BACKLOG_FULL') this.rateLimited.inc({ limit: 'audio_backlog' });
    });
    s.on('audioEvent', (e) => this.onAudioEvent(e));
    s.on('audioCut', () => {
      this.audioBudgetCuts.inc();
    });
  }

  private onAudioEvent(e: AudioPathEvent): void {
    switch (e.kind) {
      case 'reordered':
      case 'duplicate':
      case 'late':
      case 'unplaced':
        this.reorderChunks.inc({ kind: e.kind });
        break;
      case 'skipped':
        this.reorderChunks.inc({ kind: 'skipped' });
        this.reorderLostSeconds.inc(e.lostMs / 1000);
        break;
      case 'decoder_restart':
        this.decoderRestarts.inc({ cause: e.cause });
        break;
      case 'decoder_stall':
        this.decoderStalls.inc();
        this.decodeErrors.inc({ code: 'AUDIO_DECODER_STALLED' });
        break;
      case 'restart_refused':
        this.rateLimited.inc({ limit: 'decoder_restarts' });
        break;
    }
  }

  private onEnded(s: LiveSession, info: SessionEndInfo): void {
    this.sessionsEnded.inc({ reason: info.reason });
    if (!this.live.delete(s)) return;
    const a = sessionAudio(s);
    this.ended.inSeconds += a.inSeconds;
    this.ended.relayedSeconds += a.relayedSeconds;
    this.ended.droppedSeconds += a.droppedSeconds;
  }

  private audioTotals(): AudioTotals {
    const t = { ...this.ended };
    for (const s of this.live) {
      const a = sessionAudio(s);
      t.inSeconds += a.inSeconds;
      t.relayedSeconds += a.relayedSeconds;
      t.droppedSeconds += a.droppedSeconds;
    }
    return t;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    this.eventLoop.disable();
    this.live.clear();
  }
}

function sessionAudio(s: LiveSession): AudioTotals {
  const up = s.upstreamStats();
  return {
    inSeconds: s.audioStatus().decodedSeconds,
    relayedSeconds: up.sentAudioMs / 1000,
    droppedSeconds: up.droppedAudioMs / 1000,
  };
}

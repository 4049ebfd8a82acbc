import { z } from 'zod';
import { parseAdvertiseUrl } from '../cluster/advertise-url';
import { parseTrustProxy, type TrustProxy } from '../middleware/client-ip';
import { DEFAULT_LIVE_MODEL_ID } from '../services/models/capabilities';
import { ModelConfigError, parseExtraModels, type ExtraModelSpec } from '../services/models/extra-models';

/**
 * The server's whole configuration, read once at start-up from the environment (after dotenv loaded `.env`).
 * Nothing else in the code base reads `process.env`.
 */
export interface AppConfig {
  nodeEnv: string;
  isProduction: boolean;
  host: string;
  port: number;
  log: { level: string; pretty: boolean; transcripts: boolean };
  gemini: {
    /** Empty when no key is set: the built-in emulator is used unless `baseUrl` points elsewhere. */
    apiKey: string;
    /** `http://host:port` replacing Google's endpoint (emulator, proxy). */
    baseUrl: string | undefined;
    apiVersion: string;
    setupTimeoutMs: number;
    defaultModel: string;
    /** Live models declared besides the built-in table (`LIVE_AUDIO_EXTRA_MODELS`: ids, or JSON with capabilities). */
    extraModels: ExtraModelSpec[];
    /** The `default` profile's system instruction and voice (the old server-wide settings). */
    systemInstruction: string;
    voiceName: string | undefined;
  };
  /** Per-session conversations (issue 14): profiles, transcripts, usage budgets, the session-end webhook. */
  conversations: {
    /** `LIVE_AUDIO_PROFILES_FILE` (YAML or JSON), re-read on change; undefined: built-in profiles only. */
    profilesFile: string | undefined;
    /** How long an ended session's transcript can still be read, ms. */
    transcriptRetentionMs: number;
    /** Daily token budget per key or user; 0 = none. */
    maxTokensPerDay: number;
    /** `session.ended` deliveries (undefined: no webhook). */
    webhook: { url: string; secret: string; maxAttempts: number; timeoutMs: number; maxQueue: number } | undefined;
  };
  /** `auto`: the emulator runs in-process when no Gemini key and no base URL are set. */
  emulator: 'auto' | 'on' | 'off';
  sessions: {
    maxAgeMs: number;
    idleTimeoutMs: number;
    maxPerUser: number;
    maxGlobal: number;
    transcribeWaitMs: number;
    /** Recently ended sessions are remembered this long so clients get `SESSION_EXPIRED`, not `NOT_FOUND`. */
    tombstoneMs: number;
  };
  audio: {
    ffmpegPath: string | undefined;
    maxChunkBytes: number;
    jsonBodyLimit: string;
    /** Longest wait of an early WebM chunk for the chunks before it (the reorder buffer), ms. */
    reorderWaitMs: number;
    /** Most bytes of early chunks one session holds; beyond it the oldest gap is skipped at once. */
    reorderMaxBytes: number;
    /** Upstream audio never goes faster than this many times real time. */
    maxRealtimeFactor: number;
    /** Audio that may go upstream at once (the pacer's burst), ms. */
    pacingBurstMs: number;
    /** No audio is sent while the upstream socket holds more than this many bytes. */
    upstreamMaxBufferedBytes: number;
    /** A decoder that accepts nothing for this long (while owing output) is killed and replaced, ms. */
    decoderStallMs: number;
    /** Decoder processes one session may start per minute (0 = unlimited). */
    decoderRestartsPerMinute: number;
    /** Warm WebM/Opus decoder processes kept ready while a session is open (0 = none). */
    decoderPoolSize: number;
    /** A warm decoder older than this is replaced, ms. */
    decoderPoolMaxAgeMs: number;
  };
  /** The HTTP edge: what a request may cost before and while its body is read. */
  http: {
    /** `LIVE_AUDIO_JSON_LIMIT` in bytes: the cap of any JSON body (`/transcribe` gets less when its largest legal body is smaller). */
    jsonLimitBytes: number;
    /** JSON body cap of the routes that carry no audio (session start/end). */
    controlJsonLimitBytes: number;
    /** Node's `requestTimeout`: the whole request (headers and body) must arrive within this long (408). */
    requestTimeoutMs: number;
    /** Node's `headersTimeout`: the request headers must arrive within this long (408). */
    headersTimeoutMs: number;
    /** Open TCP connections (HTTP and WebSocket) per client address; 0 = no cap. Trusted proxies are exempt. */
    maxOpenConnectionsPerIp: number;
    /** Request body bytes one user may have in flight (being received) at once; 0 = no cap. */
    bodyBytesInFlightPerUser: number;
    /** Request body bytes in flight over all users; 0 = no cap. */
    bodyBytesInFlight: number;
  };
  auth: { apiKeys: string; apiKeysFile: string; jwtSecret: string | undefined };
  cors: { origins: string[] };
  /** Rate limits per authenticated user, per IP only before authentication (README "Operations"); 0 = unlimited. */
  limits: {
    /** Which proxies may set X-Forwarded-For (`TRUST_PROXY`): false, a hop count, or addresses/subnets. */
    trustProxy: TrustProxy;
    requestsPerMinute: number;
    transcriptionsPerMinute: number;
    sessionStartsPerMinute: number;
    /** Decoded audio seconds per user per minute (REST and WebSocket together). */
    audioSecondsPerMinute: number;
    /** Requests failing authentication per client IP per minute. */
    unauthenticatedPerIpPerMinute: number;
    /** WebSocket upgrade attempts per client IP per minute. */
    wsConnectsPerIpPerMinute: number;
  };
  /** Operations: metrics and graceful shutdown. */
  ops: {
    /** When set, `/metrics` requires `Authorization: Bearer <token>`. */
    metricsToken: string | undefined;
    /** `METRICS_PUBLIC=true`: serve `/metrics` without a token in production (otherwise start-up refuses). */
    metricsPublic: boolean;
    /** How long live sessions may finish after SIGTERM/SIGINT before they are ended. */
    drainMs: number;
  };
  /** Upstream resilience (goAway rotation, reconnects, audio held while the upstream is down). */
  upstream: {
    /** PCM held per session while the upstream is down or rotating. */
    backlogMs: number;
    /** Give up reconnecting after this long. */
    reconnectBudgetMs: number;
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** Connections ending within `quickFailureMs` of connecting, `quickFailureLimit` times in a row, fail the session. */
    quickFailureMs: number;
    quickFailureLimit: number;
    /** Most recent unconfirmed audio resent after a connection dropped (0 = never resend). */
    replayMs: number;
    /** Context window compression (sliding window); `null` when turned off. Token counts are optional. */
    contextCompression: { triggerTokens?: number; targetTokens?: number } | null;
  };
  /** The WebSocket endpoint `/ws/live-audio` (README "WebSocket API"). */
  ws: {
    /** An unauthenticated socket gets `auth_timeout` and close 1008 after this long. */
    authTimeoutMs: number;
    /** An authenticated socket without client messages for this long gets `inactivity_timeout` and close 1000. */
    inactivityTimeoutMs: number;
    /** Protocol ping interval; the socket is terminated after `maxMissedPongs` unanswered pings. */
    pingIntervalMs: number;
    maxMissedPongs: number;
    /** Largest client frame (checked by `ws` before any parsing; larger frames close with 1009). */
    maxPayloadBytes: number;
    maxConnectionsPerUser: number;
    /** Outbound buffer cap: above it reply audio is dropped (text and control messages never are). */
    sendBufferBytes: number;
    /** The socket is closed with 1013 when its outbound buffer stays above the cap this long. */
    sendStallMs: number;
    /** Per-user fixed one-minute windows (README "Operations"). */
    maxMessagesPerMinute: number;
    maxAudioBytesPerMinute: number;
    /** Frames a connection may send before it is authenticated (the auth frame and what is pipelined behind it). */
    preAuthMaxFrames: number;
    /** Largest frame accepted before authentication (checked before parsing; larger ones close 1008). */
    preAuthMaxFrameBytes: number;
  };
  /** Several instances as one service (deploy/README.md); undefined without `REDIS_URL` (one process, in memory). */
  cluster: ClusterConfig | undefined;
}

/** The cluster settings, present only when `REDIS_URL` is set. */
export interface ClusterConfig {
  redisUrl: string;
  /** `LIVE_AUDIO_CLUSTER_SECRET`: at least 32 characters, shared by every instance. */
  secret: string;
  instanceId: string | undefined;
  advertiseUrl: string | undefined;
  keyPrefix: string;
  commandTimeoutMs: number;
  downAfterMs: number;
  heartbeatIntervalMs: number;
  missedHeartbeats: number;
  forwardTimeoutMs: number;
}

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return def;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be an integer in [${min}, ${max}]` });
        return z.NEVER;
      }
      return n;
    });

const bool = (def: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return def;
      if (/^(1|true|yes|on)$/i.test(v)) return true;
      if (/^(0|false|no|off)$/i.test(v)) return false;
      ctx.addIssue({ code: 'custom', message: 'must be true or false' });
      return z.NEVER;
    });

const str = (def?: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? def : v.trim()));

const list = () =>
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Parses a byte size such as `8mb`, `256kb`, `1.5mb` or `65536` (units are powers of 1024); null when invalid. */
export function parseByteSize(raw: string): number | null {
  const m = /^(\d{1,12}(?:\.\d{1,6})?)\s{0,4}(b|kb|mb|gb)?$/i.exec(raw.trim());
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * BYTE_UNITS[(m[2] ?? 'b').toLowerCase()]);
  return Number.isSafeInteger(n) ? n : null;
}

const byteSize = (def: string, min: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const n = parseByteSize(v === undefined || v.trim() === '' ? def : v);
      if (n === null || n < min) {
        ctx.addIssue({ code: 'custom', message: `must be a byte size of at least ${min} (e.g. 16kb, 8mb)` });
        return z.NEVER;
      }
      return n;
    });

const envSchema = z.object({
  NODE_ENV: str('development'),
  HOST: str('0.0.0.0'),
  PORT: int(3000, 0, 65535),
  LOG_LEVEL: str(undefined),
  LOG_PRETTY: z.string().optional(),
  LOG_TRANSCRIPTS: bool(false),
  GEMINI_API_KEY: str(undefined),
  GOOGLE_API_KEY: str(undefined),
  GEMINI_BASE_URL: str(undefined),
  GEMINI_API_VERSION: str('v1beta'),
  GEMINI_SETUP_TIMEOUT_MS: int(10_000, 100, 120_000),
  LIVE_AUDIO_DEFAULT_MODEL: str(DEFAULT_LIVE_MODEL_ID),
  LIVE_AUDIO_EXTRA_MODELS: str(undefined),
  LIVE_AUDIO_SYSTEM_INSTRUCTION: str(
    'You are a helpful, friendly voice assistant. Keep answers short and conversational.',
  ),
  LIVE_AUDIO_VOICE: str(undefined),
  LIVE_AUDIO_PROFILES_FILE: str(undefined),
  LIVE_AUDIO_TRANSCRIPT_RETENTION_MS: int(3_600_000, 0, 30 * 24 * 3_600_000),
  LIVE_AUDIO_MAX_TOKENS_PER_DAY: int(0, 0),
  LIVE_AUDIO_WEBHOOK_URL: str(undefined),
  LIVE_AUDIO_WEBHOOK_SECRET: str(undefined),
  LIVE_AUDIO_WEBHOOK_MAX_ATTEMPTS: int(8, 1, 100),
  LIVE_AUDIO_WEBHOOK_TIMEOUT_MS: int(10_000, 100, 600_000),
  LIVE_AUDIO_WEBHOOK_MAX_QUEUE: int(1_000, 1, 1_000_000),
  LIVE_AUDIO_EMULATOR: z.enum(['auto', 'on', 'off']).optional().default('auto'),
  LIVE_AUDIO_SESSION_MAX_MS: int(900_000, 1_000),
  LIVE_AUDIO_IDLE_TIMEOUT_MS: int(120_000, 1_000),
  LIVE_AUDIO_MAX_SESSIONS_PER_USER: int(5, 1),
  LIVE_AUDIO_MAX_CONCURRENT_SESSIONS: int(200, 1),
  LIVE_AUDIO_TRANSCRIBE_WAIT_MS: int(1_200, 0, 30_000),
  LIVE_AUDIO_SESSION_TOMBSTONE_MS: int(900_000, 0),
  FFMPEG_PATH: str(undefined),
  LIVE_AUDIO_MAX_CHUNK_BYTES: int(5 * 1024 * 1024, 1024),
  LIVE_AUDIO_JSON_LIMIT: str('8mb'),
  LIVE_AUDIO_CONTROL_JSON_LIMIT: byteSize('128kb', 1024),
  LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS: int(30_000, 1_000, 600_000),
  LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS: int(10_000, 500, 600_000),
  LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP: int(100, 0, 1_000_000),
  LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT_PER_USER: byteSize('16mb', 0),
  LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT: byteSize('64mb', 0),
  LIVE_AUDIO_REORDER_WAIT_MS: int(1_500, 0, 10_000),
  LIVE_AUDIO_REORDER_MAX_BYTES: int(1024 * 1024, 16 * 1024, 64 * 1024 * 1024),
  LIVE_AUDIO_MAX_REALTIME_FACTOR: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return 2;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 1 || n > 100) {
        ctx.addIssue({ code: 'custom', message: 'must be a number in [1, 100]' });
        return z.NEVER;
      }
      return n;
    }),
  LIVE_AUDIO_PACING_BURST_MS: int(5_000, 100, 600_000),
  LIVE_AUDIO_UPSTREAM_MAX_BUFFERED_BYTES: int(256 * 1024, 1024, 64 * 1024 * 1024),
  LIVE_AUDIO_DECODER_STALL_MS: int(5_000, 100, 600_000),
  LIVE_AUDIO_DECODER_RESTARTS_PER_MINUTE: int(10, 0, 10_000),
  LIVE_AUDIO_DECODER_POOL_SIZE: int(2, 0, 64),
  LIVE_AUDIO_DECODER_POOL_MAX_AGE_MS: int(600_000, 1_000, 86_400_000),
  LIVE_AUDIO_API_KEYS: str(''),
  LIVE_AUDIO_API_KEYS_FILE: str('.live-audio/api-keys.json'),
  JWT_SECRET: str(undefined),
  CORS_ORIGINS: list(),
  TRUST_PROXY: z.string().optional(),
  LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: int(300, 0),
  LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: int(120, 0),
  LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: int(20, 0),
  LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: int(120, 0),
  LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: int(600, 0),
  LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: int(60, 0),
  METRICS_TOKEN: str(undefined),
  METRICS_PUBLIC: bool(false),
  LIVE_AUDIO_DRAIN_MS: int(30_000, 0, 600_000),
  LIVE_AUDIO_UPSTREAM_BACKLOG_MS: int(10_000, 0, 600_000),
  LIVE_AUDIO_RECONNECT_BUDGET_MS: int(30_000, 100, 600_000),
  LIVE_AUDIO_RECONNECT_BACKOFF_BASE_MS: int(250, 1, 60_000),
  LIVE_AUDIO_RECONNECT_BACKOFF_MAX_MS: int(8_000, 1, 300_000),
  LIVE_AUDIO_QUICK_FAILURE_MS: int(5_000, 0, 600_000),
  LIVE_AUDIO_QUICK_FAILURE_LIMIT: int(3, 1, 100),
  LIVE_AUDIO_RECONNECT_REPLAY_MS: int(200, 0, 10_000),
  LIVE_AUDIO_CONTEXT_COMPRESSION: bool(true),
  LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS: int(0, 0, 100_000_000),
  LIVE_AUDIO_CONTEXT_TARGET_TOKENS: int(0, 0, 100_000_000),
  LIVE_AUDIO_AUTH_TIMEOUT_MS: int(10_000, 100, 600_000),
  LIVE_AUDIO_INACTIVITY_TIMEOUT_MS: int(300_000, 100),
  LIVE_AUDIO_WS_PING_INTERVAL_MS: int(15_000, 10, 600_000),
  LIVE_AUDIO_WS_MAX_MISSED_PONGS: int(2, 1, 100),
  LIVE_AUDIO_WS_MAX_PAYLOAD_BYTES: int(2 * 1024 * 1024, 1024, 64 * 1024 * 1024),
  LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: int(5, 1),
  LIVE_AUDIO_WS_SEND_BUFFER_BYTES: int(1024 * 1024, 1024),
  LIVE_AUDIO_WS_SEND_STALL_MS: int(10_000, 10),
  LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: int(600, 1),
  LIVE_AUDIO_MAX_AUDIO_BYTES_PER_MINUTE: int(50 * 1024 * 1024, 1024),
  LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES: int(4, 1, 1000),
  LIVE_AUDIO_WS_PREAUTH_MAX_BYTES: int(4096, 256, 64 * 1024),
  REDIS_URL: str(undefined),
  LIVE_AUDIO_CLUSTER_SECRET: str(undefined),
  LIVE_AUDIO_INSTANCE_ID: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
    .refine((v) => v === undefined || /^[A-Za-z0-9_.-]{1,64}$/.test(v), 'must be 1-64 characters from A-Z, a-z, 0-9, _ . -'),
  LIVE_AUDIO_ADVERTISE_URL: str(undefined),
  LIVE_AUDIO_REDIS_KEY_PREFIX: str('live-audio:'),
  LIVE_AUDIO_REDIS_COMMAND_TIMEOUT_MS: int(1_000, 10, 60_000),
  LIVE_AUDIO_REDIS_DOWN_AFTER_MS: int(5_000, 0, 600_000),
  LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: int(2_000, 50, 60_000),
  LIVE_AUDIO_MISSED_HEARTBEATS: int(3, 2, 100),
  LIVE_AUDIO_FORWARD_TIMEOUT_MS: int(10_000, 100, 600_000),
});

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses an environment (normally `process.env`) into the typed configuration, or throws `ConfigError`. */
export function loadConfig(env: Record<string, string | undefined>, opts: { isTTY?: boolean } = {}): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const isProduction = e.NODE_ENV === 'production';
  const isTest = e.NODE_ENV === 'test';
  const baseUrl = e.GEMINI_BASE_URL;
  if (baseUrl !== undefined && !/^http:\/\/[^/]+(\/.*)?$/.test(baseUrl) && !/^https:\/\//.test(baseUrl)) {
    throw new ConfigError([`GEMINI_BASE_URL: must be an http:// or https:// URL`]);
  }
  if (
    e.LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS > 0 &&
    e.LIVE_AUDIO_CONTEXT_TARGET_TOKENS > 0 &&
    e.LIVE_AUDIO_CONTEXT_TARGET_TOKENS >= e.LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS
  ) {
    throw new ConfigError(['LIVE_AUDIO_CONTEXT_TARGET_TOKENS: must be below LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS']);
  }
  const jsonLimitBytes = parseByteSize(e.LIVE_AUDIO_JSON_LIMIT!);
  if (jsonLimitBytes === null || jsonLimitBytes < 1024) {
    throw new ConfigError(['LIVE_AUDIO_JSON_LIMIT: must be a byte size of at least 1024 (e.g. 8mb)']);
  }
  if (e.LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS > e.LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(['LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS: must not exceed LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS']);
  }
  if (isProduction && !e.METRICS_TOKEN && !e.METRICS_PUBLIC) {
    throw new ConfigError([
      'METRICS_TOKEN: required in production (NODE_ENV=production): /metrics would be open to anyone. ' +
        'Set METRICS_TOKEN to a secret the scraper sends as "Authorization: Bearer <token>", ' +
        'or METRICS_PUBLIC=true if /metrics is deliberately public (e.g. only reachable from a private network).',
    ]);
  }
  let extraModels: ExtraModelSpec[];
  try {
    extraModels = parseExtraModels(e.LIVE_AUDIO_EXTRA_MODELS);
  } catch (err) {
    if (err instanceof ModelConfigError) throw new ConfigError([err.message]);
    throw err;
  }
  const webhookUrl = e.LIVE_AUDIO_WEBHOOK_URL;
  if (webhookUrl !== undefined) {
    if (!/^https?:\/\/[^/]/.test(webhookUrl)) throw new ConfigError(['LIVE_AUDIO_WEBHOOK_URL: must be an http:// or https:// URL']);
    if (!e.LIVE_AUDIO_WEBHOOK_SECRET || e.LIVE_AUDIO_WEBHOOK_SECRET.length < 16) {
      throw new ConfigError(['LIVE_AUDIO_WEBHOOK_SECRET: required with LIVE_AUDIO_WEBHOOK_URL (at least 16 characters)']);
    }
  }
  const trust = parseTrustProxy(e.TRUST_PROXY);
  if ('error' in trust) throw new ConfigError([`TRUST_PROXY: ${trust.error}`]);
  const cluster = clusterConfig(e);
  const pretty = e.LOG_PRETTY !== undefined ? /^(1|true|yes|on)$/i.test(e.LOG_PRETTY) : !isProduction && !!opts.isTTY;
  return {
    nodeEnv: e.NODE_ENV!,
    isProduction,
    host: e.HOST!,
    port: e.PORT,
    log: { level: e.LOG_LEVEL ?? (isTest ? 'silent' : 'info'), pretty, transcripts: e.LOG_TRANSCRIPTS },
    gemini: {
      apiKey: e.GEMINI_API_KEY ?? e.GOOGLE_API_KEY ?? '',
      baseUrl,
      apiVersion: e.GEMINI_API_VERSION!,
      setupTimeoutMs: e.GEMINI_SETUP_TIMEOUT_MS,
      defaultModel: e.LIVE_AUDIO_DEFAULT_MODEL!,
      extraModels,
      systemInstruction: e.LIVE_AUDIO_SYSTEM_INSTRUCTION!,
      voiceName: e.LIVE_AUDIO_VOICE,
    },
    conversations: {
      profilesFile: e.LIVE_AUDIO_PROFILES_FILE,
      transcriptRetentionMs: e.LIVE_AUDIO_TRANSCRIPT_RETENTION_MS,
      maxTokensPerDay: e.LIVE_AUDIO_MAX_TOKENS_PER_DAY,
      webhook:
        webhookUrl !== undefined
          ? {
              url: webhookUrl,
              secret: e.LIVE_AUDIO_WEBHOOK_SECRET!,
              maxAttempts: e.LIVE_AUDIO_WEBHOOK_MAX_ATTEMPTS,
              timeoutMs: e.LIVE_AUDIO_WEBHOOK_TIMEOUT_MS,
              maxQueue: e.LIVE_AUDIO_WEBHOOK_MAX_QUEUE,
            }
          : undefined,
    },
    emulator: e.LIVE_AUDIO_EMULATOR,
    sessions: {
      maxAgeMs: e.LIVE_AUDIO_SESSION_MAX_MS,
      idleTimeoutMs: e.LIVE_AUDIO_IDLE_TIMEOUT_MS,
      maxPerUser: e.LIVE_AUDIO_MAX_SESSIONS_PER_USER,
      maxGlobal: e.LIVE_AUDIO_MAX_CONCURRENT_SESSIONS,
      transcribeWaitMs: e.LIVE_AUDIO_TRANSCRIBE_WAIT_MS,
      tombstoneMs: e.LIVE_AUDIO_SESSION_TOMBSTONE_MS,
    },
    audio: {
      ffmpegPath: e.FFMPEG_PATH,
      maxChunkBytes: e.LIVE_AUDIO_MAX_CHUNK_BYTES,
      jsonBodyLimit: e.LIVE_AUDIO_JSON_LIMIT!,
      reorderWaitMs: e.LIVE_AUDIO_REORDER_WAIT_MS,
      reorderMaxBytes: e.LIVE_AUDIO_REORDER_MAX_BYTES,
      maxRealtimeFactor: e.LIVE_AUDIO_MAX_REALTIME_FACTOR,
      pacingBurstMs: e.LIVE_AUDIO_PACING_BURST_MS,
      upstreamMaxBufferedBytes: e.LIVE_AUDIO_UPSTREAM_MAX_BUFFERED_BYTES,
      decoderStallMs: e.LIVE_AUDIO_DECODER_STALL_MS,
      decoderRestartsPerMinute: e.LIVE_AUDIO_DECODER_RESTARTS_PER_MINUTE,
      decoderPoolSize: e.LIVE_AUDIO_DECODER_POOL_SIZE,
      decoderPoolMaxAgeMs: e.LIVE_AUDIO_DECODER_POOL_MAX_AGE_MS,
    },
    http: {
      jsonLimitBytes,
      controlJsonLimitBytes: e.LIVE_AUDIO_CONTROL_JSON_LIMIT,
      requestTimeoutMs: e.LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS,
      maxOpenConnectionsPerIp: e.LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP,
      bodyBytesInFlightPerUser: e.LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT_PER_USER,
      bodyBytesInFlight: e.LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT,
    },
    auth: { apiKeys: e.LIVE_AUDIO_API_KEYS!, apiKeysFile: e.LIVE_AUDIO_API_KEYS_FILE!, jwtSecret: e.JWT_SECRET },
    cors: { origins: e.CORS_ORIGINS },
    limits: {
      trustProxy: trust.value,
      requestsPerMinute: e.LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE,
      transcriptionsPerMinute: e.LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE,
      sessionStartsPerMinute: e.LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE,
      audioSecondsPerMinute: e.LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE,
      unauthenticatedPerIpPerMinute: e.LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE,
      wsConnectsPerIpPerMinute: e.LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE,
    },
    ops: { metricsToken: e.METRICS_TOKEN, metricsPublic: e.METRICS_PUBLIC, drainMs: e.LIVE_AUDIO_DRAIN_MS },
    upstream: {
      backlogMs: e.LIVE_AUDIO_UPSTREAM_BACKLOG_MS,
      reconnectBudgetMs: e.LIVE_AUDIO_RECONNECT_BUDGET_MS,
      backoffBaseMs: e.LIVE_AUDIO_RECONNECT_BACKOFF_BASE_MS,
      backoffMaxMs: e.LIVE_AUDIO_RECONNECT_BACKOFF_MAX_MS,
      quickFailureMs: e.LIVE_AUDIO_QUICK_FAILURE_MS,
      quickFailureLimit: e.LIVE_AUDIO_QUICK_FAILURE_LIMIT,
      replayMs: e.LIVE_AUDIO_RECONNECT_REPLAY_MS,
      contextCompression: e.LIVE_AUDIO_CONTEXT_COMPRESSION
        ? {
            ...(e.LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS > 0 ? { triggerTokens: e.LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS } : {}),
            ...(e.LIVE_AUDIO_CONTEXT_TARGET_TOKENS > 0 ? { targetTokens: e.LIVE_AUDIO_CONTEXT_TARGET_TOKENS } : {}),
          }
        : null,
    },
    ws: {
      authTimeoutMs: e.LIVE_AUDIO_AUTH_TIMEOUT_MS,
      inactivityTimeoutMs: e.LIVE_AUDIO_INACTIVITY_TIMEOUT_MS,
      pingIntervalMs: e.LIVE_AUDIO_WS_PING_INTERVAL_MS,
      maxMissedPongs: e.LIVE_AUDIO_WS_MAX_MISSED_PONGS,
      maxPayloadBytes: e.LIVE_AUDIO_WS_MAX_PAYLOAD_BYTES,
      maxConnectionsPerUser: e.LIVE_AUDIO_MAX_CONNECTIONS_PER_USER,
      sendBufferBytes: e.LIVE_AUDIO_WS_SEND_BUFFER_BYTES,
      sendStallMs: e.LIVE_AUDIO_WS_SEND_STALL_MS,
      maxMessagesPerMinute: e.LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE,
      maxAudioBytesPerMinute: e.LIVE_AUDIO_MAX_AUDIO_BYTES_PER_MINUTE,
      preAuthMaxFrames: e.LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES,
      preAuthMaxFrameBytes: e.LIVE_AUDIO_WS_PREAUTH_MAX_BYTES,
    },
    cluster,
  };
}

/** The cluster section: undefined without `REDIS_URL`; with it the secret is required and the URLs are checked. */
function clusterConfig(e: z.infer<typeof envSchema>): ClusterConfig | undefined {
  if (!e.REDIS_URL) return undefined;
  if (!/^rediss?:\/\//.test(e.REDIS_URL)) throw new ConfigError(['REDIS_URL: must start with redis:// or rediss://']);
  if (!e.LIVE_AUDIO_CLUSTER_SECRET || e.LIVE_AUDIO_CLUSTER_SECRET.length < 32) {
    throw new ConfigError(['LIVE_AUDIO_CLUSTER_SECRET: required with REDIS_URL, at least 32 characters (shared by every instance)']);
  }
  if (e.LIVE_AUDIO_ADVERTISE_URL === undefined && e.PORT === 0) {
    throw new ConfigError(['LIVE_AUDIO_ADVERTISE_URL: required with REDIS_URL when PORT is 0 (the other instances must know where to reach this one)']);
  }
  if (e.LIVE_AUDIO_ADVERTISE_URL !== undefined) {
    try {
      parseAdvertiseUrl(e.LIVE_AUDIO_ADVERTISE_URL);
    } catch (err) {
      throw new ConfigError([`LIVE_AUDIO_ADVERTISE_URL: ${(err as Error).message}`]);
    }
  }
  return {
    redisUrl: e.REDIS_URL,
    secret: e.LIVE_AUDIO_CLUSTER_SECRET,
    instanceId: e.LIVE_AUDIO_INSTANCE_ID,
    advertiseUrl: e.LIVE_AUDIO_ADVERTISE_URL,
    keyPrefix: e.LIVE_AUDIO_REDIS_KEY_PREFIX!,
    commandTimeoutMs: e.LIVE_AUDIO_REDIS_COMMAND_TIMEOUT_MS,
    downAfterMs: e.LIVE_AUDIO_REDIS_DOWN_AFTER_MS,
    heartbeatIntervalMs: e.LIVE_AUDIO_HEARTBEAT_INTERVAL_MS,
    missedHeartbeats: e.LIVE_AUDIO_MISSED_HEARTBEATS,
    forwardTimeoutMs: e.LIVE_AUDIO_FORWARD_TIMEOUT_MS,
  };
}

/** True when the server should start the built-in Gemini Live emulator (offline demo mode). */
export function usesEmbeddedEmulator(cfg: AppConfig): boolean {
  if (cfg.emulator === 'on') return true;
  if (cfg.emulator === 'off') return false;
  return !cfg.gemini.apiKey && !cfg.gemini.baseUrl;
}

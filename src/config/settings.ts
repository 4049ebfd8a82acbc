import { DEFAULT_LIVE_MODEL_ID } from '../services/models/capabilities';
import { parseExtraModels } from '../services/models/extra-models';
import { parseTrustProxy } from '../services/policy/client-ip';
import { bool, byteSize, int, list, num, oneOf, parsed, str } from './setting-types';

/**
 * Every environment variable the server reads, once: its parser with the default, a one-line description, and its
 * section. `AppConfig` is derived from this table (`config.ts`), and so is `.env.example` (`npm run env:example`;
 * a test fails when the file and the table differ).
 *
 * The one naming rule: a variable's field is `<section>.<name>`, where name is the variable without the
 * `LIVE_AUDIO_` prefix, then without its section's `prefix` when it starts with it, in camelCase. The `top`
 * section's fields sit at the top of the config. E.g. `LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE` in `limits` →
 * `limits.maxRequestsPerIpPerMinute`; `LIVE_AUDIO_WS_PING_INTERVAL_MS` in `ws` (prefix `WS_`) → `ws.pingIntervalMs`;
 * `PORT` in `top` → `port`. Variable names never change (users' `.env` files keep working).
 */
export const SETTINGS = {
  top: {
    title: 'Server',
    prefix: '',
    vars: {
      NODE_ENV: str(
        'development | production (no development key, no localhost CORS origins, METRICS_TOKEN required) | test (silent logs unless LOG_LEVEL is set)',
        'development',
      ),
      HOST: str('Address to listen on', '0.0.0.0'),
      PORT: int('TCP port to listen on (0: any free port)', 3000, 0, 65535),
      LIVE_AUDIO_EMULATOR: oneOf('auto (the built-in emulator when no key and no base URL are set) | on | off', ['auto', 'on', 'off'], 'auto'),
    },
  },
  log: {
    title: 'Logs',
    prefix: 'LOG_',
    vars: {
      LOG_LEVEL: str('trace | debug | info | warn | error | silent (default: info, silent with NODE_ENV=test)', undefined, { example: 'info' }),
      LOG_PRETTY: bool('Pretty logs (default: on when running in a terminal outside production)', undefined, { example: 'true', commented: true }),
      LOG_TRANSCRIPTS: bool("Log the user's words and the model's replies (off by default: they are personal data)", false),
    },
  },
  gemini: {
    title: 'Gemini Live upstream',
    prefix: 'GEMINI_',
    vars: {
      GEMINI_API_KEY: str('Your Gemini API key (GOOGLE_API_KEY is accepted too). Without one, replies come from the emulator.', undefined),
      GOOGLE_API_KEY: str('The Gemini API key under its other name (GEMINI_API_KEY wins when both are set)', undefined),
      GEMINI_BASE_URL: parsed(
        "Replace Google's endpoint, e.g. http://127.0.0.1:9999 for a standalone emulator (npm run emulator)",
        (raw) =>
          raw === undefined || /^http:\/\/[^/]+(\/.*)?$/.test(raw) || /^https:\/\//.test(raw)
            ? { value: raw }
            : { error: 'must be an http:// or https:// URL' },
      ),
      GEMINI_API_VERSION: str('Gemini API version of the Live endpoint', 'v1beta'),
      GEMINI_SETUP_TIMEOUT_MS: int('Upper bound for the Live setup handshake (SDK 2.32.0 can hang forever without one)', 10_000, 100, 120_000),
      LIVE_AUDIO_DEFAULT_MODEL: str(
        "Model used when the client asks for none, or for a non-Live model (e.g. the frontend's gemini-2.5-pro)",
        DEFAULT_LIVE_MODEL_ID,
      ),
      LIVE_AUDIO_EXTRA_MODELS: parsed(
        'Extra Live model ids to accept as requested: comma-separated, or a JSON array declaring capabilities, e.g. ' +
          '[{"id":"gemini-3.9-live","like":"gemini-3.8-live","capabilities":{"thinking":{"kind":"level","levels":["low","high"]}}}]',
        (raw) => ({ value: parseExtraModels(raw) }),
      ),
      LIVE_AUDIO_SYSTEM_INSTRUCTION: str(
        'Persona of the `default` profile (sessions that name no profile)',
        'You are a helpful, friendly voice assistant. Keep answers short and conversational.',
      ),
      LIVE_AUDIO_VOICE: str("Prebuilt voice of the `default` profile's audio replies (e.g. Puck, Kore, Zephyr); empty = the model's default", undefined),
    },
  },
  upstream: {
    title: 'Upstream resilience (goAway rotation, reconnects, no audio lost)',
    prefix: 'UPSTREAM_',
    vars: {
      LIVE_AUDIO_UPSTREAM_BACKLOG_MS: int(
        'Audio held per session while the Gemini connection is down or rotating; beyond it the oldest is dropped (counted)',
        10_000,
        0,
        600_000,
      ),
      LIVE_AUDIO_RECONNECT_BUDGET_MS: int('Give up reconnecting after this long (the session then ends with the last error)', 30_000, 100, 600_000),
      LIVE_AUDIO_RECONNECT_BACKOFF_BASE_MS: int('Reconnect backoff with full jitter: attempt n waits a random time up to min(max, base * 2^n)', 250, 1, 60_000),
      LIVE_AUDIO_RECONNECT_BACKOFF_MAX_MS: int('Longest reconnect backoff', 8_000, 1, 300_000),
      LIVE_AUDIO_QUICK_FAILURE_MS: int(
        'This many connections in a row (QUICK_FAILURE_LIMIT) that each end within this long of connecting fail the session',
        5_000,
        0,
        600_000,
      ),
      LIVE_AUDIO_QUICK_FAILURE_LIMIT: int('Quick failures in a row that fail the session', 3, 1, 100),
      LIVE_AUDIO_RECONNECT_REPLAY_MS: int(
        'After a dropped connection, resend the unconfirmed audio sent this long before the drop was noticed (0 = never)',
        200,
        0,
        10_000,
      ),
      LIVE_AUDIO_CONTEXT_COMPRESSION: bool('Context window compression (sliding window) so sessions are not cut by the context limit', true),
      LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS: int('Context size that triggers compression (0 = the API default)', 0, 0, 100_000_000, { example: '' }),
      LIVE_AUDIO_CONTEXT_TARGET_TOKENS: int('Context size compression shrinks to (0 = the API default; below the trigger)', 0, 0, 100_000_000, {
        example: '',
      }),
    },
  },
  sessions: {
    title: 'Sessions',
    prefix: 'SESSION_',
    vars: {
      LIVE_AUDIO_SESSION_MAX_MS: int("Hard cap on a session's life (15 minutes)", 900_000, 1_000),
      LIVE_AUDIO_IDLE_TIMEOUT_MS: int('A session without audio for this long is ended', 120_000, 1_000),
      LIVE_AUDIO_MAX_SESSIONS_PER_USER: int('Live sessions per API key / user', 5, 1),
      LIVE_AUDIO_MAX_CONCURRENT_SESSIONS: int('Live sessions on this server', 200, 1),
      LIVE_AUDIO_TRANSCRIBE_WAIT_MS: int("How long POST /transcribe waits for news before answering with the current turn's state", 1_200, 0, 30_000),
      LIVE_AUDIO_SESSION_TOMBSTONE_MS: int(
        'How long ended sessions are remembered so clients get SESSION_EXPIRED instead of SESSION_NOT_FOUND',
        900_000,
        0,
      ),
      LIVE_AUDIO_SESSION_TOMBSTONE_MAX: int(
        'Ended sessions remembered at most (beyond it the key holding the most gives its oldest, so one key cannot push out the others; each holds its status: setup, usage, end reason, about 0.5 KB)',
        10_000,
        1,
        1_000_000,
      ),
    },
  },
  tools: {
    title: 'Function calls (tools declared per session)',
    prefix: 'TOOL_',
    vars: {
      LIVE_AUDIO_TOOL_TIMEOUT_MS: int(
        'A function call left unanswered this long is answered with an error on the client\'s behalf (the client is told)',
        30_000,
        100,
        600_000,
      ),
      LIVE_AUDIO_MAX_PENDING_TOOL_CALLS: int('Unanswered function calls one session may hold; calls beyond it are answered with an error at once', 16, 1, 128),
      LIVE_AUDIO_MAX_TOOL_RESPONSE_BYTES: int("Largest function answer a client may send (JSON bytes)", 64 * 1024, 1024, 1024 * 1024),
    },
  },
  dialects: {
    title: "The older systems' client protocols (README \"Dialects\")",
    prefix: 'DIALECT_',
    vars: {
      LIVE_AUDIO_DIALECT_REPLY_WAIT_MS: int(
        "How long the dialects' request-response routes (Elk /conversation, POST /audio-stream) wait for the reply",
        30_000,
        1_000,
        120_000,
      ),
    },
  },
  audio: {
    title: 'Audio',
    prefix: '',
    vars: {
      FFMPEG_PATH: str(
        "ffmpeg binary; default: ffmpeg on PATH, else the static 2018 build in @ffmpeg-installer/ffmpeg (a warning: install your distribution's ffmpeg). The choice and its version are logged at start-up.",
        undefined,
      ),
      LIVE_AUDIO_MAX_CHUNK_BYTES: int('Largest decoded audio chunk accepted (5 MiB)', 5 * 1024 * 1024, 1024),
      LIVE_AUDIO_WEBM_DECODER: oneOf(
        "How browser WebM/Opus recordings are decoded: in_process (a WebM demuxer and libopus at 16 kHz mono inside the server, no process per recording: ~1.3 ms CPU per audio second) | ffmpeg (one ffmpeg process per recording, as for Ogg/MP4/WAV, with the warm pool and the launcher). Ogg, MP4 and resampled WAV/PCM always use ffmpeg",
        ['in_process', 'ffmpeg'],
        'in_process',
      ),
      LIVE_AUDIO_DECODE_THREADS: int(
        'Worker threads that decode in-process WebM/Opus (LIVE_AUDIO_WEBM_DECODER=in_process), so decoding does not take the relaying thread\'s time; 0 = decode on the main thread. A thread that dies or hangs is replaced and its streams replayed',
        1,
        0,
        16,
      ),
      LIVE_AUDIO_DECODE_THREAD_ENTRY: str(
        "Tests only: the decoding threads' entry file (an absolute path), so a spawned test server can run a thread that fails on purpose. Honoured with NODE_ENV=test; with any other NODE_ENV the server refuses to start. Unset: the server's own entry",
        undefined,
        { example: '', commented: true },
      ),
      LIVE_AUDIO_REORDER_WAIT_MS: int(
        'WebM chunks are put back in the order of their own timing: a chunk that arrives before an earlier one waits at most this long for it (then the gap is skipped and counted); in-order chunks never wait',
        1_500,
        0,
        10_000,
      ),
      LIVE_AUDIO_REORDER_MAX_BYTES: int('Most bytes of early chunks held per session; beyond it the oldest gap is skipped at once', 1024 * 1024, 16 * 1024, 64 * 1024 * 1024),
      LIVE_AUDIO_MAX_REALTIME_FACTOR: num('Decoded audio goes upstream at most this many times real time (a backlog catches up at that rate)', 2, 1, 100),
      LIVE_AUDIO_PACING_BURST_MS: int('Audio that may go upstream at once before pacing applies (a whole chunk decoded at once always goes at once)', 5_000, 100, 600_000),
      LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: int(
        'Largest upstream audio message, ms of PCM: audio decoded at the same moment goes as one message up to this size (never waiting for more; trickling audio leaves in 20 ms+ frames as it comes). The default, 100, keeps to the 20-100 ms messages Google recommends for live audio; 1000 sends a decoded MediaRecorder second as one message (fewer sends, less CPU: see BENCHMARKS.md) but is untried against the real service; at most LIVE_AUDIO_PACING_BURST_MS',
        100,
        20,
        60_000,
      ),
      LIVE_AUDIO_UPSTREAM_MAX_BUFFERED_BYTES: int(
        'No audio is sent while the upstream socket holds more than this (bytes not yet written to the network)',
        256 * 1024,
        1024,
        64 * 1024 * 1024,
      ),
      LIVE_AUDIO_DECODER_STALL_MS: int('A decoder (ffmpeg) that accepts nothing for this long while it owes audio is killed and replaced', 5_000, 100, 600_000),
      LIVE_AUDIO_DECODER_NICE: int(
        "How far below the server's CPU priority the ffmpeg decoders run: added to the server's nice value, as nice -n (0 = the same priority). The server's one event loop relays every session, each decoder one: when the CPU is contended, decoders at a lower priority than the server no longer hold the loop (and every session's audio) behind them, and one session's decoding cannot starve the rest (BENCHMARKS.md)",
        5,
        0,
        19,
      ),
      LIVE_AUDIO_DECODER_RESTARTS_PER_MINUTE: int(
        'Decoder processes one session may start per minute (new recordings, format changes, restarts); 0 = unlimited',
        10,
        0,
        10_000,
      ),
      LIVE_AUDIO_DECODER_POOL_SIZE: int(
        'Warm decoders: this many ffmpeg processes wait ready (while any session is open) so that a new recording never waits for a process start; 0 = none. Each costs ~1.5 MB (PSS) while it waits',
        2,
        0,
        64,
      ),
      LIVE_AUDIO_DECODER_POOL_MAX_AGE_MS: int('A warm decoder that waited this long is replaced (ms)', 600_000, 1_000, 86_400_000),
      LIVE_AUDIO_DECODER_LAUNCHER: bool(
        "Start ffmpeg decoders from a small launcher process, so that forking never blocks the server's event loop (audio goes over a private Unix socket straight to ffmpeg); off: spawned in-process. While the launcher restarts, decoders are spawned in-process (/metrics: live_audio_ffmpeg_launcher_up, live_audio_ffmpeg_decoder_starts_total{path}). The launcher inherits the server's scheduling priority at start: renice the server's whole process tree (every thread, the launcher, its ffmpegs), not its pid alone, or its decoders keep the old priority",
        true,
      ),
    },
  },
  http: {
    title: 'HTTP edge (what a request may cost; see README "Hostile input")',
    prefix: 'HTTP_',
    vars: {
      LIVE_AUDIO_JSON_LIMIT: byteSize(
        'Cap of any JSON request body; /transcribe gets less when its largest legal body (a LIVE_AUDIO_MAX_CHUNK_BYTES chunk as base64 plus 64 KiB) is smaller: 6.73 MiB with the defaults',
        '8mb',
        1024,
      ),
      LIVE_AUDIO_CONTROL_JSON_LIMIT: byteSize(
        'JSON body cap of the routes without audio (session start/end): room for a 32 KiB system instruction or 1,000 custom_vocabulary terms (the largest legal start body is about 103 KB)',
        '128kb',
        1024,
      ),
      LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS: int('The whole request (headers and body) must arrive within this long (408)', 30_000, 1_000, 600_000),
      LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS: int('Request headers must arrive within this long (408; at most the request timeout)', 10_000, 500, 600_000),
      LIVE_AUDIO_MAX_OPEN_CONNECTIONS_PER_IP: int(
        'Open connections (HTTP and WebSocket) per client address; more get 429 and are closed (0 = no cap). Proxies named in TRUST_PROXY are exempt: cap per client at the proxy then.',
        100,
        0,
        1_000_000,
      ),
      LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT_PER_USER: byteSize(
        'Request body bytes being received at once per user (429 above it); a user with nothing in flight may always send one body (0 = no cap)',
        '16mb',
        0,
      ),
      LIVE_AUDIO_MAX_BODY_BYTES_IN_FLIGHT: byteSize('Request body bytes being received at once over all users (503 above it; 0 = no cap)', '64mb', 0),
    },
  },
  auth: {
    title: 'Auth',
    prefix: '',
    vars: {
      LIVE_AUDIO_API_KEYS: str('API keys as comma-separated name:key pairs (keys are ak_ + 64 hex; create one with `npm run keys -- create <name>`)', ''),
      LIVE_AUDIO_API_KEYS_FILE: str('Key file managed by `npm run keys` (holds SHA-256 hashes only)', '.live-audio/api-keys.json'),
      JWT_SECRET: str('HS256 secret for Authorization: Bearer <JWT> (at least 32 characters; empty disables JWT auth)', undefined),
    },
  },
  cors: {
    title: 'CORS',
    prefix: 'CORS_',
    vars: {
      CORS_ORIGINS: list('Allowed browser origins (comma-separated; * for any). Outside production, localhost origins are allowed too.', {
        example: 'http://localhost:5173',
      }),
    },
  },
  ws: {
    title: 'WebSocket /ws/live-audio',
    prefix: 'WS_',
    vars: {
      LIVE_AUDIO_AUTH_TIMEOUT_MS: int('An unauthenticated socket is closed (auth_timeout, 1008) after this long', 10_000, 100, 600_000),
      LIVE_AUDIO_INACTIVITY_TIMEOUT_MS: int('An authenticated socket without client messages is closed (inactivity_timeout, 1000) after this long', 300_000, 100),
      LIVE_AUDIO_WS_PING_INTERVAL_MS: int('Protocol ping interval', 15_000, 10, 600_000),
      LIVE_AUDIO_WS_MAX_MISSED_PONGS: int('The connection is dropped after this many unanswered pings', 2, 1, 100),
      LIVE_AUDIO_WS_MAX_PAYLOAD_BYTES: int('Largest client frame, checked before parsing (2 MiB; larger frames close with 1009)', 2 * 1024 * 1024, 1024, 64 * 1024 * 1024),
      LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: int('Open WebSocket connections per API key / user', 5, 1),
      LIVE_AUDIO_WS_SEND_BUFFER_BYTES: int('Outbound buffer cap per socket: above it reply audio is dropped (text and control messages never are)', 1024 * 1024, 1024),
      LIVE_AUDIO_WS_SEND_STALL_MS: int('A socket whose outbound buffer stays above the cap this long is closed with 1013', 10_000, 10),
      LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: int('Client messages per user per one-minute window (over it: rate_limit_exceeded, the message is dropped)', 600, 1),
      LIVE_AUDIO_MAX_AUDIO_BYTES_PER_MINUTE: int('Audio bytes per user per one-minute window', 50 * 1024 * 1024, 1024),
      LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES: int(
        'Before authentication: at most this many frames (the auth frame and what is pipelined behind it); more, or a frame while our replies are unread, closes with 1008',
        4,
        1,
        1000,
      ),
      LIVE_AUDIO_WS_PREAUTH_MAX_BYTES: int('Before authentication: the largest frame accepted (checked before parsing; larger ones close with 1008)', 4096, 256, 64 * 1024),
    },
  },
  limits: {
    title: 'Limits (per authenticated user, fixed one-minute windows; 0 = unlimited)',
    prefix: '',
    vars: {
      LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: int('REST requests per user', 300, 0),
      LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: int('POST /transcribe calls per user', 120, 0),
      LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: int('Sessions started per user', 20, 0),
      LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: int('Decoded audio per user, REST and WebSocket together (real time is 60)', 120, 0),
      LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: int('Per client IP, strangers only: requests that fail to authenticate', 600, 0),
      LIVE_AUDIO_MAX_CONNECTIONS_PER_IP_PER_MINUTE: int(
        'Per client IP: WebSocket upgrades whose credentials have not checked out (valid credentials on the upgrade never count; none count until the auth message checks out; bad ones count)',
        60,
        0,
      ),
      TRUST_PROXY: parsed(
        'Proxies allowed to set X-Forwarded-For: empty = none, a hop count (1), or addresses/subnets (loopback,10.0.0.0/8); "true" is refused (any client could pick its IP). Without it every client behind a proxy shares its per-IP budgets.',
        parseTrustProxy,
      ),
    },
  },
  ops: {
    title: 'Operations',
    prefix: '',
    vars: {
      METRICS_TOKEN: str(
        'Bearer token GET /metrics requires; required with NODE_ENV=production unless METRICS_PUBLIC=true (outside production an empty token leaves /metrics open)',
        undefined,
      ),
      METRICS_PUBLIC: bool('Serve /metrics without a token in production (start-up refuses an open /metrics otherwise)', false),
      LIVE_AUDIO_DRAIN_MS: int('On SIGTERM/SIGINT: how long live sessions may finish before they are ended', 30_000, 0, 600_000),
    },
  },
  conversations: {
    title: 'Conversations: profiles, transcripts, usage (README "Conversations")',
    prefix: '',
    vars: {
      LIVE_AUDIO_PROFILES_FILE: str('Named profiles (YAML or JSON), re-read when the file changes; built in without a file: default, interview, transcribe', undefined),
      LIVE_AUDIO_TRANSCRIPT_RETENTION_MS: int("How long an ended session's transcript stays readable (1 hour)", 3_600_000, 0, 30 * 24 * 3_600_000),
      LIVE_AUDIO_TRANSCRIPT_MAX_RECORDS: int('Transcripts held in memory at most, live and ended (beyond it the key holding the most gives its soonest-expiring one)', 10_000, 1, 1_000_000),
      LIVE_AUDIO_TRANSCRIPT_MAX_BYTES: int('Approximate memory the held transcripts may take (64 MiB; beyond it the key holding the most bytes gives its soonest-expiring one)', 64 * 1024 * 1024, 1024 * 1024),
      LIVE_AUDIO_MAX_TOKENS_PER_DAY: int(
        'Daily token budget per API key or user (0 = none): new sessions get 429 TOKEN_BUDGET_EXHAUSTED, running ones end at the next turn boundary; a key\'s own "maxTokensPerDay" in the key file wins',
        0,
        0,
      ),
    },
  },
  webhook: {
    title: 'The session.ended webhook (README "Conversations")',
    prefix: 'WEBHOOK_',
    vars: {
      LIVE_AUDIO_WEBHOOK_URL: str('Where session.ended events are POSTed (empty: no webhook)', undefined),
      LIVE_AUDIO_WEBHOOK_SECRET: str('HMAC-SHA256 signing secret, required with the URL (at least 16 characters; README says how a receiver verifies)', undefined),
      LIVE_AUDIO_WEBHOOK_MAX_ATTEMPTS: int('Attempts per delivery', 8, 1, 100),
      LIVE_AUDIO_WEBHOOK_TIMEOUT_MS: int("One attempt's deadline", 10_000, 100, 600_000),
      LIVE_AUDIO_WEBHOOK_MAX_QUEUE: int('Deliveries waiting at most (beyond: the oldest is dropped)', 1_000, 1, 1_000_000),
    },
  },
  cluster: {
    title: 'Several instances as one service (README "Running several instances")',
    prefix: 'CLUSTER_',
    vars: {
      REDIS_URL: str('Unset: one process, everything in memory. Set: every instance sharing this Redis 7 is one service.', undefined),
      LIVE_AUDIO_CLUSTER_SECRET: str('Shared by every instance, at least 32 characters (required with REDIS_URL); sent only on instance-to-instance calls', undefined),
      LIVE_AUDIO_INSTANCE_ID: parsed("This instance's id (default: random per process)", (raw) =>
        raw === undefined || /^[A-Za-z0-9_.-]{1,64}$/.test(raw.trim())
          ? { value: raw?.trim() }
          : { error: 'must be 1-64 characters from A-Z, a-z, 0-9, _ . -' },
      ),
      LIVE_AUDIO_ADVERTISE_URL: str(
        'The origin the other instances reach this one on (default http://<HOST>:<PORT>, the host name when HOST is 0.0.0.0; required when PORT=0)',
        undefined,
      ),
      LIVE_AUDIO_REDIS_KEY_PREFIX: str('Prefix of every Redis key (one Redis can serve several deployments)', 'live-audio:'),
      LIVE_AUDIO_REDIS_COMMAND_TIMEOUT_MS: int('Bound on any Redis command', 1_000, 10, 60_000),
      LIVE_AUDIO_REDIS_DOWN_AFTER_MS: int('A lost Redis connection reports "down" (instead of "reconnecting") after this long', 5_000, 0, 600_000),
      LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: int('Registry heartbeat; an instance is dead for the others after interval x missed (6 s)', 2_000, 50, 60_000),
      LIVE_AUDIO_MISSED_HEARTBEATS: int('Missed heartbeats after which an instance is dead', 3, 2, 100),
      LIVE_AUDIO_FORWARD_TIMEOUT_MS: int("Bound on a forwarded call until the owner's answer begins (covers its bounded wait)", 10_000, 100, 600_000),
      LIVE_AUDIO_CLUSTER_TRANSCRIPT_MAX_BYTES: int("Largest copy of one session's transcript kept in Redis (oldest turns left out beyond, counted as dropped)", 512 * 1024, 4096, 64 * 1024 * 1024),
      LIVE_AUDIO_CLUSTER_TRANSCRIPTS_PER_KEY: int("Ended sessions' transcripts kept in Redis per key or user (beyond: the oldest go first; the local copies are capped alike)", 100, 1, 100_000),
      LIVE_AUDIO_CLUSTER_SWEEP_INTERVAL_MS: int(
        "How often (jittered ±25 %) each instance ends abandoned sessions (owner dead or handed over, client gone) past their idle timeout or max age",
        5_000,
        100,
        600_000,
      ),
      LIVE_AUDIO_CLUSTER_KEY_CACHE_MS: int('How long an instance trusts its copy of the API keys in Redis: a revoked key stops working on every instance within this', 2_000, 0, 60_000),
    },
  },
} as const;

export type SettingsTable = typeof SETTINGS;
export type SectionName = keyof SettingsTable;

/** The variables' prefix the naming rule removes first. */
export const ENV_PREFIX = 'LIVE_AUDIO_';

/** The naming rule at run time: `LIVE_AUDIO_WS_PING_INTERVAL_MS` in a section with prefix `WS_` → `pingIntervalMs`. */
export function fieldName(variable: string, sectionPrefix: string): string {
  let s = variable.startsWith(ENV_PREFIX) ? variable.slice(ENV_PREFIX.length) : variable;
  if (sectionPrefix && s.startsWith(sectionPrefix)) s = s.slice(sectionPrefix.length);
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Every variable of the table, in table order, with its section and field. */
export function allSettings(): { variable: string; section: SectionName; field: string }[] {
  return (Object.keys(SETTINGS) as SectionName[]).flatMap((section) =>
    Object.keys(SETTINGS[section].vars).map((variable) => ({ variable, section, field: fieldName(variable, SETTINGS[section].prefix) })),
  );
}

import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { parseAdvertiseUrl } from '../cluster/advertise-url';
import { SETTINGS, fieldName, type SectionName, type SettingsTable } from './settings';

export { parseByteSize } from './setting-types';

// ---- The table's types: one field per variable, named by the rule in settings.ts ----

type Strip<S extends string, P extends string> = P extends '' ? S : S extends `${P}${infer R}` ? R : S;
type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${Lowercase<H>}${Capitalize<Camel<T>>}` : Lowercase<S>;
type FieldOf<V extends string, P extends string> = Camel<Strip<Strip<V, 'LIVE_AUDIO_'>, P>>;
type Section<S extends { prefix: string; vars: Record<string, { type: z.ZodType }> }> = {
  -readonly [V in keyof S['vars'] & string as FieldOf<V, S['prefix']>]: z.output<S['vars'][V]['type']>;
};

/** The parsed table, before the derived values: `top` flattened, every other section under its name. */
export type Settings = Section<SettingsTable['top']> & { [N in Exclude<SectionName, 'top'>]: Section<SettingsTable[N]> };

/** The server's whole configuration, derived from the table (`settings.ts`) by `deriveConfig`; never written by hand. */
export type AppConfig = ReturnType<typeof deriveConfig>;
/** The cluster settings, present only when `REDIS_URL` is set. */
export type ClusterConfig = NonNullable<AppConfig['cluster']>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The zod schema of the environment, built from the table (one key per variable). */
function envSchema() {
  const shape: Record<string, z.ZodType> = {};
  for (const section of Object.values(SETTINGS)) {
    for (const [variable, setting] of Object.entries(section.vars)) shape[variable] = setting.type;
  }
  return z.object(shape);
}

/** Parses the environment by the table into its sections (no derived values yet). */
export function parseSettings(env: Record<string, string | undefined>): Settings {
  const parsed = envSchema().safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const where = i.path.join('.');
        return i.message.startsWith(`${where}`) ? i.message : `${where}: ${i.message}`;
      }),
    );
  }
  const values = parsed.data as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [name, section] of Object.entries(SETTINGS) as [SectionName, SettingsTable[SectionName]][]) {
    const target: Record<string, unknown> = name === 'top' ? out : (out[name] = {});
    for (const variable of Object.keys(section.vars)) target[fieldName(variable, section.prefix)] = values[variable];
  }
  return out as Settings;
}

/**
 * Parses an environment (normally `process.env`, after dotenv loaded `.env`) into the typed configuration, or
 * throws `ConfigError`. Nothing else in the code base reads `process.env`.
 */
export function loadConfig(env: Record<string, string | undefined>, opts: { isTTY?: boolean } = {}): AppConfig {
  return deriveConfig(parseSettings(env), opts);
}

/** The rules across variables, and the values computed from several (each keeps its variable's field path). */
function deriveConfig(s: Settings, opts: { isTTY?: boolean }) {
  const isProduction = s.nodeEnv === 'production';
  const { upstream, http, ops, audio } = s;
  if (audio.maxUpstreamFrameMs > audio.pacingBurstMs) {
    throw new ConfigError(['LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: must not exceed LIVE_AUDIO_PACING_BURST_MS (a larger frame would never be sent)']);
  }
  if (upstream.contextTriggerTokens > 0 && upstream.contextTargetTokens > 0 && upstream.contextTargetTokens >= upstream.contextTriggerTokens) {
    throw new ConfigError(['LIVE_AUDIO_CONTEXT_TARGET_TOKENS: must be below LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS']);
  }
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    throw new ConfigError(['LIVE_AUDIO_HTTP_HEADERS_TIMEOUT_MS: must not exceed LIVE_AUDIO_HTTP_REQUEST_TIMEOUT_MS']);
  }
  if (audio.decodeThreadEntry !== undefined) {
    // A file run inside the server's process: a test's fault-injecting thread, never a deployment's.
    if (s.nodeEnv !== 'test') {
      throw new ConfigError([
        `LIVE_AUDIO_DECODE_THREAD_ENTRY: tests only, honoured with NODE_ENV=test (NODE_ENV is ${s.nodeEnv}); unset it to decode on the server's own threads`,
      ]);
    }
    if (!isAbsolute(audio.decodeThreadEntry)) throw new ConfigError(['LIVE_AUDIO_DECODE_THREAD_ENTRY: must be an absolute path']);
  }
  if (isProduction && !ops.metricsToken && !ops.metricsPublic) {
    throw new ConfigError([
      'METRICS_TOKEN: required in production (NODE_ENV=production): /metrics would be open to anyone. ' +
        'Set METRICS_TOKEN to a secret the scraper sends as "Authorization: Bearer <token>", ' +
        'or METRICS_PUBLIC=true if /metrics is deliberately public (e.g. only reachable from a private network).',
    ]);
  }
  return {
    ...s,
    isProduction,
    log: {
      ...s.log,
      level: s.log.level ?? (s.nodeEnv === 'test' ? 'silent' : 'info'),
      pretty: s.log.pretty ?? (!isProduction && !!opts.isTTY),
    },
    gemini: { ...s.gemini, apiKey: s.gemini.apiKey ?? s.gemini.googleApiKey ?? '' },
    /** `session.ended` deliveries; undefined without `LIVE_AUDIO_WEBHOOK_URL`. */
    webhook: webhookConfig(s.webhook),
    /** Several instances as one service (deploy/README.md); undefined without `REDIS_URL` (one process, in memory). */
    cluster: clusterConfig(s),
  };
}

function webhookConfig(w: Settings['webhook']) {
  if (w.url === undefined) return undefined;
  if (!/^https?:\/\/[^/]/.test(w.url)) throw new ConfigError(['LIVE_AUDIO_WEBHOOK_URL: must be an http:// or https:// URL']);
  if (!w.secret || w.secret.length < 16) {
    throw new ConfigError(['LIVE_AUDIO_WEBHOOK_SECRET: required with LIVE_AUDIO_WEBHOOK_URL (at least 16 characters)']);
  }
  return { ...w, url: w.url, secret: w.secret };
}

/** The cluster section: undefined without `REDIS_URL`; with it the secret is required and the URLs are checked. */
function clusterConfig(s: Settings) {
  const c = s.cluster;
  if (!c.redisUrl) return undefined;
  if (!/^rediss?:\/\//.test(c.redisUrl)) throw new ConfigError(['REDIS_URL: must start with redis:// or rediss://']);
  if (!c.secret || c.secret.length < 32) {
    throw new ConfigError(['LIVE_AUDIO_CLUSTER_SECRET: required with REDIS_URL, at least 32 characters (shared by every instance)']);
  }
  if (c.advertiseUrl === undefined && s.port === 0) {
    throw new ConfigError(['LIVE_AUDIO_ADVERTISE_URL: required with REDIS_URL when PORT is 0 (the other instances must know where to reach this one)']);
  }
  if (c.advertiseUrl !== undefined) {
    try {
      parseAdvertiseUrl(c.advertiseUrl);
    } catch (err) {
      throw new ConfigError([`LIVE_AUDIO_ADVERTISE_URL: ${(err as Error).message}`]);
    }
  }
  return { ...c, redisUrl: c.redisUrl, secret: c.secret };
}

/** The context window compression the upstream setup asks for: `null` when turned off; token counts optional. */
export function contextWindowCompression(u: AppConfig['upstream']): { triggerTokens?: number; targetTokens?: number } | null {
  if (!u.contextCompression) return null;
  return {
    ...(u.contextTriggerTokens > 0 ? { triggerTokens: u.contextTriggerTokens } : {}),
    ...(u.contextTargetTokens > 0 ? { targetTokens: u.contextTargetTokens } : {}),
  };
}

/** True when the server should start the built-in Gemini Live emulator (offline demo mode). */
export function usesEmbeddedEmulator(cfg: AppConfig): boolean {
  if (cfg.emulator === 'on') return true;
  if (cfg.emulator === 'off') return false;
  return !cfg.gemini.apiKey && !cfg.gemini.baseUrl;
}

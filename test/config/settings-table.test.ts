/**
 * The settings table is the one source: `.env.example` is generated from it (and must not drift), every variable
 * lands on the field its name gives by the rule in settings.ts, and the config holds nothing else.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/config';
import { renderEnvExample } from '../../src/config/env-example';
import { allSettings, fieldName, SETTINGS } from '../../src/config/settings';

const ENV_EXAMPLE = path.join(__dirname, '..', '..', '.env.example');

/** An environment that turns on every optional section (webhook, cluster) so each field is present. */
const FULL_ENV = {
  LIVE_AUDIO_WEBHOOK_URL: 'https://hooks.example.com/x',
  LIVE_AUDIO_WEBHOOK_SECRET: 'a-webhook-secret-0123456789',
  REDIS_URL: 'redis://127.0.0.1:6379',
  LIVE_AUDIO_CLUSTER_SECRET: 'c'.repeat(32),
};

/** Derived values that have no variable of their own. */
const DERIVED = new Set(['isProduction']);

function leafPaths(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) => {
    const p = prefix ? `${prefix}.${k}` : k;
    const isSection = prefix === '' && v !== null && typeof v === 'object' && !Array.isArray(v) && k in SETTINGS;
    return isSection ? leafPaths(v as Record<string, unknown>, p) : [p];
  });
}

describe('the settings table', () => {
  it('.env.example is exactly what `npm run env:example` writes from the table', () => {
    const onDisk = fs.readFileSync(ENV_EXAMPLE, 'utf8');
    // On failure: run `npm run env:example` and commit the file.
    expect(onDisk).toBe(renderEnvExample());
  });

  it('.env.example documents every variable once and no other', () => {
    const names = fs
      .readFileSync(ENV_EXAMPLE, 'utf8')
      .split('\n')
      .map((l) => /^(?:# )?([A-Z][A-Z0-9_]*)=/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined);
    const table = allSettings().map((s) => s.variable);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...table].sort());
    // Each one has a description line right above it.
    const lines = fs.readFileSync(ENV_EXAMPLE, 'utf8').split('\n');
    for (const name of table) {
      const i = lines.findIndex((l) => l.startsWith(`${name}=`) || l.startsWith(`# ${name}=`));
      expect(lines[i - 1]).toMatch(/^# \S/);
    }
  });

  it('every variable lands on the field the naming rule gives, and the config holds nothing else', () => {
    const config = loadConfig(FULL_ENV) as unknown as Record<string, Record<string, unknown>>;
    const expected = allSettings().map((s) => (s.section === 'top' ? s.field : `${s.section}.${s.field}`));
    expect(new Set(expected).size).toBe(expected.length);
    const actual = leafPaths(config).filter((p) => !DERIVED.has(p));
    expect(actual.sort()).toEqual([...expected].sort());
  });

  it('reads each variable into its field (a changed value shows up there)', () => {
    const env = { ...FULL_ENV, PORT: '4321', LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: '7', LIVE_AUDIO_WS_PING_INTERVAL_MS: '999' };
    const c = loadConfig(env);
    expect(c.port).toBe(4321);
    expect(c.limits.maxRequestsPerIpPerMinute).toBe(7);
    expect(c.ws.pingIntervalMs).toBe(999);
    expect(c.cluster?.redisKeyPrefix).toBe('live-audio:');
    expect(c.webhook?.url).toBe('https://hooks.example.com/x');
  });

  it('the naming rule: LIVE_AUDIO_ off, then the section prefix, then camelCase', () => {
    expect(fieldName('LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE', '')).toBe('maxRequestsPerIpPerMinute');
    expect(fieldName('LIVE_AUDIO_WS_PREAUTH_MAX_BYTES', 'WS_')).toBe('preauthMaxBytes');
    expect(fieldName('GEMINI_API_KEY', 'GEMINI_')).toBe('apiKey');
    expect(fieldName('LIVE_AUDIO_MAX_CONNECTIONS_PER_USER', 'WS_')).toBe('maxConnectionsPerUser');
    expect(fieldName('NODE_ENV', '')).toBe('nodeEnv');
  });

  it('refuses a bad value naming its variable, and an unset one takes the default', () => {
    expect(() => loadConfig({ LIVE_AUDIO_WS_MAX_MISSED_PONGS: 'many' })).toThrow(/LIVE_AUDIO_WS_MAX_MISSED_PONGS: must be an integer/);
    expect(() => loadConfig({ LIVE_AUDIO_EMULATOR: 'sometimes' })).toThrow(/LIVE_AUDIO_EMULATOR: must be one of auto, on, off/);
    expect(() => loadConfig({ LIVE_AUDIO_EXTRA_MODELS: '[nope' })).toThrow(/^Invalid configuration:\n {2}LIVE_AUDIO_EXTRA_MODELS: not valid JSON/);
    expect(loadConfig({ LIVE_AUDIO_WS_MAX_MISSED_PONGS: '' }).ws.maxMissedPongs).toBe(2);
  });
});

/**
 * The cluster settings go through the zod config: without `REDIS_URL` there is no cluster section at all (the
 * embedded default); with it the secret is required (≥ 32 characters), the URLs and the instance id are checked,
 * and a process that cannot say where the others reach it (PORT=0 without an advertise URL) refuses to start.
 * No error message repeats the secret or the Redis password.
 */
import { ConfigError, loadConfig } from '../../src/config/config';

const SECRET = 'c'.repeat(40);
const base = { NODE_ENV: 'test', PORT: '3100' };

const problems = (env: Record<string, string>): string => {
  try {
    loadConfig({ ...base, ...env });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return '';
};

it('without REDIS_URL: no cluster section (one process, in memory)', () => {
  expect(loadConfig(base).cluster).toBeUndefined();
  expect(loadConfig({ ...base, LIVE_AUDIO_CLUSTER_SECRET: SECRET, LIVE_AUDIO_INSTANCE_ID: 'x' }).cluster).toBeUndefined();
});

it('with REDIS_URL: defaults and overrides', () => {
  expect(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', LIVE_AUDIO_CLUSTER_SECRET: SECRET }).cluster).toEqual({
    redisUrl: 'redis://127.0.0.1:6379',
    secret: SECRET,
    instanceId: undefined,
    advertiseUrl: undefined,
    redisKeyPrefix: 'live-audio:',
    redisCommandTimeoutMs: 1000,
    redisDownAfterMs: 5000,
    heartbeatIntervalMs: 2000,
    missedHeartbeats: 3,
    forwardTimeoutMs: 10000,
    transcriptMaxBytes: 512 * 1024,
    transcriptsPerKey: 100,
    sweepIntervalMs: 5000,
    keyCacheMs: 2000,
  });
  const c = loadConfig({
    ...base,
    REDIS_URL: 'rediss://:pw@redis.internal:6380/2',
    LIVE_AUDIO_CLUSTER_SECRET: SECRET,
    LIVE_AUDIO_INSTANCE_ID: 'web-1.eu',
    LIVE_AUDIO_ADVERTISE_URL: 'http://10.0.0.5:3000',
    LIVE_AUDIO_HEARTBEAT_INTERVAL_MS: '500',
    LIVE_AUDIO_MISSED_HEARTBEATS: '4',
    LIVE_AUDIO_CLUSTER_TRANSCRIPT_MAX_BYTES: '65536',
    LIVE_AUDIO_CLUSTER_TRANSCRIPTS_PER_KEY: '7',
    LIVE_AUDIO_CLUSTER_KEY_CACHE_MS: '250',
    LIVE_AUDIO_CLUSTER_SWEEP_INTERVAL_MS: '750',
  }).cluster!;
  expect(c).toMatchObject({ instanceId: 'web-1.eu', advertiseUrl: 'http://10.0.0.5:3000', heartbeatIntervalMs: 500, missedHeartbeats: 4, transcriptMaxBytes: 65536, transcriptsPerKey: 7, keyCacheMs: 250, sweepIntervalMs: 750 });
});

it.each([
  [{ REDIS_URL: 'redis://h:1' }, 'LIVE_AUDIO_CLUSTER_SECRET'],
  [{ REDIS_URL: 'redis://h:1', LIVE_AUDIO_CLUSTER_SECRET: 'short-secret' }, 'LIVE_AUDIO_CLUSTER_SECRET'],
  [{ REDIS_URL: 'http://h:1', LIVE_AUDIO_CLUSTER_SECRET: SECRET }, 'REDIS_URL'],
  [{ REDIS_URL: 'redis://h:1', LIVE_AUDIO_CLUSTER_SECRET: SECRET, PORT: '0' }, 'LIVE_AUDIO_ADVERTISE_URL'],
  [{ REDIS_URL: 'redis://h:1', LIVE_AUDIO_CLUSTER_SECRET: SECRET, LIVE_AUDIO_ADVERTISE_URL: 'http://u:p@h:1' }, 'LIVE_AUDIO_ADVERTISE_URL'],
  [{ REDIS_URL: 'redis://h:1', LIVE_AUDIO_CLUSTER_SECRET: SECRET, LIVE_AUDIO_ADVERTISE_URL: 'http://h:1/path' }, 'LIVE_AUDIO_ADVERTISE_URL'],
  [{ REDIS_URL: 'redis://h:1', LIVE_AUDIO_CLUSTER_SECRET: SECRET, LIVE_AUDIO_INSTANCE_ID: 'has space' }, 'LIVE_AUDIO_INSTANCE_ID'],
  [{ REDIS_URL: 'redis://h:1', LIVE_AUDIO_CLUSTER_SECRET: SECRET, LIVE_AUDIO_MISSED_HEARTBEATS: '1' }, 'LIVE_AUDIO_MISSED_HEARTBEATS'],
])('refused: %j (names %s)', (env, name) => {
  const msg = problems(env as Record<string, string>);
  expect(msg).toContain(name);
  expect(msg).not.toContain(SECRET);
  expect(msg).not.toContain('short-secret');
});

import { loadConfig, ConfigError } from '../../src/config/config';
import { createClientIpResolver, parseTrustProxy } from '../../src/services/policy/client-ip';
import { FixedWindowLimiter, knownAudioSeconds, Limits, MemoryLimitStore, wsRateLimitsFrom } from '../../src/services/limits';
import type { IncomingMessage } from 'node:http';

const clock = () => {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
};

const wavOf = (seconds: number, rate = 16000, channels = 1): Buffer => {
  const data = Buffer.alloc(Math.round(seconds * rate) * channels * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8, 'latin1');
  h.write('fmt ', 12, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * channels * 2, 28);
  h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
};

describe('FixedWindowLimiter', () => {
  it('allows up to the limit, refuses with the seconds left in the window, refunds refusals, and reopens', () => {
    const c = clock();
    const store = new MemoryLimitStore({ now: c.now, sweepIntervalMs: 0 });
    const l = new FixedWindowLimiter({ name: 'x', limit: 3, windowMs: 60_000, store, now: c.now });
    expect([1, 2, 3].map(() => l.consume('u').ok)).toEqual([true, true, true]);
    c.advance(15_500);
    const refused = l.consume('u');
    expect(refused).toMatchObject({ ok: false, limit: 3, remaining: 0, retryAfterSec: 45 });
    // Another key has its own window.
    expect(l.consume('v').ok).toBe(true);
    // Knocking does not extend the lock-out: the refused attempts were refunded.
    for (let i = 0; i < 10; i++) l.consume('u');
    c.advance(44_499);
    expect(l.consume('u')).toMatchObject({ ok: false, retryAfterSec: 1 });
    c.advance(1);
    expect(l.consume('u')).toMatchObject({ ok: true, remaining: 2 });
    store.close();
  });

  it('0 means unlimited', () => {
    const l = new FixedWindowLimiter({ name: 'x', limit: 0, windowMs: 60_000, store: new MemoryLimitStore({ sweepIntervalMs: 0 }) });
    for (let i = 0; i < 1000; i++) expect(l.consume('u', 1000).ok).toBe(true);
  });

  it('amounts: a request larger than what is left is refused and uses nothing', () => {
    const c = clock();
    const l = new FixedWindowLimiter({ name: 'b', limit: 100, windowMs: 60_000, store: new MemoryLimitStore({ now: c.now, sweepIntervalMs: 0 }), now: c.now });
    expect(l.consume('u', 70).ok).toBe(true);
    expect(l.consume('u', 40)).toMatchObject({ ok: false, remaining: 30 });
    expect(l.consume('u', 30)).toMatchObject({ ok: true, remaining: 0 });
  });

  it('the memory store forgets expired windows', () => {
    const c = clock();
    const store = new MemoryLimitStore({ now: c.now, sweepIntervalMs: 0 });
    const l = new FixedWindowLimiter({ name: 'x', limit: 5, windowMs: 1000, store, now: c.now });
    for (let i = 0; i < 500; i++) l.consume(`user-${i}`);
    expect(store.size).toBe(500);
    c.advance(1000);
    store.sweep();
    expect(store.size).toBe(0);
  });
});

describe('Limits (audio, WebSocket messages, per-IP)', () => {
  const mk = (c = clock(), over: Partial<ConstructorParameters<typeof Limits>[0]> = {}) =>
    new Limits({
      audioSecondsPerMinute: 10,
      audioBytesPerMinute: 1_000_000,
      wsMessagesPerMinute: 3,
      unauthenticatedPerIpPerMinute: 2,
      wsConnectsPerIpPerMinute: 2,
      now: c.now,
      ...over,
    });

  it('knows the duration of PCM and WAV from their size, not of WebM', () => {
    expect(knownAudioSeconds(Buffer.alloc(32000), { format: 'pcm', sampleRate: 16000, channels: 1 })).toBeCloseTo(1);
    expect(knownAudioSeconds(Buffer.alloc(96000), { format: 'pcm', sampleRate: 48000, channels: 1 })).toBeCloseTo(1);
    expect(knownAudioSeconds(wavOf(2.5, 48000, 2), { format: 'wav' })).toBeCloseTo(2.5);
    expect(knownAudioSeconds(Buffer.from('RIFF garbage'), { format: 'wav' })).toBeUndefined();
    expect(knownAudioSeconds(Buffer.alloc(16000), { format: 'webm' })).toBeUndefined();
  });

  it('charges decoded seconds, refuses audio once they are spent, and says when to come back', () => {
    const c = clock();
    const refused: string[] = [];
    const l = mk(c, { onRefused: (k) => refused.push(k) });
    const webm = Buffer.alloc(16000);
    expect(l.admitAudio('alice', webm, { format: 'webm' }).ok).toBe(true);
    l.chargeAudioSeconds('alice', 6);
    c.advance(20_000);
    // 6 used: a 5-second PCM chunk would not fit, a WebM chunk (duration unknown yet) still may go.
    const pcm5 = Buffer.alloc(5 * 32000);
    const r = l.admitAudio('alice', pcm5, { format: 'pcm', sampleRate: 16000, channels: 1 });
    expect(r).toMatchObject({ ok: false, retryAfterSec: 40 });
    if (!r.ok) expect(r.error).toMatchObject({ status: 429, code: 'AUDIO_RATE_LIMITED', extra: { retryAfterSec: 40 } });
    expect(l.admitAudio('alice', webm, { format: 'webm' }).ok).toBe(true);
    l.chargeAudioSeconds('alice', 4.5);
    const spent = l.admitAudio('alice', webm, { format: 'webm' });
    expect(spent.ok).toBe(false);
    // Bob is not affected.
    expect(l.admitAudio('bob', pcm5, { format: 'pcm', sampleRate: 16000, channels: 1 }).ok).toBe(true);
    c.advance(40_000);
    expect(l.admitAudio('alice', pcm5, { format: 'pcm', sampleRate: 16000, channels: 1 }).ok).toBe(true);
    expect(refused).toEqual(['audio_seconds', 'audio_seconds']);
  });

  it('a single chunk longer than the whole budget is admitted into an unused window (never refused forever)', () => {
    const l = mk();
    const long = Buffer.alloc(30 * 32000);
    expect(l.admitAudio('carol', long, { format: 'pcm', sampleRate: 16000, channels: 1 }).ok).toBe(true);
  });

  it('counts encoded audio bytes and WebSocket messages per user', () => {
    const c = clock();
    const l = mk(c, { audioBytesPerMinute: 1000 });
    expect(l.admitAudio('u', Buffer.alloc(600)).ok).toBe(true);
    const r = l.admitAudio('u', Buffer.alloc(600));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('AUDIO_RATE_LIMITED');
    expect([1, 2, 3, 4].map(() => l.consume('u', 'ws_messages').ok)).toEqual([true, true, true, false]);
    const m = l.consume('u', 'ws_messages');
    if (!m.ok) expect(m.error).toMatchObject({ code: 'MESSAGE_RATE_LIMITED', message: 'Message rate limit exceeded. Please slow down.' });
  });

  it('implements the WebSocket endpoint rate-limit seam over the same budgets audio is admitted against', () => {
    const c = clock();
    const l = mk(c);
    const ws = wsRateLimitsFrom(l);
    expect(ws.consumeMessage('u')).toEqual({ ok: true });
    expect(l.admitAudio('u', Buffer.alloc(500)).ok).toBe(true);
    l.chargeAudioSeconds('u', 10);
    expect(l.admitAudio('u', Buffer.alloc(500))).toMatchObject({ ok: false, retryAfterSec: 60 });
    const st = ws.status('u');
    expect(st.messages).toMatchObject({ count: 1, limit: 3, remaining: 2 });
    expect(st.audioBytes).toMatchObject({ totalBytes: 500, limit: 1_000_000 });
    expect(st.audioSeconds).toMatchObject({ seconds: 10, limit: 10, remaining: 0 });
    expect(typeof st.messages.resetTime).toBe('string');
  });
});

describe('TRUST_PROXY and client addresses', () => {
  it('parses hop counts, address lists and refuses "trust everyone"', () => {
    expect(parseTrustProxy(undefined)).toEqual({ value: false });
    expect(parseTrustProxy('false')).toEqual({ value: false });
    expect(parseTrustProxy('0')).toEqual({ value: false });
    expect(parseTrustProxy('2')).toEqual({ value: 2 });
    expect(parseTrustProxy('loopback, 10.0.0.0/8, fd00::/8, 192.168.1.7')).toEqual({ value: ['loopback', '10.0.0.0/8', 'fd00::/8', '192.168.1.7'] });
    expect(parseTrustProxy('true')).toHaveProperty('error');
    expect(parseTrustProxy('*')).toHaveProperty('error');
    expect(parseTrustProxy('10.0.0.0/33')).toHaveProperty('error');
    expect(parseTrustProxy('example.com')).toHaveProperty('error');
    expect(() => loadConfig({ TRUST_PROXY: 'true' })).toThrow(ConfigError);
    expect(loadConfig({ TRUST_PROXY: '1' }).limits.trustProxy).toBe(1);
  });

  const req = (remote: string, xff?: string) =>
    ({ socket: { remoteAddress: remote }, connection: { remoteAddress: remote }, headers: xff ? { 'x-forwarded-for': xff } : {} }) as unknown as IncomingMessage;

  it('ignores X-Forwarded-For unless the peer is a trusted proxy', () => {
    expect(createClientIpResolver(false)(req('127.0.0.1', '6.6.6.6'))).toBe('127.0.0.1');
    expect(createClientIpResolver(1)(req('127.0.0.1', '6.6.6.6'))).toBe('6.6.6.6');
    // One trusted hop: a client-supplied extra entry is not believed.
    expect(createClientIpResolver(1)(req('127.0.0.1', '1.1.1.1, 6.6.6.6'))).toBe('6.6.6.6');
    expect(createClientIpResolver(['loopback'])(req('127.0.0.1', '6.6.6.6'))).toBe('6.6.6.6');
    expect(createClientIpResolver(['10.0.0.0/8'])(req('127.0.0.1', '6.6.6.6'))).toBe('127.0.0.1');
  });
});

describe('rate-limit defaults (README "Operations")', () => {
  it('carry the frontend’s one chunk a second with headroom', () => {
    const c = loadConfig({});
    expect(c.limits.maxRequestsPerMinute).toBeGreaterThanOrEqual(300);
    expect(c.limits.maxTranscriptionsPerMinute).toBeGreaterThanOrEqual(120);
    expect(c.limits.maxSessionCreatesPerMinute).toBeGreaterThanOrEqual(10);
    expect(c.limits.maxSessionCreatesPerMinute).toBeLessThanOrEqual(30);
    expect(c.limits.maxAudioSecondsPerMinute).toBeGreaterThanOrEqual(90);
    expect(c.limits.maxRequestsPerIpPerMinute).toBeGreaterThanOrEqual(600);
    expect(c.limits.trustProxy).toBe(false);
    expect(c.ops.drainMs).toBe(30_000);
    expect(c.http.jsonLimit).toBe(8 * 1024 * 1024);
    expect(c.audio.maxChunkBytes).toBe(5 * 1024 * 1024);
  });
});

/**
 * Resilience configuration (env → AppConfig → server → LiveAudioService → ResilientUpstream / setup) and what
 * operators see: the session status fields and one log line per rotation with its cause.
 */
import pino from 'pino';
import { scriptedScenario } from '../../src/emulator';
import { ConfigError, contextWindowCompression, loadConfig } from '../../src/config/config';
import { sleep } from '../helpers/test-server';
import { TIMINGS, expectExactlyOnce, patternPcm, startResilienceServer, startRestSession, streamPcm, waitForStatus } from './helpers';

describe('resilience configuration', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({}).upstream).toEqual({
      backlogMs: 10_000,
      reconnectBudgetMs: 30_000,
      reconnectBackoffBaseMs: 250,
      reconnectBackoffMaxMs: 8_000,
      quickFailureMs: 5_000,
      quickFailureLimit: 3,
      reconnectReplayMs: 200,
      contextCompression: true,
      contextTriggerTokens: 0,
      contextTargetTokens: 0,
    });
    expect(contextWindowCompression(loadConfig({}).upstream)).toEqual({});
  });

  it('reads every variable', () => {
    const c = loadConfig({
      LIVE_AUDIO_UPSTREAM_BACKLOG_MS: '5000',
      LIVE_AUDIO_RECONNECT_BUDGET_MS: '12000',
      LIVE_AUDIO_RECONNECT_BACKOFF_BASE_MS: '100',
      LIVE_AUDIO_RECONNECT_BACKOFF_MAX_MS: '2000',
      LIVE_AUDIO_QUICK_FAILURE_MS: '3000',
      LIVE_AUDIO_QUICK_FAILURE_LIMIT: '4',
      LIVE_AUDIO_RECONNECT_REPLAY_MS: '0',
      LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS: '100000',
      LIVE_AUDIO_CONTEXT_TARGET_TOKENS: '50000',
    }).upstream;
    expect(c).toEqual({
      backlogMs: 5_000,
      reconnectBudgetMs: 12_000,
      reconnectBackoffBaseMs: 100,
      reconnectBackoffMaxMs: 2_000,
      quickFailureMs: 3_000,
      quickFailureLimit: 4,
      reconnectReplayMs: 0,
      contextCompression: true,
      contextTriggerTokens: 100_000,
      contextTargetTokens: 50_000,
    });
    expect(contextWindowCompression(c)).toEqual({ triggerTokens: 100_000, targetTokens: 50_000 });
    expect(contextWindowCompression(loadConfig({ LIVE_AUDIO_CONTEXT_COMPRESSION: 'false', LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS: '9' }).upstream)).toBeNull();
  });

  it('refuses bad values', () => {
    expect(() => loadConfig({ LIVE_AUDIO_RECONNECT_BUDGET_MS: 'soon' })).toThrow(ConfigError);
    expect(() => loadConfig({ LIVE_AUDIO_QUICK_FAILURE_LIMIT: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ LIVE_AUDIO_CONTEXT_COMPRESSION: 'maybe' })).toThrow(ConfigError);
    expect(() => loadConfig({ LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS: '1000', LIVE_AUDIO_CONTEXT_TARGET_TOKENS: '1000' })).toThrow(
      /TARGET_TOKENS: must be below/,
    );
  });

  it.each([
    [{}, { slidingWindow: {} }],
    [{ LIVE_AUDIO_CONTEXT_TRIGGER_TOKENS: '100000', LIVE_AUDIO_CONTEXT_TARGET_TOKENS: '60000' }, { triggerTokens: '100000', slidingWindow: { targetTokens: '60000' } }],
    [{ LIVE_AUDIO_CONTEXT_COMPRESSION: 'false' }, undefined],
  ])('sends context window compression as configured (%j), on resumed connections too', async (env, expected) => {
    const t = await startResilienceServer({ env });
    try {
      const s = await startRestSession(t);
      t.emu.terminate('c1');
      await waitForStatus(s, (st) => st.upstream.connections === 2);
      for (const c of t.emu.connections) {
        expect(c.setup.contextWindowCompression).toEqual(expected);
        expect(c.setup.sessionResumption).toEqual({});
      }
    } finally {
      await t.close();
    }
  });

  it.each(TIMINGS)('bounds the per-session backlog by LIVE_AUDIO_UPSTREAM_BACKLOG_MS and reports the overflow on the status (%s timing)', async (timing) => {
    const t = await startResilienceServer({ timing, env: { LIVE_AUDIO_UPSTREAM_BACKLOG_MS: '300', LIVE_AUDIO_RECONNECT_BUDGET_MS: '4000' } });
    try {
      const s = await startRestSession(t);
      t.emu.setFaults({ handshakeStatus: 503 });
      t.emu.terminate('c1');
      await waitForStatus(s, (st) => st.upstream.state === 'reconnecting');
      const pcm = patternPcm(1_000);
      expect((await s.send(pcm)).status).toBe(200);
      const st = await waitForStatus(s, (x) => x.upstream.droppedAudioMs > 0);
      expect(st.upstream).toMatchObject({ state: 'reconnecting', droppedAudioMs: 700, bufferedAudioMs: 300, lastCloseCode: 1006 });
      // Upstream back: the newest 300 ms arrive, in order.
      t.emu.setFaults({});
      await waitForStatus(s, (x) => x.upstream.state === 'open', 6_000);
      await expectExactlyOnce(t.emu, pcm.subarray(700 * 32));
      expect((await s.status()).upstream).toMatchObject({ droppedAudioMs: 700, bufferedAudioMs: 0, connections: 2 });
    } finally {
      await t.close();
    }
  });
});

describe('operators', () => {
  it.each(TIMINGS)('see the upstream on the session status and one log line per rotation, with its cause (%s timing)', async (timing) => {
    const lines: any[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const t2 = await startResilienceServer({ logger, timing });
    try {
      t2.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'w', reply: 'r' } }));
      const s = await startRestSession(t2);
      const pcm = patternPcm(4_500);
      await streamPcm(s, pcm, {
        at: {
          1_600: () => t2.emu.goAway('c1', 2_000),
          3_100: () => t2.emu.close('c2', 1011, 'Internal error encountered.'),
        },
      });
      await expectExactlyOnce(t2.emu, pcm);
      const st = await waitForStatus(s, (x) => x.upstream.connections === 3 && x.upstream.state === 'open');
      expect(st.upstream).toMatchObject({
        connected: true,
        connections: 3,
        reconnects: 2,
        resumedReconnects: 2,
        freshReconnects: 0,
        lastReconnect: { resumed: true, connectionNo: 3 },
        lastCloseCode: 1011,
        lastCloseReason: 'Internal error encountered.',
        droppedAudioMs: 0,
        bufferedAudioMs: 0,
        rotations: 2,
        lastRotation: { cause: 'unexpected_close' },
      });
      await sleep(50);
      const rotations = lines.filter((l) => l.msg === 'upstream rotation');
      expect(rotations.map((l) => [l.cause, l.sessionId, l.connectionNo])).toEqual([
        ['go_away', s.id, 1],
        ['unexpected_close', s.id, 2],
      ]);
      expect(rotations[1]).toMatchObject({ code: 1011, reason: 'Internal error encountered.', level: 40 });
      expect(lines.filter((l) => l.msg === 'upstream goAway received')).toHaveLength(1);
      expect(lines.filter((l) => l.msg === 'upstream reconnected').map((l) => [l.connectionNo, l.resumed])).toEqual([
        [2, true],
        [3, true],
      ]);
      expect(JSON.stringify(lines)).not.toContain('test-gemini-key');
    } finally {
      await t2.close();
    }
  });
});

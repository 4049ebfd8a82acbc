/**
 * The fault catalogue of the Gemini Live emulator, through the whole server and the real @google/genai SDK:
 * REST /transcribe (format pcm) → LiveAudioService → LiveSession → ResilientUpstream → SDK → emulator.
 * For every fault the session either continues (every sample sent reaches the emulator exactly once and in order,
 * the user's words and the reply keep coming) or fails cleanly with Google's reason, without loops.
 *
 * Everything runs in both emulator timings (`spaced`, `eager`: a handle in the same read as setupComplete, replies'
 * ends coalesced): the expected handles differ (with eager timing every connection issued one at its setup).
 */
import request from 'supertest';
import { scriptedScenario, type Scenario } from '../../src/emulator';
import type { LiveSession } from '../../src/services/session/live-session';
import type { TurnSnapshot } from '../../src/services/session/turn-tracker';
import { sleep, type TestServer } from '../helpers/test-server';
import {
  API,
  TIMINGS,
  expectExactlyOnce,
  handleAfterTurn,
  latestHandle,
  patternPcm,
  startResilienceServer,
  startRestSession,
  streamPcm,
  waitForStatus,
  type RestSession,
} from './helpers';

const WORDS = 'pattern words';
const REPLY = 'Pattern reply.';
const scenario = (extra: Partial<Scenario> = {}, turn: Record<string, unknown> = {}): Scenario =>
  scriptedScenario([], { fallback: { userTranscript: WORDS, reply: REPLY, ...turn }, ...extra });

interface Run {
  t: TestServer;
  s: RestSession;
  session: LiveSession;
  turns: TurnSnapshot[];
  /** For each completed turn, the upstream connection number it completed on. */
  turnConnections: number[];
  interrupted: number;
}

async function openRun(opts: Parameters<typeof startResilienceServer>[0] & { scenario?: Scenario } = {}): Promise<Run> {
  const t = await startResilienceServer(opts);
  t.emu.setScenario(opts.scenario ?? scenario());
  const s = await startRestSession(t);
  const session = t.server.registry.all().find((x) => x.id === s.id)!;
  const run: Run = { t, s, session, turns: [], turnConnections: [], interrupted: 0 };
  session.on('turnComplete', (snap) => {
    run.turns.push(snap);
    run.turnConnections.push(session.upstreamStats().connections);
  });
  session.on('interrupted', () => run.interrupted++);
  return run;
}

/** The session keeps answering: turns with the user's words and the reply before and after the reconnect. */
async function expectTurnsContinue(run: Run, reconnectedAs = 2): Promise<void> {
  const answeredOn = (pred: (conn: number) => boolean) =>
    run.turns.filter((x, i) => x.userText === WORDS && x.replyText === REPLY && !x.interrupted && pred(run.turnConnections[i])).length;
  await run.t.emu.waitFor(() => answeredOn((c) => c >= reconnectedAs) >= 1, 5_000).catch(() => undefined);
  expect(answeredOn((c) => c < reconnectedAs)).toBeGreaterThanOrEqual(1);
  expect(answeredOn((c) => c >= reconnectedAs)).toBeGreaterThanOrEqual(1);
}

describe.each(TIMINGS)('%s timing', (timing) => {
  const open = (opts: Parameters<typeof openRun>[0] = {}) => openRun({ timing, ...opts });

  describe('goAway', () => {
    let run: Run;
    afterEach(async () => run?.t.close());

    it('rotates at a turn boundary with the latest handle; every sample arrives once and in order', async () => {
      run = await open();
      const { t, s } = run;
      const pcm = patternPcm(6_000);
      await streamPcm(s, pcm, { at: { 3_050: () => t.emu.goAway('c1', 3_000) } });
      await expectExactlyOnce(t.emu, pcm);
      const [c1, c2, ...rest] = t.emu.connections;
      expect(rest).toHaveLength(0);
      // Break-then-make: we closed c1 (no code, seen as 1005) before c2 resumed with c1's latest handle.
      expect(c1.closed).toMatchObject({ by: 'client' });
      expect(c2.resumedFrom).toBe(latestHandle(c1));
      expect(c2.resumedFrom).toBe(handleAfterTurn(c1, c1.turns, timing));
      expect(c1.turns).toBeGreaterThanOrEqual(2);
      expect(c1.interruptedTurns).toBe(0);
      expect(run.interrupted).toBe(0);
      const st = await waitForStatus(s, (x) => x.upstream.connections === 2 && x.upstream.state === 'open');
      expect(st.upstream).toMatchObject({ reconnects: 1, resumedReconnects: 1, freshReconnects: 0, droppedAudioMs: 0, lastCloseCode: null });
      expect(run.session.upstreamStats().lastRotation?.cause).toBe('go_away');
      await expectTurnsContinue(run);
    });

    it('rotates before timeLeft runs out when the server goes silent mid-reply, and says the reply was cut', async () => {
      // A long reply paced in real time is in progress when the goAway comes; then the server sends nothing more.
      run = await open({ faults: { silentAfterGoAway: true, faultConnections: 1 }, scenario: scenario({ pacing: 'realtime' }, { replyAudioMs: 600 }) });
      const { t, s, session } = run;
      const pcm = patternPcm(7_500, { toneMs: 800, silenceMs: 2_200 });
      let goAwayAt = 0;
      await streamPcm(s, pcm, {
        gapMs: 50,
        at: {
          4_400: async () => {
            // The first turn is complete (a handle exists); the second reply is being spoken.
            await t.emu.waitFor(() => session.snapshot().turnId === 2 && session.snapshot().replyText !== '' && !session.snapshot().turnComplete, 3_000);
            goAwayAt = Date.now();
            t.emu.goAway('c1', 2_000);
          },
        },
      });
      await expectExactlyOnce(t.emu, pcm);
      expect(t.emu.connections).toHaveLength(2);
      const stats = session.upstreamStats();
      expect(stats.lastRotation?.cause).toBe('go_away_deadline');
      // Margin: half of the 2 s left, so the rotation came about 1 s after the goAway, not at the close.
      const rotatedAt = Date.parse(stats.lastRotation!.at);
      expect(rotatedAt - goAwayAt).toBeGreaterThanOrEqual(900);
      expect(rotatedAt - goAwayAt).toBeLessThan(1_900);
      expect(t.emu.connections[0].closed).toMatchObject({ by: 'client' });
      // The cut reply was reported as interrupted and completed; the next turn is answered on the new connection.
      expect(run.turns.some((x) => x.interrupted && x.replyText !== '')).toBe(true);
      expect(t.emu.connections[0].turns).toBe(1);
      expect(t.emu.connections[1].resumedFrom).toBe(handleAfterTurn(t.emu.connections[0], 1, timing));
      // Turn 1 answered on c1, turn 2 cut by the rotation, turn 3 answered on c2.
      await t.emu.waitFor(() => run.turns.length >= 3, 5_000);
      expect(run.turns.map((x) => x.interrupted)).toEqual([false, true, false]);
      expect(run.turns[2]).toMatchObject({ userText: WORDS, replyText: REPLY });
      expect(t.emu.connections[1].turns).toBe(1);
    });

    it('waits for a slow reply to finish before rotating (timed goAway fault)', async () => {
      // goAway 900 ms after setupComplete, while the first reply waits out a 1.5 s delay.
      run = await open({
        faults: { goAwayAfterMs: 900, goAwayTimeLeftMs: 5_000, replyDelayMs: 1_500, faultConnections: 1 },
        env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' },
      });
      const { t, s, session } = run;
      const pcm = patternPcm(1_500).subarray(0, 1_300 * 32);
      await streamPcm(s, pcm, { gapMs: 0 });
      await t.emu.waitFor(() => t.emu.connections.length === 2, 6_000);
      await expectExactlyOnce(t.emu, pcm);
      const [c1, c2] = t.emu.connections;
      expect(c1.turns).toBe(1);
      expect(c1.interruptedTurns).toBe(0);
      expect(c2.resumedFrom).toBe(handleAfterTurn(c1, 1, timing));
      expect(run.turns).toHaveLength(1);
      expect(run.turns[0]).toMatchObject({ userText: WORDS, replyText: REPLY, interrupted: false });
      expect(session.upstreamStats().lastRotation?.cause).toBe('go_away');
    });
  });

  describe('dropped connections', () => {
    let run: Run;
    afterEach(async () => run?.t.close());

    it('abrupt drop (1006): reconnects with backoff, resumes, loses and doubles nothing', async () => {
      run = await open();
      const { t, s } = run;
      const pcm = patternPcm(6_000);
      await streamPcm(s, pcm, { at: { 3_050: () => t.emu.terminate('c1') } });
      await expectExactlyOnce(t.emu, pcm);
      const [c1, c2] = t.emu.connections;
      expect(t.emu.connections).toHaveLength(2);
      expect(c1.closed).toMatchObject({ code: 1006, by: 'server' });
      expect(c2.resumedFrom).toBe(handleAfterTurn(c1, c1.turns, timing));
      const st = await s.status();
      expect(st.upstream).toMatchObject({ connections: 2, reconnects: 1, resumedReconnects: 1, lastCloseCode: 1006, droppedAudioMs: 0, state: 'open' });
      expect(run.session.upstreamStats().lastRotation?.cause).toBe('unexpected_close');
      await expectTurnsContinue(run);
    });

    it('close 1011 (timed fault): reconnects and reports the code and reason', async () => {
      // 1.5 s after setupComplete: the first turn (1.3 s of audio, streamed at ~2x) is answered, the stream goes on.
      run = await open({ faults: { closeAfterMs: { ms: 1_500, code: 1011, reason: 'Internal error encountered.' }, faultConnections: 1 } });
      const { t, s } = run;
      const pcm = patternPcm(6_000);
      await streamPcm(s, pcm, { gapMs: 50 });
      await expectExactlyOnce(t.emu, pcm);
      expect(t.emu.connections).toHaveLength(2);
      const st = await s.status();
      expect(st.upstream).toMatchObject({ reconnects: 1, lastCloseCode: 1011, lastCloseReason: 'Internal error encountered.' });
      await expectTurnsContinue(run);
    });

    it('drop while a not-resumable generation is in progress resumes from the last resumable handle', async () => {
      run = await open({ faults: { notResumableDuringGeneration: true }, scenario: scenario({ pacing: 'realtime' }, { replyAudioMs: 600 }) });
      const { t, s, session } = run;
      const pcm = patternPcm(5_000, { toneMs: 800, silenceMs: 2_200 });
      await streamPcm(s, pcm, {
        gapMs: 50,
        at: {
          3_100: async () => {
            // The second reply is being generated (the server said "not resumable" when it started).
            await t.emu.waitFor(() => session.snapshot().turnId === 2 && session.snapshot().replyText !== '', 3_000);
            t.emu.terminate('c1');
          },
        },
      });
      await expectExactlyOnce(t.emu, pcm);
      const [c1, c2] = t.emu.connections;
      expect(c1.sent.some((m) => m.kind === 'sessionResumptionUpdate')).toBe(true);
      expect(c2.resumedFrom).toBe(handleAfterTurn(c1, 1, timing));
      expect(run.turns[1]).toMatchObject({ interrupted: true, userText: WORDS });
    });

    it('replies split into many parts and late input transcriptions still assemble, across a drop', async () => {
      run = await open({ faults: { splitReplyParts: 6, lateInputTranscription: true } });
      const { t, s } = run;
      const pcm = patternPcm(6_000);
      await streamPcm(s, pcm, { at: { 3_050: () => t.emu.terminate('c1') } });
      await expectExactlyOnce(t.emu, pcm);
      expect(t.emu.connections).toHaveLength(2);
      expect(run.turns.length).toBeGreaterThanOrEqual(3);
      for (const turn of run.turns.filter((x) => !x.interrupted)) expect(turn).toMatchObject({ userText: WORDS, replyText: REPLY });
      await expectTurnsContinue(run);
    });

    it.each([
      [1_000, 'resent once'],
      [0, 'lost (replay off)'],
    ])('audio written into a socket that already died (replayMs %i) is %s', async (replayMs) => {
      // A whole decoded chunk goes out in one burst right after the server dropped the connection, before the relay
      // could notice: nothing acknowledges it, so only the replay window can save it. (The window is 1 s rather
      // than the default 200 ms so that a loaded machine, which may stretch the burst, cannot push its start out.)
      const t = await startResilienceServer({ timing, resilience: { replayMs } });
      run = { t } as Run;
      t.emu.setScenario(scenario());
      const owner = (await t.server.auth.authenticate({ kind: 'api_key', token: t.keys.alice }))!;
      const session = await t.server.service.startSession(owner, { sessionId: 'burst' }, 'rest');
      const desc = { format: 'pcm' as const, sampleRate: 16000, channels: 1 };
      const pcm = patternPcm(3_000);
      await t.server.service.pushAudio(session, pcm.subarray(0, 32_000), desc);
      await t.emu.waitFor(() => t.emu.receivedPcm().length === 32_000, 2_000);
      // That first second leaves the replay window (it was sent over 1 s before the drop): whether or not its pongs
      // are back, it is never resent.
      await sleep(1_100);
      t.emu.terminate('c1');
      await t.server.service.pushAudio(session, pcm.subarray(32_000), desc);
      await t.emu.waitFor(() => t.emu.connections.length === 2 && session.upstreamStats().state === 'open', 3_000);
      if (replayMs > 0) {
        await expectExactlyOnce(t.emu, pcm);
        expect(session.upstreamStats().replayedAudioMs).toBe(2_000);
      } else {
        await sleep(300);
        expect(t.emu.receivedPcm().equals(pcm.subarray(0, 32_000))).toBe(true);
        expect(session.upstreamStats().replayedAudioMs).toBe(0);
      }
    });

    it('a reconnect that never completes its setup times out and the next attempt succeeds', async () => {
      run = await open({ env: { GEMINI_SETUP_TIMEOUT_MS: '400' } });
      const { t, s } = run;
      const pcm = patternPcm(3_000);
      await streamPcm(s, pcm, {
        at: {
          1_000: () => {
            t.emu.setFaults({ neverCompleteSetup: true, faultConnections: 1 });
            t.emu.terminate('c1');
          },
        },
      });
      await t.emu.waitFor(() => t.emu.connections.length === 3, 5_000);
      await expectExactlyOnce(t.emu, pcm);
      const [c1, hung, c3] = t.emu.connections;
      expect(hung.setup).toBeDefined();
      expect(hung.closed).toBeDefined(); // the relay tore the hung socket down
      const st = await waitForStatus(s, (x) => x.upstream.state === 'open');
      expect(st.upstream).toMatchObject({ connections: 2, reconnects: 1, droppedAudioMs: 0 });
      if (timing === 'spaced') {
        // No turn had completed before the drop: no handle, a fresh session, and the status says so.
        expect(c3.resumedFrom).toBeUndefined();
        expect(st.upstream).toMatchObject({ resumedReconnects: 0, freshReconnects: 1, lastReconnect: { resumed: false } });
      } else {
        // The handle that came with c1's setupComplete was heard and kept: resumed.
        expect(c3.resumedFrom).toBe(c1.handles[0]);
        expect(st.upstream).toMatchObject({ resumedReconnects: 1, freshReconnects: 0, lastReconnect: { resumed: true } });
      }
    });
  });

  describe('failing cleanly', () => {
    let run: Run;
    afterEach(async () => run?.t.close());

    /** The status of the ended session (its tombstone view: status, reason, message). */
    async function failedStatus(r: Run): Promise<{ status: string; reason: string; message: string }> {
      return waitForStatus(r.s, (x) => x.status !== 'active', 8_000);
    }

    it.each([
      [1008, 'models/gemini-x is not found for API version v1beta, or is not supported for bidiGenerateContent.'],
      [1007, 'Request contains an invalid argument.'],
    ])('a reconnect refused with %i ends the session with Google\'s reason, without a retry loop', async (code, reason) => {
      run = await open();
      const { t, s } = run;
      await streamPcm(s, patternPcm(1_600), { gapMs: 0 });
      await t.emu.waitFor(() => t.emu.connections[0].turns >= 1, 3_000);
      t.emu.setFaults({ rejectSetup: { code: code as 1007 | 1008, reason } });
      t.emu.terminate('c1');
      const st = await failedStatus(run);
      expect(st).toMatchObject({ status: 'ended', reason: 'upstream_error' });
      expect(st.message).toContain(`(${code})`);
      expect(st.message).toContain(reason.slice(0, 40));
      // 1008: one refused attempt. 1007 on a resume: retried once without the handle, then given up.
      await sleep(500);
      expect(t.emu.connections).toHaveLength(code === 1007 ? 3 : 2);
      if (code === 1007) expect(t.emu.connections[2].setup.sessionResumption).toEqual({});
      const r = await s.send(patternPcm(100));
      expect(r.status).toBe(404);
      expect(r.body.code).toBe('SESSION_EXPIRED');
    });

    it('HTTP 429 at the reconnect handshake is fatal at once', async () => {
      run = await open();
      const { t } = run;
      t.emu.setFaults({ handshakeStatus: 429 });
      t.emu.terminate('c1');
      const st = await failedStatus(run);
      expect(st.message).toMatch(/quota.*429/i);
      await sleep(500);
      expect(t.emu.upgrades.map((u) => u.status)).toEqual([101, 429]);
    });

    it('quota close mid-session (1011 quota reason) is fatal at once', async () => {
      run = await open();
      const { t } = run;
      t.emu.close('c1', 1011, 'You exceeded your current quota, please check your plan and billing details.');
      const st = await failedStatus(run);
      expect(st.message).toMatch(/quota exceeded \(1011\): You exceeded your current quota/);
      await sleep(400);
      expect(t.emu.upgrades).toHaveLength(1);
    });

    it('three connections that each die within 5 s fail the session (quick-failure guard)', async () => {
      run = await open({ faults: { dropAfterMs: 150 } });
      const st = await failedStatus(run);
      expect(st.message).toMatch(/3 times in a row within 5000 ms of connecting/);
      await sleep(600);
      expect(run.t.emu.connections).toHaveLength(3);
      const r = await request(run.t.url)
        .post(`${API}/transcribe`)
        .set(run.s.headers)
        .send({ session_id: run.s.id, audio_data: patternPcm(100).toString('base64'), format: 'pcm' });
      expect(r.status).toBe(404);
      expect(r.body.code).toBe('SESSION_EXPIRED');
    });

    it('gives up after the reconnect budget when the handshake keeps failing (HTTP 503), with backoff', async () => {
      run = await open({ resilience: { reconnectBudgetMs: 1_500 } });
      const { t } = run;
      t.emu.setFaults({ handshakeStatus: 503 });
      const started = Date.now();
      t.emu.terminate('c1');
      const st = await failedStatus(run);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(st.message).toMatch(/could not reconnect to Gemini within 1500 ms \(last error: Gemini handshake failed \(HTTP 503\)\)/);
      const retries = t.emu.upgrades.filter((u) => u.status === 503).length;
      expect(retries).toBeGreaterThanOrEqual(2);
      expect(retries).toBeLessThanOrEqual(8); // 250 ms → 500 → 1000 … caps: not a tight loop
    });
  });

  describe('WebSocket sessions (LiveAudioService with transport ws)', () => {
    let t: TestServer;
    afterEach(async () => t?.close());

    it('survive a goAway and a drop the same way', async () => {
      t = await startResilienceServer();
      t.emu.setScenario(scenario());
      const owner = (await t.server.auth.authenticate({ kind: 'api_key', token: t.keys.alice }))!;
      const session = await t.server.service.startSession(owner, { sessionId: 'ws-resilience' }, 'ws');
      const turns: TurnSnapshot[] = [];
      session.on('turnComplete', (snap) => turns.push(snap));
      const pcm = patternPcm(7_500);
      for (let off = 0, i = 0; off < pcm.length; off += 3_200, i++) {
        if (i === 25) t.emu.goAway('c1', 2_000);
        if (i === 50) t.emu.terminate('c2');
        await t.server.service.pushAudio(session, pcm.subarray(off, off + 3_200), { format: 'pcm', sampleRate: 16000, channels: 1 });
        await sleep(20);
      }
      await expectExactlyOnce(t.emu, pcm);
      expect(t.emu.connections).toHaveLength(3);
      expect(t.emu.connections[1].resumedFrom).toMatch(/^emu-c1-/);
      expect(t.emu.connections[2].resumedFrom).toMatch(/^emu-c2-/);
      expect(session.status()).toMatchObject({ transport: 'ws', upstream: { connections: 3, reconnects: 2, lastCloseCode: 1006, droppedAudioMs: 0 } });
      expect(turns.filter((x) => x.userText === WORDS && x.replyText === REPLY).length).toBeGreaterThanOrEqual(3);
    });
  });
});

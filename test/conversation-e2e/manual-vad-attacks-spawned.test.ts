/**
 * The attacker's tests of manual activity detection, on a real spawned server process: what does one key holder cost
 * us with a flood of activity messages (WebSocket and REST, seeded mixes of starts, ends and audio), with
 * `activity_end` without a start, and with markers on a session that has automatic detection? Upstream, the model
 * only ever sees well-formed brackets (start, end, start, ...: never an end without a start, never two starts, so
 * Gemini never closes with 1007), refusals are clear 409/429s, nothing piles up (markers waiting are capped), the
 * process answers /health throughout and its sessions stay usable.
 */
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type EmulatorConnectionRecord, type GeminiLiveEmulator } from '../../src/emulator';
import { silencePcm, tonePcm } from '../helpers/live-probe';
import { probeHealth, spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed } from '../helpers/ws-test-client';
import { API, suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();
/** The server's own event-loop delay, max since the previous scrape (ms). */
let serverLoop: () => Promise<{ p99: number; max: number }>;
const activityKinds = (rec: EmulatorConnectionRecord) => rec.messages.filter((m) => m.kind.startsWith('activity')).map((m) => m.kind);

/** start, end, start, end, ... (an unfinished last start allowed). */
function wellBracketed(kinds: string[]): boolean {
  return kinds.every((k, i) => k === (i % 2 === 0 ? 'activityStart' : 'activityEnd'));
}

describe(`attacks on manual activity detection, on a spawned server (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: 'x', reply: 'OK.' } }));
    // The per-user message limit would stop the flood after 120 frames; raised so the flood reaches the markers.
    s = await spawnServer({ geminiBaseUrl: emu.baseUrl, env: { ...NO_RATE_LIMITS, LIVE_AUDIO_MAX_MESSAGES_PER_MINUTE: '100000' } });
    serverLoop = async () => {
      const m = await (await fetch(`${s.url}/metrics`)).text();
      const q = (name: string) => 1000 * Number(new RegExp(`^live_audio_event_loop_delay_seconds\\{quantile="${name}"\\} (\\S+)`, 'm').exec(m)![1]);
      return { p99: q('0.99'), max: q('max') };
    };
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await emu?.stop();
  });

  const h = () => ({ 'X-API-Key': s.keys.alice, 'Content-Type': 'application/json' });

  it('a WebSocket flood of 2,000 seeded starts, ends and audio frames: brackets stay well-formed upstream, refusals are 409/429, /health answers', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED);
      const c = await connectAuthed(s.url, s.keys.alice);
      const first = emu.connections.length;
      c.send({ type: 'start_session', session_id: 'atk_flood', vad: { manual: true } });
      await c.next('session_started');
      // An end before any start: refused, nothing upstream.
      c.send({ type: 'activity_end' });
      expect((await c.next('error')).code).toBe('ACTIVITY_NOT_STARTED');

      await serverLoop(); // the gauge is "since the previous scrape": start the window here
      const probe = probeHealth(s.url);
      const frame = tonePcm(20).toString('base64');
      let sent = 0;
      for (let i = 0; i < 2000; i++) {
        const r = rnd();
        if (r < 0.4) c.send({ type: 'activity_start' });
        else if (r < 0.8) c.send({ type: 'activity_end' });
        else c.send({ type: 'audio_chunk', audio_data: frame, format: 'pcm', sample_rate: 16000 });
        sent++;
        // Bursts of 50 frames: a fast client on a real network (a 3,000-frame burst blocks the server's loop for
        // 0.7 s even when every frame is a ping: the per-user message limit, 120 a minute by default, is what
        // bounds that; it is raised here so that the flood reaches the markers).
        if (i % 50 === 49) await new Promise((res) => setTimeout(res, 5));
      }
      c.send({ type: 'ping' });
      await c.next('pong', () => true, 30_000);
      const health = await probe.stop();
      const loop = await serverLoop();
      console.log(`flood: server event-loop delay p99 ${loop.p99.toFixed(1)} ms, max ${loop.max.toFixed(1)} ms; /health p99 ${health.p99Ms.toFixed(0)} ms, max ${health.maxMs.toFixed(0)} ms (probed from the flooding test process)`);

      const errors = c.ofType('error');
      const codes = new Set(errors.map((e) => e.code));
      for (const code of codes) expect(['ACTIVITY_NOT_STARTED', 'ACTIVITY_ALREADY_STARTED', 'ACTIVITY_BACKLOG_FULL']).toContain(code);
      // Every marker the server accepted reached the model, in well-formed brackets; the connection never closed.
      const st = await c.request({ type: 'get_status' }, 'session_status');
      await emu.waitFor(() => activityKinds(emu.connections[first]!).length === st.data.activity.starts + st.data.activity.ends, 10_000);
      const kinds = activityKinds(emu.connections[first]!);
      expect(wellBracketed(kinds)).toBe(true);
      expect(kinds.length).toBeGreaterThan(100);
      expect(emu.connections[first]!.closed).toBeUndefined();
      expect(emu.connections.length).toBe(first + 1);
      expect(st.data.activity.pendingMarkers).toBe(0);
      expect(st.data.status).toBe('active');
      expect(sent).toBe(2000);
      // The server's own loop (measured inside it) stays responsive; the probes run in the test process, which is
      // itself busy sending the flood and running the emulator, so only their failures are held to zero.
      expect(health.failures).toBe(0);
      // p99, not max: on this shared 2-core machine at load 8-10 single stalls of 340 ms were seen (the same flood
      // of pings: up to 110 ms at that load, 660 ms at load 7 in one 3,000-frame burst).
      expect(loop.p99).toBeLessThan(250);
      expect(s.child.exitCode).toBeNull();
      c.close();
    }), 120_000);

  it('REST: 300 concurrent marker requests (with and without audio) on one session: 200/409/429 only, well-formed brackets upstream', () =>
    withSeed(SEED, async () => {
      const rnd = prng(SEED + 7);
      const first = emu.connections.length;
      expect((await request(s.url).post(`${API}/session/start`).set(h()).send({ session_id: 'atk_rest', vad: { manual: true } })).status).toBe(200);
      const audio = silencePcm(40).toString('base64');
      const answers: request.Response[] = [];
      for (let batch = 0; batch < 5; batch++) {
        // 60 at once (the per-address cap on open connections is 100).
        answers.push(...(await Promise.all(
        Array.from({ length: 60 }, () => {
          const r = rnd();
          const body: Record<string, unknown> = { session_id: 'atk_rest' };
          if (r < 0.5) body.activity_start = true;
          else body.activity_end = true;
          if (rnd() < 0.5) Object.assign(body, { audio_data: audio, format: 'pcm', sample_rate: 16000 });
          return request(s.url).post(`${API}/transcribe`).set(h()).send(body);
        }),
        )));
      }
      const statuses = new Set(answers.map((a) => a.status));
      for (const st of statuses) expect([200, 409, 429]).toContain(st);
      for (const a of answers.filter((x) => x.status !== 200)) {
        expect(['ACTIVITY_NOT_STARTED', 'ACTIVITY_ALREADY_STARTED', 'ACTIVITY_BACKLOG_FULL']).toContain(a.body.code);
      }
      const st = await request(s.url).get(`${API}/session/atk_rest/status`).set(h());
      await emu.waitFor(() => activityKinds(emu.connections[first]!).length === st.body.data.activity.starts + st.body.data.activity.ends, 10_000);
      expect(wellBracketed(activityKinds(emu.connections[first]!))).toBe(true);
      expect(emu.connections[first]!.closed).toBeUndefined();
    }));

  it('markers on a session with automatic detection: every one refused 409, none reaches the model, no 1007', () =>
    withSeed(SEED, async () => {
      const first = emu.connections.length;
      const c = await connectAuthed(s.url, s.keys.bob);
      c.send({ type: 'start_session', session_id: 'atk_auto' });
      await c.next('session_started');
      for (let i = 0; i < 200; i++) c.send({ type: i % 2 ? 'activity_end' : 'activity_start' });
      c.send({ type: 'ping' });
      await c.next('pong', () => true, 10_000);
      const errors = c.ofType('error');
      expect(errors).toHaveLength(200);
      expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['MANUAL_ACTIVITY_DISABLED']));
      expect(activityKinds(emu.connections[first]!)).toEqual([]);
      expect(emu.connections[first]!.closed).toBeUndefined();
      c.close();
    }));
});

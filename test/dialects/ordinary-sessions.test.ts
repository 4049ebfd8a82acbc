/**
 * Sessions made through a dialect are ordinary sessions (issue 17 "What must work" 2): ended by the idle and
 * maximum-age timers (short values through config), held to the per-key session cap, metered in the caller's usage,
 * resumable (an Elk socket continues a session by id), counted in the one per-user connection cap shared with
 * `/ws/live-audio`.
 */
import { spawnSync } from 'node:child_process';
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { ffmpegBinary } from '../helpers/ffmpeg';
import { loadRecording } from '../helpers/fixtures';
import { spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { processAlive } from '../ops/helpers';
import { connect, connectRefused, dialectUrl, disorder, pcmChunks, recordingAsPcm, runSeed, sleep, type WsTestClient } from './dialect-helpers';

const API = '/api/v1/live-audio';

describe('dialect sessions are ordinary sessions', () => {
  let t: TestServer;
  const clients: WsTestClient[] = [];

  beforeAll(async () => {
    t = await startTestServer({
      env: {
        LIVE_AUDIO_IDLE_TIMEOUT_MS: '1500',
        LIVE_AUDIO_SESSION_MAX_MS: '4000',
        LIVE_AUDIO_MAX_SESSIONS_PER_USER: '2',
        LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: '3',
      },
    });
    t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'Noted.' } }));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t.emu.waitFor(() => t.server.registry.size === 0, 8000);
  });
  afterAll(async () => {
    await t.close();
  });

  async function open(path: string, token = t.keys.alice): Promise<WsTestClient> {
    const c = await connect(dialectUrl(t.url, path, token));
    clients.push(c);
    return c;
  }

  it('the idle timer ends a voice pipeline session: error in its shape, then the socket closes', async () => {
    const c = await open('/ws');
    await c.next('status', (m) => m.data === 'connected', 8000);
    const started = Date.now();
    const err = await c.next('error', () => true, 8000);
    expect(err.data).toMatch(/idle_timeout/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    await c.waitClose(3000);
  }, 20000);

  it('the maximum age ends an Elk session that keeps talking', async () => {
    const c = await open('/api/ai/gemini/realtime');
    c.send({ type: 'initialize_session' });
    const init = await c.next('session_initialized', () => true, 8000);
    const timer = setInterval(() => c.send({ type: 'send_text', text: 'still here' }), 500);
    try {
      const err = await c.next('error', (m) => m.code === 'SESSION_ENDED', 10000);
      expect(err.error).toMatch(/expired/);
    } finally {
      clearInterval(timer);
    }
    const status = await request(t.url).get(`${API}/session/${init.sessionId}/status`).set('X-API-Key', t.keys.alice);
    expect(status.body.data).toMatchObject({ status: 'expired' });
  }, 20000);

  it('the per-key session cap and the shared connection cap hold across dialects; usage is metered', async () => {
    const a = await open('/api/ai/gemini/realtime');
    a.send({ type: 'initialize_session' });
    await a.next('session_initialized', () => true, 8000);
    a.send({ type: 'send_text', text: 'Hello there' });
    await a.next('complete', () => true, 8000);
    const b = await open('/ws/audio-live');
    await b.next('ready', () => true, 8000);
    // Two sessions: the third start (any dialect) is refused in that dialect's error shape.
    const c = await open('/ws');
    const refused = await c.next('error', () => true, 8000);
    expect(refused.data).toMatch(/session/i);
    await c.waitClose(3000);
    // Three connections of alice's are open (a, b, d): a fourth is refused, on a dialect and on our own protocol.
    const d = await open('/ws/interview');
    const e = await connectRefused(dialectUrl(t.url, '/ws/audio-live', t.keys.alice));
    expect(e.status).toBe(429);
    expect(e.body).toMatchObject({ code: 'CONNECTION_LIMIT' });
    const ours = await open('/ws/live-audio');
    expect(await ours.next('auth_failed')).toMatchObject({ code: 'CONNECTION_LIMIT' });
    d.close();
    await d.waitClose(3000);
    // One closed: our own protocol gets its place.
    const again = await open('/ws/live-audio');
    await again.next('auth_success');
    // Metered: the Elk turn's tokens are in alice's usage.
    const usage = await request(t.url).get(`${API}/usage`).set('X-API-Key', t.keys.alice);
    expect(usage.body.data.today.tokens.totalTokens).toBeGreaterThan(0);
  }, 30000);

  it('an Elk socket resumes the caller’s session by id after its first socket went away (HTTP-made session)', async () => {
    const init = await request(t.url).post('/api/ai/gemini/initialize').set('X-API-Key', t.keys.alice).send({});
    const sessionId = init.body.sessionId as string;
    const first = await open('/api/ai/gemini/realtime');
    first.send({ type: 'initialize_session', sessionId });
    await first.next('session_initialized', () => true, 8000);
    first.close();
    await first.waitClose(3000);
    const second = await open('/api/ai/gemini/realtime');
    second.send({ type: 'initialize_session', sessionId });
    await second.next('session_initialized', (m) => m.sessionId === sessionId, 8000);
    second.send({ type: 'send_text', text: 'Are you still there?' });
    expect(await second.next('complete', () => true, 8000)).toMatchObject({ response: 'Noted.' });
  }, 20000);
});

/**
 * The same on a real spawned server process, for a session of each of the four dialects at once: listed, visible in
 * status, owned (another key sees nothing), transcribed, metered, resumed when the upstream goes away (goAway: a new
 * upstream connection resumed with the handle, the dialect's client notices nothing), then ended by the idle timer;
 * and, kept talking, ended by the maximum age. Each end reaches the client in its dialect's shape and closes its socket.
 */
describe('dialect sessions are ordinary sessions (spawned server, all four dialects)', () => {
  // (Idle well above what the REST checks between turns take on a loaded 2-core machine.)
  const IDLE_MS = 8000;
  const MAX_MS = 8000;
  const SEED = runSeed('ordinary-sessions-spawned');
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  const clients: WsTestClient[] = [];
  const rec = loadRecording('chromium-hello-1000ms');
  const pcm16k = recordingAsPcm('chromium-hello-1000ms', 16000, 1);

  /** A server with these timers (each test its own: the idle test must not meet the maximum age, and back). */
  const serverWith = (idleMs: number, maxMs: number) =>
    spawnServer({
      geminiBaseUrl: emu.baseUrl,
      env: {
        LIVE_AUDIO_IDLE_TIMEOUT_MS: String(idleMs),
        LIVE_AUDIO_SESSION_MAX_MS: String(maxMs),
        LIVE_AUDIO_MAX_SESSIONS_PER_USER: '8',
        LIVE_AUDIO_MAX_CONNECTIONS_PER_USER: '8',
      },
    });

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setFaults(disorder(SEED));
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: rec.spokenText, reply: 'Noted, thank you.' } }));
  }, 60000);
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    const pid = s?.pid;
    await s?.stop();
    if (pid) expect(processAlive(pid)).toBe(false);
  });
  afterAll(async () => {
    await emu?.stop();
  });

  const get = (path: string, key = s.keys.alice) => request(s.url).get(`${API}${path}`).set('X-API-Key', key);

  async function open(path: string): Promise<WsTestClient> {
    const c = await connect(dialectUrl(s.url, path, s.keys.alice));
    clients.push(c);
    return c;
  }

  /** A new WebM/Opus recording of the same words (real ffmpeg, libopus), at a slightly different gain per `n`. */
  function freshWebm(n: number): Buffer {
    const r = spawnSync(
      ffmpegBinary(),
      ['-hide_banner', '-loglevel', 'error', '-f', 's16le', '-ar', '16000', '-ac', '1', '-i', 'pipe:0', '-af', `volume=${(1 - n / 100).toFixed(2)}`, '-c:a', 'libopus', '-f', 'webm', 'pipe:1'],
      { input: pcm16k, maxBuffer: 16 * 1024 * 1024 },
    );
    if (r.status !== 0) throw new Error(`ffmpeg encode failed: ${r.stderr.toString()}`);
    return r.stdout;
  }

  /** Waits for `pred` (15 s); a failure names the dialect's error messages and the seed. */
  async function explained(c: WsTestClient, pred: () => boolean, what: string): Promise<void> {
    const explain = (why: string) => new Error(`[seed ${SEED}] ${why}; errors: ${JSON.stringify(c.ofType('error'))}`);
    await c.until(() => pred() || c.closeInfo !== undefined, 15000, what).catch((err: Error) => {
      throw explain(err.message);
    });
    if (!pred()) throw explain(`the socket closed (${JSON.stringify(c.closeInfo)}) before ${what}`);
  }

  /** One session per dialect, each through one turn in its own messages; their ids. */
  async function fourSessions(): Promise<{ name: string; c: WsTestClient; id: string; turn: () => Promise<void> }[]> {
    const before = new Set(((await get('/sessions')).body.data.sessions as Array<{ sessionId: string }>).map((x) => x.sessionId));
    const elk = await open('/api/ai/gemini/realtime');
    elk.send({ type: 'initialize_session' });
    const elkId = (await elk.next('session_initialized', () => true, 10000)).sessionId as string;
    const coach = await open('/ws/interview');
    coach.send({ type: 'start_interview' });
    const coachId = (await coach.next('gemini_ready', () => true, 10000)).sessionId as string;
    const fast = await open('/ws/audio-live');
    const fastId = (await fast.next('ready', () => true, 10000)).sessionId as string;
    const voice = await open('/ws');
    await voice.next('status', (m) => m.data === 'connected', 10000);
    let fastTurns = 0;
    const all = (await get('/sessions')).body.data.sessions as Array<{ sessionId: string }>;
    const voiceId = all.map((x) => x.sessionId).find((id) => id.startsWith('voice_') && !before.has(id))!;
    expect(voiceId).toBeDefined();
    const sessions = [
      {
        name: 'elk',
        c: elk,
        id: elkId,
        turn: async () => {
          const n = elk.ofType('complete').length;
          elk.send({ type: 'send_text', text: 'My name is Alex.' });
          await explained(elk, () => elk.ofType('complete').length > n, 'elk complete');
        },
      },
      {
        name: 'coach',
        c: coach,
        id: coachId,
        turn: async () => {
          const n = coach.ofType('ai_response').length;
          coach.send({ type: 'user_audio', text: 'My name is Alex.' });
          await explained(coach, () => coach.ofType('ai_response').length > n, 'coach ai_response');
        },
      },
      {
        name: 'fastapi',
        c: fast,
        id: fastId,
        turn: async () => {
          const n = fast.ofType('turn_complete').length;
          // The first turn: Chromium's own chunks. Later ones: a new recording each (a client that restarts
          // MediaRecorder), sent whole; never the same bytes twice (a repeat is taken for a retry and dropped).
          const frames = fastTurns++ === 0 ? rec.chunks : [freshWebm(fastTurns)];
          for (const chunk of frames) {
            fast.ws.send(chunk);
            await sleep(rec.timesliceMs / 4);
          }
          await explained(fast, () => fast.ofType('turn_complete').length > n, 'fastapi turn_complete');
        },
      },
      {
        name: 'voice',
        c: voice,
        id: voiceId,
        turn: async () => {
          const n = voice.messages.filter((m) => m.type === 'status' && m.data === 'complete').length;
          for (const chunk of pcmChunks(pcm16k, 16000, 1, 100)) {
            voice.send({ type: 'audio', data: chunk.toString('base64') });
            await sleep(25);
          }
          await explained(voice, () => voice.messages.filter((m) => m.type === 'status' && m.data === 'complete').length > n, 'voice complete');
        },
      },
    ];
    await Promise.all(sessions.map((x) => x.turn()));
    return sessions;
  }

  /** The dialect's own "session ended" message naming `reason`, then the socket closes. */
  async function endedBy(c: WsTestClient, reason: string): Promise<void> {
    await c
      .until(() => c.ofType('error').some((m) => JSON.stringify(m).includes(reason)), IDLE_MS + MAX_MS, `an error naming ${reason}`)
      .catch((err: Error) => {
        throw new Error(`${err.message}; errors: ${JSON.stringify(c.ofType('error'))}`);
      });
    await c.waitClose(5000);
  }

  it(`listed, status, owned, transcribed, metered, resumed after the upstream goes away, ended by the idle timer [seed ${SEED}]`, async () => {
    s = await serverWith(IDLE_MS, 15 * 60_000);
    const usageBefore = (await get('/usage')).body.data.today.tokens.totalTokens as number;
    const sessions = await fourSessions();
    const listed = ((await get('/sessions')).body.data.sessions as Array<{ sessionId: string }>).map((x) => x.sessionId);
    for (const x of sessions) {
      expect([x.name, listed.includes(x.id)]).toEqual([x.name, true]);
      const st = await get(`/session/${x.id}/status`);
      expect([x.name, st.status, st.body.data.status, st.body.data.transport]).toEqual([x.name, 200, 'active', 'ws']);
      const tr = await get(`/session/${x.id}/transcript`);
      expect([x.name, tr.status]).toEqual([x.name, 200]);
      expect([x.name, /Alex|Hello/.test(JSON.stringify(tr.body.data))]).toEqual([x.name, true]);
      // Owned: another key gets exactly what an unknown id gets, and lists none of them.
      for (const path of [`/session/${x.id}/status`, `/session/${x.id}/transcript`]) {
        const unknown = await get(path.replace(x.id, `${x.id}_nope`), s.keys.bob);
        const r = await get(path, s.keys.bob);
        expect([x.name, r.status, JSON.stringify(r.body)]).toEqual([x.name, unknown.status, JSON.stringify(unknown.body).replace(`${x.id}_nope`, x.id)]);
      }
    }
    expect((await get('/sessions', s.keys.bob)).body.data.sessions).toEqual([]);
    // Metered: the turns' tokens are in alice's usage.
    const usageAfter = (await get('/usage')).body.data.today.tokens.totalTokens as number;
    expect(usageAfter).toBeGreaterThan(usageBefore);

    // The upstream goes away (goAway, then closed): every session resumes with its handle; the next turn just works.
    const conns = emu.connections.length;
    emu.goAway('all', 200);
    await emu.waitFor(() => emu.connections.slice(conns).filter((r) => r.resumedFrom).length >= 4, 15000);
    await Promise.all(sessions.map((x) => x.turn()));
    for (const x of sessions) expect([x.name, x.c.closeInfo]).toEqual([x.name, undefined]);

    // Quiet from now on: the idle timer ends each, in its dialect's shape; the status says why.
    const quietFrom = Date.now();
    await Promise.all(sessions.map((x) => endedBy(x.c, 'idle_timeout')));
    expect(Date.now() - quietFrom).toBeGreaterThanOrEqual(IDLE_MS - 1500);
    for (const x of sessions) {
      const st = await get(`/session/${x.id}/status`);
      expect([x.name, st.body.data.status, st.body.data.reason]).toEqual([x.name, 'ended', 'idle_timeout']);
    }
    expect((await get('/sessions')).body.data.sessions).toEqual([]);
  }, 120000);

  it('kept talking, each dialect session is ended by the maximum age', async () => {
    s = await serverWith(60_000, MAX_MS);
    const sessions = await fourSessions();
    const started = Date.now();
    let talking = true;
    const loops = sessions.map(async (x) => {
      while (talking && !x.c.closeInfo) {
        await x.turn().catch(() => undefined);
        await sleep(500);
      }
    });
    let endedAfterMs: number;
    try {
      await Promise.all(sessions.map((x) => endedBy(x.c, 'expired')));
      endedAfterMs = Date.now() - started;
    } finally {
      talking = false;
      await Promise.all(loops);
    }
    console.log(`four dialect sessions kept talking: all ended by the maximum age (${MAX_MS} ms) within ${endedAfterMs} ms of their first turn`);
    expect(endedAfterMs).toBeLessThan(MAX_MS);
    for (const x of sessions) {
      const st = await get(`/session/${x.id}/status`);
      expect([x.name, st.body.data.status]).toEqual([x.name, 'expired']);
    }
  }, 120000);
});

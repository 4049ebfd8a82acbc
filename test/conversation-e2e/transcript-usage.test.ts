/**
 * Issue 14 §5–§7 wired: upstream events feed the transcript and the usage meter. Across a goAway and resume the
 * transcript holds each turn once and the usage equals the emulator's own figures (what it sent, summed per
 * connection); the caller's /usage shows the same; an ended session's transcript stays readable by its owner only.
 * Daily token budgets refuse new sessions (429) and end running ones at a turn boundary. A transcribe-model
 * session returns the transcription without a reply and is cut at its audio cap with a clear code.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKeyInFile, readKeyFile, writeKeyFile } from '../../src/services/auth';
import request from 'supertest';
import { defaultModels, EMULATOR_TIMINGS, scriptedScenario, type GeminiLiveEmulator } from '../../src/emulator';
import { silencePcm } from '../helpers/live-probe';
import { sleep, startTestServer, type TestServer } from '../helpers/test-server';
import { NO_RATE_LIMITS, patternPcm } from '../resilience/helpers';
import { connectAuthed } from '../helpers/ws-test-client';
import { prng } from '../ops/helpers';
import { rest, streamDisordered, suiteSeed, withSeed, type Rest } from './helpers';

const SEED = suiteSeed();
const TURNS = [
  { userTranscript: 'First question.', reply: 'First answer.' },
  { userTranscript: 'Second question.', reply: 'Second answer.' },
  { userTranscript: 'Third question.', reply: 'Third answer.' },
];

/** The emulator's own usage figures: every usageMetadata it sent, over its connections (from `from` on). */
function emulatorUsage(emu: GeminiLiveEmulator, from = 0) {
  const sum = { messages: 0, promptTokenCount: 0, responseTokenCount: 0, thoughtsTokenCount: 0, totalTokenCount: 0 };
  for (const c of emu.connections.slice(from)) for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += c.usage[k];
  return sum;
}

async function transcriptWhen(r: Rest, id: string, pred: (d: any) => boolean, what: string, timeoutMs = 10_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await r.transcript(id);
    if (res.status === 200 && pred(res.body.data)) return res.body.data;
    if (Date.now() > deadline) throw new Error(`transcript: ${what} not reached within ${timeoutMs} ms: ${JSON.stringify(res.body).slice(0, 2000)}`);
    await sleep(50);
  }
}

describe.each(EMULATOR_TIMINGS)(`transcript and usage across a reconnect (emulator timing %s, seed ${SEED})`, (timing) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0' }, emulator: { timing } });
    t.emu.setScenario(scriptedScenario(TURNS));
  });
  afterAll(() => t.close());

  it('each turn once, usage equal to the emulator figures, in the transcript, status and /usage; owner only', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const start = await r.start({ response_modality: 'audio' });
      expect(start.status).toBe(200);
      const id = start.body.data.sessionId as string;
      // Three utterances; the server sends the link away during the second (it moves at the next turn boundary).
      await streamDisordered(r, id, patternPcm(4_500), SEED, { 2_000: () => t.emu.goAway('all', 3_000) });
      const all = (d: any) => d.turns.filter((x: any) => x.endedAt !== null && x.replyText !== '').length === 3;
      await transcriptWhen(r, id, all, 'three answered turns');
      // Every usage report the emulator sent has arrived (setup of each connection, each turn).
      const data = await transcriptWhen(r, id, (d) => d.usage.reports === emulatorUsage(t.emu).messages, 'all usage reports');
      expect(t.emu.connections.length).toBeGreaterThanOrEqual(2);
      expect(t.emu.connections[1]!.resumedFrom).toBeDefined();

      expect(data.turns.map((x: any) => [x.kind, x.userText, x.replyText, x.interrupted])).toEqual(
        TURNS.map((x) => ['user', x.userTranscript, x.reply, false]),
      );
      const emu = emulatorUsage(t.emu);
      expect(data.usage).toMatchObject({
        promptTokens: emu.promptTokenCount,
        responseTokens: emu.responseTokenCount,
        thoughtsTokens: emu.thoughtsTokenCount,
        totalTokens: emu.totalTokenCount,
        reports: emu.messages,
      });
      expect(emu.thoughtsTokenCount).toBeGreaterThan(0); // gemini-3.8-live reports thoughts
      // Per turn: each answered turn carries its own usage; the rest is the connections' setups.
      const perTurn = data.turns.reduce((s: number, x: any) => s + (x.usage?.totalTokens ?? 0), 0);
      expect(perTurn + data.overheadUsage.totalTokens).toBe(emu.totalTokenCount);
      for (const x of data.turns) expect(x.usage?.responseTokens).toBeGreaterThan(0);

      const status = (await r.status(id)).body.data;
      expect(status.usage.tokens.totalTokens).toBe(emu.totalTokenCount);
      expect(status.usage.turns).toBe(3);
      expect(status.usage.audioSeconds.input).toBeCloseTo(4.5, 0);
      expect(status.usage.audioSeconds.output).toBeGreaterThan(0);

      await r.end(id);
      const u = (await r.usage()).body.data;
      expect(u).toMatchObject({ key: 'key:alice', tracked: true, budget: { dailyTokens: null } });
      expect(u.today.tokens.totalTokens).toBe(emu.totalTokenCount);
      expect(u.today.sessions).toBe(1);
      expect(u.today.turns).toBe(3);
      expect(u.today.audioSeconds.input).toBeCloseTo(4.5, 0);
      // Prometheus, by key name: the same totals.
      const metrics = (await request(t.url).get('/metrics')).text;
      expect(metrics).toContain(`live_audio_usage_tokens_total{key="key:alice",kind="total"} ${emu.totalTokenCount}`);
      expect(metrics).toContain(`live_audio_usage_tokens_total{key="key:alice",kind="thoughts"} ${emu.thoughtsTokenCount}`);
      expect(metrics).toContain('live_audio_usage_sessions_total{key="key:alice"} 1');

      // Ended: still readable by its owner (from the store), the same not-found for another key and a made-up id.
      const ended = await r.transcript(id);
      expect(ended.status).toBe(200);
      expect(ended.body.data).toMatchObject({ live: false, endReason: 'client_end' });
      expect(ended.body.data.turns).toHaveLength(3);
      const bob = rest(t, t.keys.bob);
      const foreign = await bob.transcript(id);
      const unknown = await bob.transcript('session_0_nothere');
      expect(foreign.status).toBe(404);
      expect(foreign.body).toEqual(unknown.body);
      expect((await bob.usage()).body.data.today.tokens.totalTokens).toBe(0);
    }));

  it('WebSocket: the same across a goAway, read with get_transcript and get_status', () =>
    withSeed(SEED, async () => {
      t.emu.setScenario(scriptedScenario(TURNS));
      const c = await connectAuthed(t.url, t.keys.bob);
      const first = t.emu.connections.length;
      await c.request({ type: 'start_session', session_id: 'ws_usage_1', response_modality: 'text' }, 'session_started');
      const pcm = patternPcm(4_500);
      const rnd = prng(SEED + 1);
      let goneAway = false;
      for (let off = 0; off < pcm.length; ) {
        const end = Math.min(pcm.length, off + (40 + Math.floor(rnd() * 200)) * 32);
        c.send({ type: 'audio_chunk', audio_data: pcm.subarray(off, end).toString('base64'), format: 'pcm', sample_rate: 16000 });
        if (!goneAway && end >= 2_000 * 32) {
          goneAway = true;
          t.emu.goAway('all', 3_000);
        }
        off = end;
        await sleep(Math.floor(rnd() * 30));
      }
      for (let i = 0; i < 3; i++) await c.next('turn_complete', () => true, 10_000);
      let tr: any;
      const deadline = Date.now() + 5_000;
      do {
        tr = (await c.request({ type: 'get_transcript' }, 'transcript')).data;
        if (tr.usage.reports === emulatorUsage(t.emu, first).messages) break;
        await sleep(50);
      } while (Date.now() < deadline);
      const emu = emulatorUsage(t.emu, first);
      expect(t.emu.connections.length - first).toBeGreaterThanOrEqual(2);
      expect(tr.turns.map((x: any) => [x.userText, x.replyText])).toEqual(TURNS.map((x) => [x.userTranscript, x.reply]));
      expect(tr.usage).toMatchObject({ totalTokens: emu.totalTokenCount, promptTokens: emu.promptTokenCount, reports: emu.messages });
      const st = await c.request({ type: 'get_status' }, 'session_status');
      expect(st.data.usage.tokens.totalTokens).toBe(emu.totalTokenCount);
      const u = await c.request({ type: 'get_usage' }, 'usage');
      expect(u.data).toMatchObject({ key: 'key:bob', today: { sessions: 1, turns: 3 } });
      c.close();
    }));
});

describe(`daily token budget (seed ${SEED})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', LIVE_AUDIO_MAX_TOKENS_PER_DAY: '1' }, emulator: { timing: SEED % 2 ? 'eager' : 'spaced' } });
    t.emu.setScenario(scriptedScenario(TURNS));
  });
  afterAll(() => t.close());

  it('a running session ends at the turn boundary once spent; new sessions are refused with 429 on REST and WebSocket', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const start = await r.start({});
      expect(start.status).toBe(200);
      const id = start.body.data.sessionId as string;
      await streamDisordered(r, id, patternPcm(1_500), SEED);
      let last: any;
      for (let i = 0; i < 100; i++) {
        last = await r.transcribe(id, silencePcm(100));
        if (last.status !== 200) break;
        await sleep(20);
      }
      expect(last.status).toBe(429);
      expect(last.body.code).toBe('TOKEN_BUDGET_EXHAUSTED');
      const st = (await r.status(id)).body.data;
      expect(st.reason).toBe('token_budget_exhausted');
      // The turn was answered in full before the end.
      const tr = (await r.transcript(id)).body.data;
      expect(tr.turns[0]).toMatchObject({ userText: TURNS[0]!.userTranscript, replyText: TURNS[0]!.reply, interrupted: false });

      const before = t.emu.connections.length;
      const refused = await r.start({});
      expect(refused.status).toBe(429);
      expect(refused.body.code).toBe('TOKEN_BUDGET_EXHAUSTED');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      const c = await connectAuthed(t.url, t.keys.alice);
      const err = await c.request({ type: 'start_session', session_id: 'ws_budget' }, 'error');
      expect(err.code).toBe('TOKEN_BUDGET_EXHAUSTED');
      c.close();
      expect(t.emu.connections.length).toBe(before);
      const u = (await r.usage()).body.data;
      expect(u.budget).toMatchObject({ dailyTokens: 1, remainingToday: 0 });
      // Another key has its own budget.
      expect((await rest(t, t.keys.bob).start({})).status).toBe(200);
      t.server.registry.endAll('client_end', 'test cleanup');
    }));
});

describe(`a key's own daily budget from the key file (seed ${SEED})`, () => {
  let t: TestServer;
  let dir: string;
  let keys: { carol: string; dave: string };
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-budget-keys-'));
    const file = path.join(dir, 'keys.json');
    keys = { carol: createKeyInFile(file, 'carol').key, dave: createKeyInFile(file, 'dave').key };
    const data = readKeyFile(file);
    for (const r of data.keys) r.maxTokensPerDay = r.name === 'carol' ? 1 : 0;
    writeKeyFile(file, data);
    // The server-wide budget (1 token) is dave's too unless his own says otherwise (0: none for him).
    t = await startTestServer({
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', LIVE_AUDIO_MAX_TOKENS_PER_DAY: '1', LIVE_AUDIO_API_KEYS_FILE: file },
    });
    t.emu.setScenario(scriptedScenario(TURNS));
  });
  afterAll(async () => {
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the key file's maxTokensPerDay wins over LIVE_AUDIO_MAX_TOKENS_PER_DAY, both ways", () =>
    withSeed(SEED, async () => {
      for (const [name, key, spent] of [
        ['carol', keys.carol, true],
        ['dave', keys.dave, false],
      ] as const) {
        const r = rest(t, key);
        const start = await r.start({});
        expect(start.status).toBe(200);
        const id = start.body.data.sessionId as string;
        await streamDisordered(r, id, patternPcm(1_500), SEED);
        await transcriptWhen(r, id, (d) => d.turns.some((x: any) => x.endedAt !== null && x.usage !== null), `${name}'s answered turn`);
        const u = (await r.usage()).body.data;
        expect(u.budget.dailyTokens).toBe(spent ? 1 : null);
        const again = await r.start({});
        expect([name, again.status]).toEqual([name, spent ? 429 : 200]);
        if (spent) expect((await r.status(id)).body.data.reason).toBe('token_budget_exhausted');
      }
      t.server.registry.endAll('client_end', 'test cleanup');
    }));
});

describe(`transcription-only sessions (seed ${SEED})`, () => {
  let t: TestServer;
  const SHORT = 'test-transcribe-3s';
  beforeAll(async () => {
    const models = defaultModels();
    models[SHORT] = { ...models['gemini-3.5-transcribe-live']!, maxAudioMs: 3_000 };
    t = await startTestServer({
      env: {
        ...NO_RATE_LIMITS,
        LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0',
        LIVE_AUDIO_EXTRA_MODELS: JSON.stringify([{ id: SHORT, like: 'gemini-3.5-transcribe-live', capabilities: { maxAudioMsPerSession: 3_000 } }]),
      },
      emulator: { models, timing: SEED % 2 ? 'spaced' : 'eager' },
    });
    t.emu.setScenario(scriptedScenario(TURNS));
  });
  afterAll(() => t.close());

  it('the transcribe profile: the transcription comes back, no reply; the cap is 10 minutes', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const start = await r.start({ profile: 'transcribe', language: 'en-US', custom_vocabulary: ['Sculptor'] });
      expect(start.status).toBe(200);
      expect(start.body.data.setup).toMatchObject({ model: 'gemini-3.5-transcribe-live', transcription_only: true, max_audio_ms: 600_000, transcription_languages: ['en-US'] });
      const rec = t.emu.connections[t.emu.connections.length - 1]!;
      expect(rec.setup.generationConfig.responseModalities).toEqual(['TEXT']);
      expect(rec.setup.inputAudioTranscription).toEqual({ languageCodes: ['en-US'], customVocabulary: ['Sculptor'] });
      const id = start.body.data.sessionId as string;
      const answers = await streamDisordered(r, id, patternPcm(1_500), SEED);
      expect(answers.every((a) => a.status === 200 && a.body.response === '')).toBe(true);
      const tr = await transcriptWhen(r, id, (d) => d.turns.some((x: any) => x.endedAt !== null), 'a transcribed turn');
      expect(tr.turns[0]).toMatchObject({ userText: TURNS[0]!.userTranscript, replyText: '' });
      await r.end(id);
    }));

  it('a session is cut at its model audio cap with SESSION_AUDIO_LIMIT_REACHED, before the model closes it', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const start = await r.start({ model: SHORT });
      expect(start.status).toBe(200);
      const id = start.body.data.sessionId as string;
      const rec = t.emu.connections[t.emu.connections.length - 1]!;
      const answers = await streamDisordered(r, id, patternPcm(4_000), SEED);
      const cut = answers.find((a) => a.status !== 200);
      expect(cut?.status).toBe(409);
      expect(cut?.body.code).toBe('SESSION_AUDIO_LIMIT_REACHED');
      const st = (await r.status(id)).body.data;
      expect(st.reason).toBe('audio_limit_reached');
      await t.emu.waitFor(() => rec.closed !== undefined, 3000);
      expect(rec.audioBytes).toBe(3_000 * 32);
      expect(rec.closed!.code).not.toBe(1008);
    }));
});

describe(`a session that ends by itself (idle) is archived too (seed ${SEED})`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', LIVE_AUDIO_IDLE_TIMEOUT_MS: '1000' } });
    t.emu.setScenario(scriptedScenario([], { greeting: { userTranscript: '', reply: 'Hi there.' } }));
  });
  afterAll(() => t.close());

  it('the idle timeout ends it; its transcript (the greeting turn) stays readable from the store', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const start = await r.start({ greeting: 'Say hi.' });
      expect(start.status).toBe(200);
      const id = start.body.data.sessionId as string;
      const data = await transcriptWhen(r, id, (d) => d.live === false, 'the end by idle timeout', 8_000);
      expect(data).toMatchObject({ endReason: 'idle_timeout', turns: [expect.objectContaining({ kind: 'greeting', replyText: 'Hi there.' })] });
      expect(t.emu.connections[0]!.greeting).toBe('Say hi.');
    }));
});

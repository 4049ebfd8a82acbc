/**
 * Issue 14 §4 wired: the model speaks first. The greeting goes once, as a text turn right after the first setup,
 * its reply reaches REST clients in their next answer and WebSocket clients at once, and it is never sent again
 * when the link moves to a new connection after a goAway (resumed). Both emulator timings: `eager` (setupComplete,
 * a handle and usage in one read; a reply's end coalesced) and `spaced`.
 */
import { EMULATOR_TIMINGS, scriptedScenario } from '../../src/emulator';
import { INTERVIEW_GREETING } from '../../src/services/profiles';
import { silencePcm } from '../helpers/live-probe';
import { startTestServer, type TestServer } from '../helpers/test-server';
import { NO_RATE_LIMITS, patternPcm } from '../resilience/helpers';
import { connectAuthed, type WsTestClient } from '../helpers/ws-test-client';
import { rest, streamDisordered, suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();
const GREETING_REPLY = 'Welcome! Please introduce yourself.';
const ANSWER_REPLY = 'Thank you, Ada.';
const scenario = () =>
  scriptedScenario([{ userTranscript: 'My name is Ada.', reply: ANSWER_REPLY }], { greeting: { userTranscript: '', reply: GREETING_REPLY } });

describe.each(EMULATOR_TIMINGS)(`the model speaks first (emulator timing %s, seed ${SEED})`, (timing) => {
  let t: TestServer;
  const sockets: WsTestClient[] = [];
  beforeAll(async () => {
    t = await startTestServer({ env: { ...NO_RATE_LIMITS, LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '300' }, emulator: { timing } });
  });
  beforeEach(() => t.emu.setScenario(scenario()));
  afterEach(() => {
    for (const c of sockets.splice(0)) c.close();
    t.server.registry.endAll('client_end', 'test cleanup');
  });
  afterAll(() => t.close());

  const textMessages = (i: number) => t.emu.connections[i]!.messages.filter((m) => m.kind === 'text').length;

  it('REST: the greeting reply comes in the next answers, first; not repeated after a goAway and resume', () =>
    withSeed(SEED, async () => {
      const r = rest(t, t.keys.alice);
      const first = t.emu.connections.length;
      const start = await r.start({ profile: 'interview', language: 'en-US' });
      expect(start.status).toBe(200);
      const id = start.body.data.sessionId as string;
      await t.emu.waitFor(() => t.emu.connections[first]?.greeting !== undefined, 3000);
      expect(t.emu.connections[first]!.greeting).toBe(INTERVIEW_GREETING);
      expect(t.emu.connections[first]!.messages.map((m) => m.kind).slice(0, 2)).toEqual(['setup', 'text']);

      // The client polls with silence (as a page does while the user listens): the greeting is the first reply.
      const responses: string[] = [];
      for (let i = 0; i < 40; i++) {
        const a = await r.transcribe(id, silencePcm(100));
        expect(a.status).toBe(200);
        if (a.body.response) responses.push(a.body.response as string);
        if (a.body.turnComplete && a.body.response === GREETING_REPLY) break;
      }
      expect(responses.length).toBeGreaterThan(0);
      for (const resp of responses) expect(GREETING_REPLY.startsWith(resp)).toBe(true);
      expect(responses[responses.length - 1]).toBe(GREETING_REPLY);

      // The server sends the link away: it resumes on a new connection, which gets no greeting.
      t.emu.goAway('all', 400);
      await t.emu.waitFor(() => t.emu.connections.length === first + 2 && t.emu.connections[first + 1]!.model !== undefined, 5000);
      expect(t.emu.connections[first + 1]!.resumedFrom).toBeDefined();
      await streamDisordered(r, id, patternPcm(1_500), SEED);
      for (let i = 0; i < 50; i++) {
        const a = await r.transcribe(id, silencePcm(100));
        if (a.body.turnComplete && a.body.response === ANSWER_REPLY) break;
      }
      expect(textMessages(first + 1)).toBe(0);
      expect(t.emu.connections[first + 1]!.greeting).toBeUndefined();
      const tr = await r.transcript(id);
      expect(tr.status).toBe(200);
      const turns = tr.body.data.turns as Array<{ kind: string; userText: string; replyText: string }>;
      expect(turns.filter((x) => x.kind === 'greeting')).toHaveLength(1);
      expect(turns[0]).toMatchObject({ kind: 'greeting', userText: '', replyText: GREETING_REPLY });
      expect(turns.filter((x) => x.replyText === ANSWER_REPLY)).toHaveLength(1);
    }));

  it('WebSocket: the greeting reply is the first reply on the socket; not repeated after a goAway and resume', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(t.url, t.keys.alice);
      sockets.push(c);
      const first = t.emu.connections.length;
      await c.request({ type: 'start_session', session_id: 'ws_greet_1', profile: 'interview', language: 'en-US', response_modality: 'audio' }, 'session_started');
      const done = await c.next('turn_complete', () => true, 5000);
      expect(done.data.response).toBe(GREETING_REPLY);
      expect(done.data.transcript).toBe('');
      const results = c.ofType('transcription_result');
      expect(results.length).toBeGreaterThan(0);
      for (const m of results) expect(GREETING_REPLY.startsWith(m.data.response as string)).toBe(true);
      expect(c.ofType('audio_output').length).toBeGreaterThan(0);

      t.emu.goAway('all', 400);
      await t.emu.waitFor(() => t.emu.connections.length === first + 2 && t.emu.connections[first + 1]!.model !== undefined, 5000);
      const pcm = patternPcm(1_500);
      for (let off = 0; off < pcm.length; off += 3_200) {
        c.send({ type: 'audio_chunk', audio_data: pcm.subarray(off, off + 3_200).toString('base64'), format: 'pcm', sample_rate: 16000 });
      }
      const second = await c.next('turn_complete', (m) => m.data.response === ANSWER_REPLY, 8000);
      expect(second.data.transcript).toBe('My name is Ada.');
      expect(textMessages(first + 1)).toBe(0);
      const tr = await c.request({ type: 'get_transcript' }, 'transcript');
      const turns = tr.data.turns as Array<{ kind: string; replyText: string }>;
      expect(turns.map((x) => [x.kind, x.replyText])).toEqual([
        ['greeting', GREETING_REPLY],
        ['user', ANSWER_REPLY],
      ]);
    }));
});

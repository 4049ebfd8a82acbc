/**
 * The attacker's tests of issue 16 on a real spawned server process: what a stranger or one key holder costs us
 * with function calls. Declarations too many / too big / too deep (a named 400 before any upstream connection),
 * a flood of answers with made-up ids, answers over the size cap, re-answers, another key's and another session's
 * call ids (they look unknown), and a model that asks for more calls than the pending bound. The process stays
 * up, /health stays fast, memory stays bounded, no call id or answer content leaks into the logs.
 */
import request from 'supertest';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { probeHealth, spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { prng } from '../ops/helpers';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed } from '../helpers/ws-test-client';
import { API, GET_TIME, suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();
const SECRET_ANSWER = 'answer-content-that-must-not-be-logged';

describe(`attacks on function calls, on a spawned server (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  const rnd = prng(SEED);

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    // Six calls at once, against a pending bound of four.
    emu.setScenario(
      scriptedScenario([], {
        fallback: {
          userTranscript: '',
          reply: 'Done.',
          replyAudioMs: 300,
          toolCalls: Array.from({ length: 6 }, (_, i) => ({ name: 'get_time', args: { n: i } })),
        },
      }),
    );
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_MAX_PENDING_TOOL_CALLS: '4', LIVE_AUDIO_MAX_TOOL_RESPONSE_BYTES: '4096', LIVE_AUDIO_TOOL_TIMEOUT_MS: '60000' },
    });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await emu?.stop();
  });

  const h = (key: string) => ({ 'X-API-Key': key, 'Content-Type': 'application/json' });
  const start = (key: string, body: unknown) => request(s.url).post(`${API}/session/start`).set(h(key)).send(JSON.stringify(body));
  const answer = (key: string, body: unknown) => request(s.url).post(`${API}/session/tool-response`).set(h(key)).send(typeof body === 'string' ? body : JSON.stringify(body));

  it('declarations too many, too big, too deep: a named 400 each, before any upstream connection', () =>
    withSeed(SEED, async () => {
      const before = emu.connections.length;
      const many = await start(s.keys.alice, { session_id: 'atk_t1', tools: Array.from({ length: 1000 }, (_, i) => ({ name: `f${i}` })) });
      expect(many.status).toBe(400);
      let deep: unknown = { type: 'string' };
      for (let i = 0; i < 9; i++) deep = { type: 'object', properties: { a: deep } };
      const tooDeep = await start(s.keys.alice, { session_id: 'atk_t2', tools: [{ name: 'f', parameters: deep }] });
      expect(tooDeep.status).toBe(400);
      expect(['INVALID_FIELD', 'JSON_TOO_DEEP']).toContain(tooDeep.body.code);
      const hostile = `{"session_id":"atk_t3","tools":[{"name":"f","parameters":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}]}`;
      const r3 = await answer(s.keys.alice, hostile); // the route does not matter: the body is refused by shape first
      expect([r3.status, r3.body.code]).toEqual([400, 'JSON_TOO_DEEP']);
      const big = await start(s.keys.alice, {
        session_id: 'atk_t4',
        tools: Array.from({ length: 32 }, (_, i) => ({ name: `f${i}`, description: 'd'.repeat(1024), parameters: { type: 'object', description: 'p'.repeat(4000) } })),
      });
      expect(big.status).toBeGreaterThanOrEqual(400);
      expect(big.status).toBeLessThan(500);
      expect(emu.connections.length).toBe(before);
    }));

  it('a model asking for more calls than the pending bound: the client sees the bound, the model gets errors for the rest at once', () =>
    withSeed(SEED, async () => {
      const c = await connectAuthed(s.url, s.keys.alice);
      await c.request({ type: 'start_session', session_id: 'atk_pending', tools: [GET_TIME] }, 'session_started');
      c.send({ type: 'text', text: 'go' });
      const call = await c.next('tool_call');
      expect(call.calls).toHaveLength(4);
      const conn = emu.connections.at(-1)!;
      await emu.waitFor(() => conn.toolResponses.length === 2);
      expect(conn.toolResponses.map((r) => (r.response as { error: string }).error)).toEqual([expect.stringContaining('Too many'), expect.stringContaining('Too many')]);
      c.close();
    }));

  it('a flood of answers with made-up, oversized, re-used and foreign ids: each refused, nothing reaches the model, /health stays fast', () =>
    withSeed(SEED, async () => {
      // The same probe without an attack first: the machine's own latency, printed next to the attack's.
      const quiet = probeHealth(s.url);
      await new Promise((r) => setTimeout(r, 1500));
      const q = await quiet.stop();
      console.log(`tools flood baseline: /health p99 ${q.p99Ms} ms, max ${q.maxMs} ms over ${q.samples.length} probes (no attack)`);
      const health = probeHealth(s.url);
      try {
        await flood(health);
      } finally {
        await health.stop();
      }
    }));

  async function flood(health: ReturnType<typeof probeHealth>): Promise<void> {
    {
      const c = await connectAuthed(s.url, s.keys.alice);
      await c.request({ type: 'start_session', session_id: 'atk_flood', tools: [GET_TIME] }, 'session_started');
      c.send({ type: 'text', text: 'go' });
      const call = await c.next('tool_call');
      const conn = emu.connections.at(-1)!;
      const realId: string = call.calls[0].id;

      // Bob (another key) answering alice's session: it looks unknown.
      const bob = await answer(s.keys.bob, { session_id: 'atk_flood', responses: [{ id: realId, response: { output: SECRET_ANSWER } }] });
      expect([bob.status, bob.body.code]).toEqual([404, 'SESSION_NOT_FOUND']);
      // Another session of alice's: the id is unknown there.
      const other = await connectAuthed(s.url, s.keys.alice);
      await other.request({ type: 'start_session', session_id: 'atk_other', tools: [GET_TIME] }, 'session_started');
      const foreign = await answer(s.keys.alice, { session_id: 'atk_other', responses: [{ id: realId, response: {} }] });
      expect([foreign.status, foreign.body.code]).toEqual([409, 'TOOL_CALL_UNKNOWN']);

      // 2,000 WebSocket answers with made-up ids, some oversized; every one refused with its code.
      const n = 2000;
      let oversized = 0;
      for (let i = 0; i < n; i++) {
        const big = rnd() < 0.05;
        if (big) oversized++;
        c.send({ type: 'tool_response', responses: [{ id: `fake-${i}`, response: { output: big ? 'x'.repeat(5000) : SECRET_ANSWER } }] });
      }
      await c.until(() => c.ofType('error').length + c.ofType('rate_limit_exceeded').length >= n, 30_000, 'every answer refused');
      const codes = c.ofType('error').map((m) => m.code);
      const histogram: Record<string, number> = {};
      for (const x of codes) histogram[x] = (histogram[x] ?? 0) + 1;
      // Every frame got exactly one refusal: past the per-connection message rate, `rate_limit_exceeded`; within it,
      // the ledger's code (an oversized answer is refused for its size before its id is looked up).
      const limited = c.ofType('rate_limit_exceeded').length;
      expect(codes.length + limited).toBe(n);
      expect(Object.keys(histogram).sort()).toEqual(oversized > 0 && histogram.TOOL_RESPONSE_TOO_LARGE ? ['TOOL_CALL_UNKNOWN', 'TOOL_RESPONSE_TOO_LARGE'] : ['TOOL_CALL_UNKNOWN']);
      expect(histogram.TOOL_RESPONSE_TOO_LARGE ?? 0).toBeLessThanOrEqual(oversized);

      // The real answer still works once; a second time is a 409.
      const ok = await answer(s.keys.alice, { session_id: 'atk_flood', responses: call.calls.map((x: { id: string }) => ({ id: x.id, response: { output: 'fine' } })) });
      expect(ok.status).toBe(200);
      const again = await answer(s.keys.alice, { session_id: 'atk_flood', responses: [{ id: realId, response: {} }] });
      expect([again.status, again.body.code]).toEqual([409, 'TOOL_CALL_NOT_PENDING']);
      const realIds = call.calls.map((x: { id: string }) => x.id);
      await emu.waitFor(() => realIds.every((id: string) => conn.toolResponses.some((r) => r.id === id)), 10_000);
      // Each real call answered exactly once; nothing of the flood reached the model (it would have closed 1007).
      expect(conn.toolResponses.filter((r) => realIds.includes(r.id))).toHaveLength(realIds.length);
      expect(conn.toolResponses.filter((r) => r.id.startsWith('fake-'))).toEqual([]);
      expect(conn.closed).toBeUndefined();

      const h = await health.stop();
      console.log(`tools flood: ${JSON.stringify(histogram)}, rate limited ${limited}; /health p99 ${h.p99Ms} ms, max ${h.maxMs} ms over ${h.samples.length} probes`);
      expect(h.failures).toBe(0);
      // The process keeps answering during the flood. Issue 16 sets no latency bound; on this shared 2-core machine
      // (load average 5-9 while measured) the worst probe was 0.2-0.7 s, so the bound is 1.5 s: it still fails when
      // the flood blocks the event loop (2,000 frames handled synchronously would stall every probe).
      expect(h.p99Ms).toBeLessThan(1500);
      // Nothing of the answers, and no raw key, reached the logs.
      const out = s.output();
      expect(out).not.toContain(SECRET_ANSWER);
      expect(out).not.toContain(s.keys.alice);
      c.close();
      other.close();
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    }
  }
});

/**
 * The attacker's tests of issue 14's wiring, on a real spawned server process: what a key holder costs us with
 * option bodies (unknown, huge, deep, 10,000 vocabulary terms), with another key's session ids, with a flood of
 * starts carrying the largest system instruction, and with profile names that do not exist. Every refusal is a
 * clear 4xx before any upstream connection; the process stays up and answers /health; memory stays bounded.
 */
import request from 'supertest';
import { InspectorSession, inspectorUrl } from '../../bench/inspector-gc';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { probeHealth, spawnServer, type SpawnedServer } from '../helpers/spawned-server';
import { NO_RATE_LIMITS } from '../resilience/helpers';
import { connectAuthed } from '../helpers/ws-test-client';
import { prng } from '../ops/helpers';
import { API, suiteSeed, withSeed } from './helpers';

const SEED = suiteSeed();
const MiB = 1024 * 1024;

describe(`attacks on the conversation options, on a spawned server (seed ${SEED})`, () => {
  let emu: GeminiLiveEmulator;
  let s: SpawnedServer;
  let inspector: InspectorSession;

  /** Heap used after forced full GCs (the server's own gauge, read right after). */
  async function heapAfterGc(): Promise<number> {
    await inspector.collectGarbage();
    await inspector.collectGarbage();
    const m = await fetch(`${s.url}/metrics`).then((r) => r.text());
    return Number(/^live_audio_process_memory_bytes\{kind="heap_used"\} (\d+)/m.exec(m)![1]);
  }

  beforeAll(async () => {
    emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
    emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'OK.' } }));
    s = await spawnServer({
      geminiBaseUrl: emu.baseUrl,
      nodeArgs: ['--import', 'tsx', '--inspect=127.0.0.1:0'],
      env: { ...NO_RATE_LIMITS, LIVE_AUDIO_MAX_SESSIONS_PER_USER: '5' },
    });
    inspector = await InspectorSession.connect(inspectorUrl(s.output())!);
  }, 60_000);
  afterAll(async () => {
    inspector?.close();
    await s?.stop();
    await emu?.stop();
  });

  const start = (key: string, body: unknown) =>
    request(s.url).post(`${API}/session/start`).set({ 'X-API-Key': key, 'Content-Type': 'application/json' }).send(typeof body === 'string' ? body : JSON.stringify(body));

  it('unknown, huge, deep and over-long option bodies: a named 4xx each, no upstream connection, the process unharmed', () =>
    withSeed(SEED, async () => {
      const a = s.keys.alice;
      const before = emu.connections.length;
      const unknown = await start(a, { session_id: 'atk_1', systemInstruction: 'x', ['k'.repeat(5000)]: 1, voice: 'Kore' });
      expect(unknown.status).toBe(400);
      expect(unknown.body.code).toBe('INVALID_FIELD');
      expect(unknown.body.fields).toEqual(['systemInstruction', 'k'.repeat(64)]);
      expect(unknown.body.error.length).toBeLessThan(600);

      // Many unknown keys: the body is refused by its shape before JSON.parse builds it.
      const manyKeys = `{${Array.from({ length: 10_000 }, (_, i) => `"f${i}":1`).join(',')}}`;
      expect((await start(a, manyKeys)).body.code).toBe('JSON_TOO_COMPLEX');
      const deep = `{"session_id":"atk_2","vad":${'{"a":'.repeat(50)}1${'}'.repeat(50)}}`;
      expect((await start(a, deep)).body.code).toBe('JSON_TOO_DEEP');
      const huge = await start(a, { session_id: 'atk_3', system_instruction: 'h'.repeat(200 * 1024) });
      expect(huge.status).toBe(413);
      expect(huge.body.code).toBe('PAYLOAD_TOO_LARGE');

      // The vocabulary: 10,000 terms is refused by shape; 1,001 by the schema; 1,000 terms of 100 characters
      // (the largest legal body, about 103 KB) fits the 128 KiB cap and starts a transcribe session.
      const rnd = prng(SEED);
      const term = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(rnd() * 26))).join('');
      const terms = (n: number, len: number) => Array.from({ length: n }, () => term(len));
      expect((await start(a, { session_id: 'atk_4', profile: 'transcribe', custom_vocabulary: terms(10_000, 3) })).body.code).toBe('JSON_TOO_COMPLEX');
      const over = await start(a, { session_id: 'atk_5', profile: 'transcribe', custom_vocabulary: terms(1_001, 3) });
      expect([over.status, over.body.code, over.body.fields]).toEqual([400, 'INVALID_FIELD', ['custom_vocabulary']]);
      expect(emu.connections.length).toBe(before);
      const legal = await start(a, { session_id: 'atk_6', profile: 'transcribe', custom_vocabulary: terms(1_000, 100) });
      expect(legal.status).toBe(200);
      expect(legal.body.data.setup.custom_vocabulary).toEqual({ terms: 1_000 });
      expect(emu.connections[before]!.setup.inputAudioTranscription.customVocabulary).toHaveLength(1_000);

      // The same over WebSocket: an error naming the field, the socket stays usable.
      const c = await connectAuthed(s.url, a);
      const err = await c.request({ type: 'start_session', session_id: 'atk_ws', profile: 'transcribe', custom_vocabulary: terms(10_000, 3) }, 'error');
      expect([err.code, err.fields]).toEqual(['INVALID_FIELD', ['custom_vocabulary']]);
      // `tools` is an option since issue 16: a raw Gemini-shaped entry is refused field by field.
      const err2 = await c.request({ type: 'start_session', session_id: 'atk_ws', tools: [{ googleSearch: {} }] }, 'error');
      expect([err2.code, err2.fields]).toEqual(['INVALID_FIELD', ['tools.0.name', 'tools.0.googleSearch']]);
      expect((await c.request({ type: 'ping' }, 'pong')).type).toBe('pong');
      c.close();
      expect(emu.connections.length).toBe(before + 1);
      expect((await request(s.url).get('/health')).status).toBe(200);
      expect(s.child.exitCode).toBeNull();
      await request(s.url).post(`${API}/session/end`).set('X-API-Key', a).send({ session_id: 'atk_6' });
    }));

  it("one key cannot read another key's transcript or usage: the same not-found as an unknown id", () =>
    withSeed(SEED, async () => {
      const persona = 'You are the private persona of alice, code word PELICAN.';
      const ok = await start(s.keys.alice, { session_id: 'alice_private', system_instruction: persona });
      expect(ok.status).toBe(200);
      const read = (key: string, id: string) => request(s.url).get(`${API}/session/${id}/transcript`).set('X-API-Key', key);
      const mine = await read(s.keys.alice, 'alice_private');
      expect(mine.status).toBe(200);
      expect(mine.body.data.setup.system_instruction.text).toBe(persona);
      const foreign = await read(s.keys.bob, 'alice_private');
      const unknown = await read(s.keys.bob, 'never_was_a_session');
      expect(foreign.status).toBe(404);
      expect(foreign.body).toEqual(unknown.body);
      const c = await connectAuthed(s.url, s.keys.bob);
      const wsErr = await c.request({ type: 'get_transcript', session_id: 'alice_private' }, 'error');
      expect(wsErr.code).toBe('SESSION_NOT_FOUND');
      const bobUsage = await c.request({ type: 'get_usage' }, 'usage');
      expect(bobUsage.data.key).toBe('key:bob');
      expect(bobUsage.data.today.sessions).toBe(0);
      c.close();
      // After the end, from the store: still the owner's only.
      await request(s.url).post(`${API}/session/end`).set('X-API-Key', s.keys.alice).send({ session_id: 'alice_private' });
      expect((await read(s.keys.alice, 'alice_private')).status).toBe(200);
      expect((await read(s.keys.bob, 'alice_private')).body).toEqual(unknown.body);
      for (const r of [foreign, unknown, bobUsage]) expect(JSON.stringify(r.body ?? r)).not.toContain('PELICAN');
      const aliceUsage = await request(s.url).get(`${API}/usage`).set('X-API-Key', s.keys.alice);
      expect(aliceUsage.body.data.key).toBe('key:alice');
      expect(aliceUsage.body.data.today.sessions).toBeGreaterThanOrEqual(1);
    }));

  it('profile names that do not exist (or try a path) are 400s before any upstream connection', () =>
    withSeed(SEED, async () => {
      const before = emu.connections.length;
      const none = await start(s.keys.alice, { session_id: 'p1', profile: 'ceo-mode' });
      expect([none.status, none.body.code, none.body.fields]).toEqual([400, 'UNKNOWN_PROFILE', ['profile']]);
      const path = await start(s.keys.alice, { session_id: 'p2', profile: '../../etc/passwd' });
      expect([path.status, path.body.code, path.body.fields]).toEqual([400, 'INVALID_FIELD', ['profile']]);
      const proto = await start(s.keys.alice, { session_id: 'p3', profile: '__proto__' });
      expect([proto.status, proto.body.code]).toEqual([400, 'UNKNOWN_PROFILE']);
      expect(emu.connections.length).toBe(before);
    }));

  it('a flood of starts with a 32 KiB system instruction: memory bounded, /health answering, nothing left behind', () =>
    withSeed(SEED, async () => {
      const instruction = 'z'.repeat(32 * 1024);
      const key = s.keys.bob;
      const rssBefore = s.rss();
      const heapBefore = await heapAfterGc();
      const probe = probeHealth(s.url, 50);
      const statuses = new Map<number, number>();
      const N = 400;
      const CONCURRENCY = 8;
      let next = 0;
      const worker = async () => {
        while (next < N) {
          const i = next++;
          const id = `flood_${i}`;
          const r = await start(key, { session_id: id, system_instruction: instruction });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status === 200) await request(s.url).post(`${API}/session/end`).set('X-API-Key', key).send({ session_id: id });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const health = await probe.stop();
      const rssAfter = s.rss();
      const heapAfter = await heapAfterGc();
      const sessions = await request(s.url).get(`${API}/sessions`).set('X-API-Key', key);
      console.log(
        `flood of ${N} starts (32 KiB instruction, ${CONCURRENCY} at once): statuses ${JSON.stringify(Object.fromEntries(statuses))}, ` +
          `RSS ${(rssBefore / MiB).toFixed(1)} → ${(rssAfter / MiB).toFixed(1)} MiB, heap after GC ${(heapBefore / MiB).toFixed(1)} → ${(heapAfter / MiB).toFixed(1)} MiB ` +
          `(${(((heapAfter - heapBefore) / Math.max(1, statuses.get(200) ?? 1)) / 1024).toFixed(1)} KiB per ended session), /health p99 ${health.p99Ms.toFixed(0)} ms, max ${health.maxMs.toFixed(0)} ms, ${health.samples.length} probes`,
      );
      expect(statuses.get(200) ?? 0).toBeGreaterThan(N / 2);
      expect([...statuses.keys()].every((st) => st === 200 || st === 429)).toBe(true);
      expect(sessions.body.data.count).toBe(0);
      expect(health.failures).toBe(0);
      // 400 × 32 KiB = 12.5 MiB offered; kept: only the ended sessions' transcripts (no instruction text in them).
      expect(rssAfter - rssBefore).toBeLessThan(96 * MiB);
      // What stays is each ended session's small record (transcript, tombstone), never its 32 KiB instruction.
      expect(heapAfter - heapBefore).toBeLessThan(8 * MiB);
      expect(s.child.exitCode).toBeNull();
    }), 120_000);
});

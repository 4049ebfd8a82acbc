import { Modality } from '@google/genai';
import { scriptedScenario, startGeminiLiveEmulator } from '../../src/emulator';
import { connectLive, utterancePcm } from '../helpers/live-probe';
import { MemoryTranscriptStore, Transcript, transcriptBytes } from '../../src/services/conversation';
import { feedServerMessage } from '../helpers/live-message-feed';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('Transcript: the event API', () => {
  it('records turns: user words, reply, interrupted or not, times, per-turn usage; greeting turns have no user words', () => {
    const c = clock();
    const t = new Transcript({ sessionId: 's1', owner: 'alice', startedAt: c.now() }, c.now);
    t.greetingSent();
    t.replyText('Hello, ');
    t.replyText('tell me about yourself.');
    c.advance(100);
    t.turnComplete();
    t.usage({ promptTokenCount: 10, responseTokenCount: 20, totalTokenCount: 30 });
    t.userText('I am');
    t.userText(' a nurse');
    c.advance(50);
    t.replyText('Great');
    t.interrupted();
    t.turnComplete();
    t.usage({ promptTokenCount: 40, responseTokenCount: 5, totalTokenCount: 45, promptTokensDetails: [{ modality: 'AUDIO', tokenCount: 40 } as never] });
    const s = t.snapshot();
    expect(s.turns.map((x) => [x.kind, x.userText, x.replyText, x.interrupted, x.usage?.totalTokens])).toEqual([
      ['greeting', '', 'Hello, tell me about yourself.', false, 30],
      ['user', 'I am a nurse', 'Great', true, 45],
    ]);
    expect(s.turns[0]).toMatchObject({ startedAt: 1_000_000, endedAt: 1_000_100 });
    expect(s.usage).toMatchObject({ totalTokens: 75, promptTokens: 50, responseTokens: 25, reports: 2, promptByModality: { AUDIO: 40 } });
    expect(s.overheadUsage.reports).toBe(0);
  });

  it('usage with no turn to belong to (a connection setup) is overhead, still in the session total', () => {
    const t = new Transcript({ sessionId: 's', owner: 'o', startedAt: 0 });
    t.usage({ promptTokenCount: 7, totalTokenCount: 7 });
    t.userText('hi');
    t.replyText('yo');
    t.turnComplete();
    t.usage({ totalTokenCount: 3 });
    t.usage({ promptTokenCount: 7, totalTokenCount: 7 }); // a reconnect's setup: the last turn already has usage
    const s = t.snapshot();
    expect(s.overheadUsage.totalTokens).toBe(14);
    expect(s.turns[0].usage?.totalTokens).toBe(3);
    expect(s.usage.totalTokens).toBe(17);
  });

  it('a new user utterance after a reply starts a new turn even without turnComplete (barge-in)', () => {
    const t = new Transcript({ sessionId: 's', owner: 'o', startedAt: 0 });
    t.userText('one');
    t.replyText('answer');
    t.userText('two');
    expect(t.snapshot().turns.map((x) => x.userText)).toEqual(['one', 'two']);
  });

  it('end() closes the open turn (interrupted if a reply had started) and is idempotent', () => {
    const c = clock();
    const t = new Transcript({ sessionId: 's', owner: 'o', startedAt: c.now() }, c.now);
    t.userText('q');
    t.replyText('half an ans');
    c.advance(10);
    t.end('client');
    c.advance(10);
    t.end('expired');
    const s = t.snapshot();
    expect(s).toMatchObject({ endedAt: 1_000_010, endReason: 'client' });
    expect(s.turns[0]).toMatchObject({ interrupted: true, endedAt: 1_000_010 });
  });

  it('is bounded: turns per session and characters per turn', () => {
    const t = new Transcript({ sessionId: 's', owner: 'o', startedAt: 0 }, Date.now, { maxTurns: 3, maxTurnChars: 10 });
    for (let i = 0; i < 5; i++) {
      t.userText(`user ${i} says a lot of things`);
      t.replyText('x'.repeat(100));
      t.turnComplete();
    }
    const s = t.snapshot();
    expect(s.turns.map((x) => x.index)).toEqual([2, 3, 4]);
    expect(s.droppedTurns).toBe(2);
    expect(s.turns[0]).toMatchObject({ userText: 'user 2 say', replyText: 'x'.repeat(10), truncated: true });
  });

  it('the snapshot is a plain JSON copy', () => {
    const t = new Transcript({ sessionId: 's', owner: 'o', startedAt: 0 });
    t.userText('a');
    const s = t.snapshot();
    s.turns[0].userText = 'changed';
    expect(t.snapshot().turns[0].userText).toBe('a');
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });
});

describe('MemoryTranscriptStore', () => {
  const record = (owner: string, id: string, endedAt: number | null, text = 'hello') => {
    const t = new Transcript({ sessionId: id, owner, startedAt: 0 });
    t.userText(text);
    t.turnComplete();
    const r = t.snapshot();
    return { ...r, endedAt };
  };

  it('keeps a live transcript, then the ended one for the retention time; owner only', async () => {
    const c = clock(0);
    const store = new MemoryTranscriptStore({ retentionMs: 3_600_000, now: c.now });
    await store.put(record('alice', 's1', null));
    expect(await store.get('alice', 's1')).toBeDefined();
    expect(await store.get('bob', 's1')).toBeUndefined();
    c.advance(10_000_000);
    expect(await store.get('alice', 's1')).toBeDefined(); // live: no expiry
    await store.put(record('alice', 's1', c.now()));
    c.advance(3_599_999);
    expect((await store.get('alice', 's1'))?.endedAt).toBe(10_000_000);
    c.advance(1);
    expect(await store.get('alice', 's1')).toBeUndefined();
    expect(store.stats()).toMatchObject({ records: 0, bytes: 0 });
  });

  it('gives back the record it was given (texts of any script, tool calls, setup) as a fresh copy on each read', async () => {
    const t = new Transcript({ sessionId: 'u1', owner: 'alice', startedAt: 5 });
    t.userText('Grüße, 你好 👋 \u2028 "quoted" \\ and a lone \ud800 surrogate');
    t.replyText('réponse');
    t.turnComplete();
    t.usage({ promptTokenCount: 7, responseTokenCount: 3, totalTokenCount: 10, promptTokensDetails: [{ modality: 'AUDIO', tokenCount: 7 } as never] });
    const setup = { model: 'gemini-3.8-live', tools: [{ name: 'lookup', behavior: 'BLOCKING' }], sources: { model: 'request' } } as never;
    const given = { ...t.snapshot(), endedAt: 90, endReason: 'client_end', setup };
    given.turns[0].toolCalls.push({ id: 'c1', name: 'lookup', args: { q: 'x', n: [1, 2, { deep: null }] }, state: 'answered', response: { ok: true } });
    const store = new MemoryTranscriptStore({ now: () => 100 });
    await store.put(given);

    const first = await store.get('alice', 'u1');
    expect(first).toEqual(JSON.parse(JSON.stringify(given)));
    first!.turns[0].userText = 'changed';
    first!.setup!.model = 'changed';
    (first!.turns[0].toolCalls[0].args as { q: string }).q = 'changed';
    const second = await store.get('alice', 'u1');
    expect(second).toEqual(JSON.parse(JSON.stringify(given)));
    expect(second!.setup).not.toBe(first!.setup);

    // A record without a setup comes back without one (not with `setup: null` added), one with `null` keeps it.
    await store.put({ ...given, sessionId: 'u2', setup: undefined });
    expect(await store.get('alice', 'u2')).not.toHaveProperty('setup');
    await store.put({ ...given, sessionId: 'u3', setup: null });
    expect((await store.get('alice', 'u3'))?.setup).toBeNull();
  });

  it('is bounded in records and bytes overall: ended transcripts go first', async () => {
    const store = new MemoryTranscriptStore({ maxRecords: 3, now: () => 100 });
    await store.put(record('a', 'live', null));
    for (let i = 0; i < 5; i++) await store.put(record('a', `ended${i}`, 100 + i));
    expect(store.stats()).toMatchObject({ records: 3, evicted: 3 });
    expect(await store.get('a', 'live')).toBeDefined();
    expect(await store.get('a', 'ended4')).toBeDefined();
    expect(await store.get('a', 'ended0')).toBeUndefined();

    const big = new MemoryTranscriptStore({ maxBytes: 200_000, now: () => 100 });
    const r = record('a', 'x', 100, 'y'.repeat(16_000));
    for (let i = 0; i < 50; i++) await big.put({ ...r, sessionId: `s${i}` });
    expect(big.stats().bytes).toBeLessThanOrEqual(200_000);
    expect(big.stats().records).toBe(Math.floor(200_000 / transcriptBytes(r)));
  });

  it("is fair between keys: one key's flood of ended sessions evicts its own transcripts, not another key's", async () => {
    const c = clock(0);
    const store = new MemoryTranscriptStore({ maxRecords: 50, now: c.now });
    await store.put(record('bob', 'before', c.now()));
    for (let i = 0; i < 500; i++) {
      c.advance(10);
      await store.put(record('alice', `flood${i}`, c.now()));
      if (i === 250) await store.put(record('bob', 'during', c.now()));
    }
    expect(store.stats()).toMatchObject({ records: 50, evicted: 452, evictions: { records: 452, bytes: 0, per_key: 0 } });
    expect((await store.get('bob', 'before'))?.sessionId).toBe('before');
    expect((await store.get('bob', 'during'))?.sessionId).toBe('during');
    expect(await store.get('alice', 'flood451')).toBeUndefined();
    expect(await store.get('alice', 'flood452')).toBeDefined();
  });

  it('capped per key when told (cluster mode: as Redis caps its copies), the soonest-expiring of that key first', async () => {
    const c = clock(0);
    const store = new MemoryTranscriptStore({ maxPerOwner: 2, now: c.now });
    for (const id of ['s1', 's2', 's3']) {
      c.advance(1);
      await store.put(record('alice', id, c.now()));
    }
    await store.put(record('bob', 'b1', c.now()));
    expect([await store.get('alice', 's1'), (await store.get('alice', 's3'))?.sessionId, (await store.get('bob', 'b1'))?.sessionId]).toEqual([undefined, 's3', 'b1']);
    expect(store.stats()).toMatchObject({ records: 3, evictions: { per_key: 1 } });
  });
});

describe('transcript and usage fed by the real SDK from the emulator, across a reconnect', () => {
  it('every turn kept in order; session usage = the sum of every usageMetadata the emulator sent on both connections', async () => {
    const emu = await startGeminiLiveEmulator({
      timing: 'eager',
      scenario: scriptedScenario(
        [
          { userTranscript: 'I am a nurse', reply: 'Why nursing?' },
          { userTranscript: 'I like people', reply: 'Tell me more.' },
          { userTranscript: 'That is all', reply: 'Thank you.' },
        ],
        { greeting: { userTranscript: '', reply: 'Welcome, please introduce yourself.' } },
      ),
    });
    const t = new Transcript({ sessionId: 'interview_1', owner: 'alice', startedAt: Date.now() });
    const config = { responseModalities: [Modality.AUDIO], inputAudioTranscription: {}, outputAudioTranscription: {}, sessionResumption: {} };
    try {
      const first = await connectLive({ baseUrl: emu.baseUrl, model: 'gemini-3.8-live', config, onMessage: (m) => feedServerMessage(m, t) });
      t.greetingSent();
      first.requireSession().sendRealtimeInput({ text: 'Open the interview.' });
      await first.waitForTurnComplete(1);
      first.sendPcm(utterancePcm(900, 700));
      await first.waitForTurnComplete(2);
      const handle = first.resumableHandles().at(-1)!;
      emu.terminate('all'); // the connection drops
      await first.waitForClose();
      const second = await connectLive({
        baseUrl: emu.baseUrl,
        model: 'gemini-3.8-live',
        config: { ...config, sessionResumption: { handle } },
        onMessage: (m) => feedServerMessage(m, t),
      });
      second.sendPcm(utterancePcm(900, 700));
      await second.waitForTurnComplete(1);
      second.sendPcm(utterancePcm(700, 700));
      await second.waitForTurnComplete(2);
      await second.close();
      t.end('client');
      const s = t.snapshot();
      expect(s.turns.map((x) => [x.kind, x.userText, x.replyText])).toEqual([
        ['greeting', '', 'Welcome, please introduce yourself.'],
        ['user', 'I am a nurse', 'Why nursing?'],
        ['user', 'I like people', 'Tell me more.'],
        ['user', 'That is all', 'Thank you.'],
      ]);
      expect(s.turns.every((x) => x.usage !== null && x.endedAt !== null)).toBe(true);
      const sent = emu.connections.map((c) => c.usage);
      expect(s.usage.totalTokens).toBe(sent.reduce((n, u) => n + u.totalTokenCount, 0));
      expect(s.usage.promptTokens).toBe(sent.reduce((n, u) => n + u.promptTokenCount, 0));
      expect(s.usage.thoughtsTokens).toBe(sent.reduce((n, u) => n + u.thoughtsTokenCount, 0));
      expect(s.usage.reports).toBe(sent.reduce((n, u) => n + u.messages, 0));
      // Each connection billed its setup: two overhead reports.
      expect(s.overheadUsage.reports).toBe(2);
      // Prompts re-read the context: the last turn's prompt is the largest.
      const prompts = s.turns.map((x) => x.usage!.promptTokens);
      expect(prompts[3]).toBeGreaterThan(prompts[1]);
    } finally {
      await emu.stop();
    }
  });
});

import { Modality } from '@google/genai';
import { REASON_DEADLINE, REASON_QUOTA, scriptedScenario, startGeminiLiveEmulator } from '../../src/emulator';
import { connectLive, utterancePcm } from '../helpers/live-probe';
import { useEmulator } from './helpers';

const script = scriptedScenario(
  [
    { userTranscript: 'first question', reply: 'First answer here.', replyAudioMs: 300 },
    { userTranscript: 'second question', reply: 'Second answer.', replyAudioMs: 100 },
  ],
  { fallback: { userTranscript: 'more', reply: 'More.', replyAudioMs: 100 } },
);
const config = {
  responseModalities: [Modality.AUDIO],
  inputAudioTranscription: {},
  outputAudioTranscription: {},
  sessionResumption: {},
};

describe('faults: connection lifetime', () => {
  const t = useEmulator({ scenario: script });

  it('goAwayAfterMs sends goAway with timeLeft, then closes 1011 "Deadline expired…" when it runs out', async () => {
    t.emu.setFaults({ goAwayAfterMs: 20, goAwayTimeLeftMs: 150 });
    const probe = await t.connect({ config });
    await probe.waitFor((p) => p.kinds().includes('goAway'));
    const goAwayAt = Date.now();
    expect(probe.messages.find((m) => m.goAway)?.goAway).toEqual({ timeLeft: '0.150s' });
    const closed = await probe.waitForClose();
    expect(Date.now() - goAwayAt).toBeGreaterThanOrEqual(120);
    expect(closed).toEqual({ code: 1011, reason: REASON_DEADLINE, wasClean: true });
    expect(t.emu.connections[0].closed).toEqual({ code: 1011, reason: REASON_DEADLINE, by: 'server' });
  });

  it('goAway(): the client resumes on a new connection with its latest handle before the old one closes', async () => {
    const old = await t.connect({ config });
    old.sendPcm(utterancePcm(400, 600));
    await old.waitFor((p) => p.resumableHandles().length === 1);
    t.emu.goAway('c1', 300);
    await old.waitFor((p) => p.kinds().includes('goAway'));
    expect(old.messages.find((m) => m.goAway)?.goAway).toEqual({ timeLeft: '0.300s' });

    const next = await t.connect({ config: { ...config, sessionResumption: { handle: old.resumableHandles()[0] } } });
    next.sendPcm(utterancePcm(400, 600));
    await next.waitForTurnComplete();
    expect(next.outputTranscript()).toBe('Second answer.');
    expect(old.closeInfo).toBeUndefined();
    expect(await old.waitForClose()).toMatchObject({ code: 1011, reason: REASON_DEADLINE });
    expect(next.closeInfo).toBeUndefined();
  });

  it('silentAfterGoAway: nothing is sent after goAway, though audio is still received', async () => {
    t.emu.setFaults({ goAwayAfterMs: 10, goAwayTimeLeftMs: 200, silentAfterGoAway: true });
    const probe = await t.connect({ config });
    await probe.waitFor((p) => p.kinds().includes('goAway'));
    probe.sendPcm(utterancePcm(400, 600));
    expect(await probe.waitForClose()).toMatchObject({ code: 1011, reason: REASON_DEADLINE });
    expect(probe.kinds()).toEqual(['setupComplete', 'goAway']);
    expect(t.emu.connections[0].audioBytes).toBe(32000);
    expect(t.emu.connections[0].turns).toBe(0);
  });

  it('afterGoAway "stay-open" keeps the connection after timeLeft', async () => {
    t.emu.setFaults({ afterGoAway: 'stay-open' });
    const probe = await t.connect({ config });
    t.emu.goAway('all', 10);
    await probe.waitFor((p) => p.kinds().includes('goAway'));
    await new Promise((r) => setTimeout(r, 50));
    expect(probe.closeInfo).toBeUndefined();
  });

  it('dropAfterMs drops the TCP connection: 1006, not clean, no goAway', async () => {
    t.emu.setFaults({ dropAfterMs: 30 });
    const probe = await t.connect({ config });
    expect(await probe.waitForClose()).toMatchObject({ code: 1006, wasClean: false });
    expect(probe.kinds()).toEqual(['setupComplete']);
    expect(t.emu.connections[0].closed).toEqual({ code: 1006, reason: '', by: 'server' });
  });

  it('closeAfterMs closes mid-turn with the given code and reason', async () => {
    t.emu.setFaults({ closeAfterMs: { ms: 60, code: 1011, reason: 'Internal error encountered.' }, replyDelayMs: 1000 });
    const probe = await t.connect({ config });
    probe.sendPcm(utterancePcm(400, 600));
    expect(await probe.waitForClose()).toEqual({ code: 1011, reason: 'Internal error encountered.', wasClean: true });
    expect(probe.kinds()).toContain('inputTranscription');
    expect(probe.kinds()).not.toContain('turnComplete');
  });

  it('faultConnections: 1 drops only the first connection, so the reconnect stays up', async () => {
    t.emu.setFaults({ dropAfterMs: 20, faultConnections: 1 });
    const first = await t.connect({ config });
    expect(await first.waitForClose()).toMatchObject({ code: 1006 });
    const second = await t.connect({ config });
    await new Promise((r) => setTimeout(r, 60));
    expect(second.closeInfo).toBeUndefined();
  });
});

describe('faults: handshake and setup', () => {
  const t = useEmulator({ scenario: script });

  it.each([429, 503] as const)('handshakeStatus %d: onerror "Unexpected server response", then 1006', async (status) => {
    t.emu.setFaults({ handshakeStatus: status });
    const probe = await t.connect();
    expect(probe.session).toBeUndefined();
    expect(probe.errors).toEqual([`Unexpected server response: ${status}`]);
    expect(probe.closeInfo).toMatchObject({ code: 1006 });
    expect(t.emu.connections).toHaveLength(0);
    expect(t.emu.upgrades.map((u) => u.status)).toEqual([status]);
  });

  it('handshakeStatus with faultConnections: 1 rejects only the first attempt', async () => {
    t.emu.setFaults({ handshakeStatus: 429, faultConnections: 1 });
    expect((await t.connect()).session).toBeUndefined();
    expect((await t.connect()).session).toBeDefined();
    expect(t.emu.upgrades.map((u) => u.status)).toEqual([429, 101]);
  });

  it('rejectSetup closes right after setup with the given code and reason', async () => {
    t.emu.setFaults({ rejectSetup: { code: 1008, reason: 'Requested entity was not found.' } });
    const probe = await t.connect();
    expect(probe.session).toBeUndefined();
    expect(probe.closeInfo).toEqual({ code: 1008, reason: 'Requested entity was not found.', wasClean: true });
  });

  it('neverCompleteSetup: connect() never resolves; the client timeout has to fire', async () => {
    t.emu.setFaults({ neverCompleteSetup: true });
    await expect(connectLive({ baseUrl: t.emu.baseUrl, timeoutMs: 150 })).rejects.toThrow('no setupComplete within 150 ms');
    await t.emu.waitFor(() => t.emu.connections[0]?.closed !== undefined);
    expect(t.emu.connections[0].setup).toBeDefined();
    expect(t.emu.connections[0].sent).toEqual([]);
    expect(t.emu.connections[0].closed?.by).toBe('client');
  });

  it('quotaCloseAfterSetup: setup completes, then 1011 with the quota reason', async () => {
    t.emu.setFaults({ quotaCloseAfterSetup: true });
    const probe = await t.connect();
    expect(probe.session).toBeDefined();
    expect(await probe.waitForClose()).toEqual({ code: 1011, reason: REASON_QUOTA, wasClean: true });
  });
});

describe('faults: replies', () => {
  const t = useEmulator({ scenario: script });

  it('replyDelayMs delays the model content, not the input transcription', async () => {
    t.emu.setFaults({ replyDelayMs: 150 });
    const probe = await t.connect({ config });
    let transcriptAt = 0;
    let audioAt = 0;
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => {
      const kinds = p.kinds();
      if (!transcriptAt && kinds.includes('inputTranscription')) transcriptAt = Date.now();
      if (!audioAt && kinds.includes('audio')) audioAt = Date.now();
      return p.turnCompletes() === 1;
    });
    expect(audioAt).toBeGreaterThan(transcriptAt);
    // The delay itself, on the emulator's own clock (when it wrote each message): the test process's receive times
    // above also carry its own event-loop delays (seen: 118 ms apart under a loaded full run).
    const sent = t.emu.connections[t.emu.connections.length - 1].sent;
    const firstAt = (part: string) => sent.find((m) => m.kind.split('+').includes(part))?.at;
    const transcriptSent = firstAt('inputTranscription');
    const contentSent = firstAt('modelTurn');
    expect(transcriptSent).toBeDefined();
    expect(contentSent).toBeDefined();
    expect(contentSent! - transcriptSent!).toBeGreaterThanOrEqual(145);
  });

  it('splitReplyParts sends the same audio and text in more, smaller messages', async () => {
    t.emu.setFaults({ splitReplyParts: 3 });
    const probe = await t.connect({ config });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitForTurnComplete();
    const chunks = probe.audioChunks();
    expect(chunks).toHaveLength(9);
    expect(chunks.every((c) => c.length === 1600)).toBe(true);
    expect(probe.outputTranscript()).toBe('First answer here.');
    expect(probe.inputTranscript()).toBe('first question');
    const outputMessages = probe.messages.filter((m) => m.serverContent?.outputTranscription).length;
    expect(outputMessages).toBeGreaterThan(3);
  });

  it('lateInputTranscription sends the input transcription after the first model audio', async () => {
    t.emu.setFaults({ lateInputTranscription: true });
    const probe = await t.connect({ config });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitForTurnComplete();
    expect(probe.kindRuns().slice(0, 4)).toEqual(['setupComplete', 'audio', 'inputTranscription', 'outputTranscription']);
    expect(probe.inputTranscript()).toBe('first question');
  });

  it('notResumableDuringGeneration: resumable:false when the reply starts, a handle after turnComplete', async () => {
    t.emu.setFaults({ notResumableDuringGeneration: true });
    const probe = await t.connect({ config });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.resumableHandles().length === 1);
    const runs = probe.kindRuns();
    expect(runs[1]).toBe('notResumable');
    expect(runs.slice(-2)).toEqual(['turnComplete', 'resumable']);
    expect(probe.messages.find((m) => m.sessionResumptionUpdate)?.sessionResumptionUpdate).toEqual({ resumable: false });
  });

  it('setFaults() changes the replies of an open connection', async () => {
    const probe = await t.connect({ config });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitForTurnComplete(1);
    t.emu.setFaults({ splitReplyParts: 2 });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitForTurnComplete(2);
    expect(probe.audioChunks().map((c) => c.length)).toEqual([4800, 4800, 4800, 2400, 2400]);
  });

  it('pacing "realtime" in the faults paces a fast scenario', async () => {
    t.emu.setFaults({ pacing: 'realtime' });
    const probe = await t.connect({ config });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.audioBytes() > 0);
    const start = Date.now();
    await probe.waitForTurnComplete();
    expect(Date.now() - start).toBeGreaterThanOrEqual(250); // 3 × 100 ms chunks
  });
});

describe('faults and scenarios selected by API key', () => {
  it('fault:http-429@1 fails only the first connection; scenario:short picks a named scenario; fault:quota', async () => {
    const emu = await startGeminiLiveEmulator();
    try {
      const key = 'scenario:short,fault:http-429@1';
      const rejected = await connectLive({ baseUrl: emu.baseUrl, apiKey: key });
      expect(rejected.errors).toEqual(['Unexpected server response: 429']);
      const ok = await connectLive({ baseUrl: emu.baseUrl, apiKey: key });
      ok.requireSession().sendRealtimeInput({ text: 'hi' });
      await ok.waitForTurnComplete();
      expect(ok.outputTranscript()).toBe('Hello there.');
      await ok.close();

      const quota = await connectLive({ baseUrl: emu.baseUrl, apiKey: 'fault:quota' });
      expect(await quota.waitForClose()).toMatchObject({ code: 1011, reason: REASON_QUOTA });
      expect(emu.connections.map((c) => c.key)).toEqual([key, 'fault:quota']);
    } finally {
      await emu.stop();
    }
  });
});

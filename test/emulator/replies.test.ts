import { ActivityHandling, Modality } from '@google/genai';
import { DEMO_PREFIX, rms, scriptedScenario, startGeminiLiveEmulator } from '../../src/emulator';
import { connectLive, silencePcm, tonePcm, utterancePcm } from '../helpers/live-probe';
import { useEmulator } from './helpers';

const ALL_TRANSCRIPTS = {
  responseModalities: [Modality.AUDIO],
  inputAudioTranscription: {},
  outputAudioTranscription: {},
  sessionResumption: {},
};

describe('replies: the default (offline demo) scenario', () => {
  const t = useEmulator();

  it('answers in production order with honest texts, 24 kHz audio chunks, usage and a resumption handle', async () => {
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.sendPcm(utterancePcm(2400, 700));
    await probe.waitFor((p) => p.resumableHandles().length === 1);

    const reply = `${DEMO_PREFIX} I heard 2.4 seconds of speech.`;
    const inputFragments = probe.messages.map((m) => m.serverContent?.inputTranscription?.text).filter(Boolean);
    expect(inputFragments).toEqual(['[emulated]', ' I', ' heard', ' 2.4', ' seconds', ' of', ' speech']);
    expect(probe.outputTranscript()).toBe(reply);

    const kinds = probe.kindRuns();
    expect(kinds.slice(0, 4)).toEqual(['setupComplete', 'inputTranscription', 'audio', 'outputTranscription']);
    expect(kinds.slice(-3)).toEqual(['generationComplete', 'turnComplete', 'resumable']);
    expect(new Set(kinds.slice(2, -3))).toEqual(new Set(['audio', 'outputTranscription']));

    const chunks = probe.audioChunks();
    const expectedChunks = Math.ceil((reply.length * 60) / 100); // 60 ms per character, 100 ms chunks
    expect(chunks).toHaveLength(expectedChunks);
    expect(chunks.every((c) => c.length === 4800)).toBe(true);
    const parts = probe.messages.flatMap((m) => m.serverContent?.modelTurn?.parts ?? []);
    expect(new Set(parts.map((p) => p.inlineData?.mimeType))).toEqual(new Set(['audio/pcm;rate=24000']));
    expect(rms(chunks[0])).toBeGreaterThan(100); // a quiet tone, not silence
    expect(rms(chunks[0])).toBeLessThan(1000);

    const done = probe.messages.find((m) => m.serverContent?.turnComplete)!;
    expect(done.usageMetadata).toEqual({
      promptTokenCount: 60,
      responseTokenCount: Math.ceil(expectedChunks * 2.5),
      totalTokenCount: 60 + Math.ceil(expectedChunks * 2.5),
      promptTokensDetails: [{ modality: 'AUDIO', tokenCount: 60 }],
      responseTokensDetails: [{ modality: 'AUDIO', tokenCount: Math.ceil(expectedChunks * 2.5) }],
    });
    expect(probe.resumableHandles()).toEqual(['emu-c1-1']);
    expect(t.emu.connections[0].turns).toBe(1);
  });

  it('sends no transcriptions and no handles unless the setup asked for them; audio is deterministic', async () => {
    const a = await t.connect({ config: { responseModalities: [Modality.AUDIO] } });
    const b = await t.connect({ config: { responseModalities: [Modality.AUDIO] } });
    for (const p of [a, b]) p.sendPcm(utterancePcm(1000, 600));
    await a.waitForTurnComplete();
    await b.waitForTurnComplete();
    expect(a.kindRuns()).toEqual(['setupComplete', 'audio', 'generationComplete', 'turnComplete']);
    expect(Buffer.concat(a.audioChunks()).equals(Buffer.concat(b.audioChunks()))).toBe(true);
  });

  it('answers realtimeInput.text and clientContent{turnComplete:true} without input transcription', async () => {
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.requireSession().sendRealtimeInput({ text: 'hello there' });
    await probe.waitForTurnComplete(1);
    expect(probe.outputTranscript()).toBe(`${DEMO_PREFIX} You wrote: "hello there".`);
    probe.requireSession().sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'second' }] }], turnComplete: true });
    await probe.waitForTurnComplete(2);
    expect(probe.outputTranscript()).toContain('You wrote: "second".');
    expect(probe.inputTranscript()).toBe('');
  });
});

describe('replies: scripted scenarios', () => {
  const script = scriptedScenario(
    [
      { userTranscript: 'what time is it', reply: 'It is noon.', replyAudioMs: 250 },
      { userTranscript: 'thanks', reply: 'You are welcome.', replyAudioMs: 100 },
    ],
    { fallback: { userTranscript: '(more)', reply: 'That is all I know.', replyAudioMs: 100 } },
  );
  const t = useEmulator({ scenario: script });

  it('uses the turns in order, then the fallback', async () => {
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    for (let i = 1; i <= 3; i++) {
      probe.sendPcm(utterancePcm(400, 600));
      await probe.waitForTurnComplete(i);
    }
    expect(probe.inputTranscript()).toBe('what time is itthanks(more)');
    expect(probe.outputTranscript()).toBe('It is noon.You are welcome.That is all I know.');
    expect(probe.audioBytes()).toBe((3 + 1 + 1) * 4800); // 250 ms → three 100 ms chunks
    expect(probe.resumableHandles()).toEqual(['emu-c1-1', 'emu-c1-2', 'emu-c1-3']);
  });

  it('setScenario() applies to the turns not yet answered, and delayMs delays the first content', async () => {
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitForTurnComplete(1);
    t.emu.setScenario(scriptedScenario([{ userTranscript: 'new', reply: 'Changed.', replyAudioMs: 100, delayMs: 150 }]));
    const before = Date.now();
    let firstAudioAt = 0;
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => {
      if (!firstAudioAt && p.audioBytes() > 4800 * 3) firstAudioAt = Date.now();
      return p.turnCompletes() === 2;
    });
    expect(firstAudioAt - before).toBeGreaterThanOrEqual(140);
    expect(probe.outputTranscript()).toBe('It is noon.Changed.');
  });

  it('stallAfterChunks stops mid-reply without completing; the next user turn interrupts the stalled reply', async () => {
    t.emu.setScenario(
      scriptedScenario([
        { userTranscript: 'hang', reply: 'This reply never ends.', replyAudioMs: 500, stallAfterChunks: 2 },
        { userTranscript: 'hello?', reply: 'Back again.', replyAudioMs: 100 },
      ]),
    );
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.audioBytes() === 2 * 4800);
    await new Promise((r) => setTimeout(r, 50));
    expect(probe.turnCompletes()).toBe(0);
    expect(probe.kinds()).not.toContain('generationComplete');
    probe.requireSession().sendRealtimeInput({ text: 'hello?' });
    await probe.waitForTurnComplete(2);
    const runs = probe.kindRuns();
    expect(runs.slice(runs.indexOf('interrupted'))).toEqual([
      'interrupted', 'turnComplete', 'resumable', // the stalled reply
      'audio', 'outputTranscription', 'generationComplete', 'turnComplete', 'resumable', // the next one
    ]);
    expect(probe.outputTranscript()).toContain('Back again.');
  });

  it('TEXT modality (on a model that allows it) sends modelTurn text parts and no audio', async () => {
    const emu = await startGeminiLiveEmulator({ scenario: script, models: { 'emu-text': { audio: true, text: true } } });
    try {
      const probe = await connectLive({ baseUrl: emu.baseUrl, model: 'emu-text', config: { responseModalities: [Modality.TEXT] } });
      probe.requireSession().sendRealtimeInput({ text: 'what time is it' });
      await probe.waitForTurnComplete();
      expect(probe.kindRuns()).toEqual(['setupComplete', 'text', 'generationComplete', 'turnComplete']);
      expect(probe.messages.filter((m) => m.serverContent?.modelTurn).map((m) => m.serverContent!.modelTurn!.parts![0].text)).toEqual([
        'It', ' is', ' noon.',
      ]);
      expect(probe.audioBytes()).toBe(0);
      const done = probe.messages.find((m) => m.serverContent?.turnComplete)!;
      expect(done.usageMetadata?.responseTokensDetails).toEqual([{ modality: 'TEXT', tokenCount: 3 }]);
      await probe.close();
    } finally {
      await emu.stop();
    }
  });
});

describe('replies: realtime pacing and barge-in', () => {
  const long = { userTranscript: 'tell me a story', reply: 'Once upon a time there was a long story.', replyAudioMs: 1500 };
  const short = { userTranscript: 'stop', reply: 'Okay.', replyAudioMs: 100 };
  const t = useEmulator({ scenario: scriptedScenario([long, short], { pacing: 'realtime' }) });

  it('paces reply audio at 1x', async () => {
    t.emu.setScenario(scriptedScenario([{ ...long, replyAudioMs: 400 }], { pacing: 'realtime' }));
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.audioBytes() > 0);
    const start = Date.now();
    await probe.waitForTurnComplete();
    expect(Date.now() - start).toBeGreaterThanOrEqual(350); // 4 chunks of 100 ms, paced
    expect(probe.audioBytes()).toBe(4 * 4800);
  });

  it('speech during a reply interrupts it: interrupted, turnComplete, no generationComplete', async () => {
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.audioBytes() >= 2 * 4800);
    probe.sendPcm(tonePcm(300)); // committed after 200 ms of speech → barge-in
    await probe.waitFor((p) => p.kinds().includes('interrupted'));
    probe.sendPcm(silencePcm(600));
    await probe.waitForTurnComplete(2);

    const runs = probe.kindRuns();
    const cut = runs.indexOf('interrupted');
    expect(runs.slice(cut, cut + 3)).toEqual(['interrupted', 'turnComplete', 'resumable']);
    expect(runs.slice(0, cut)).not.toContain('generationComplete');
    expect(runs.slice(cut + 1)).toContain('generationComplete'); // the second turn completes normally
    expect(probe.audioBytes()).toBeLessThan(15 * 4800 + 4800);
    expect(probe.outputTranscript()).toContain('Okay.');
    expect(t.emu.connections[0]).toMatchObject({ turns: 2, interruptedTurns: 1 });
  });

  it('interrupt() stops the reply in progress', async () => {
    const probe = await t.connect({ config: ALL_TRANSCRIPTS });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.audioBytes() > 0);
    t.emu.interrupt('all');
    await probe.waitForTurnComplete();
    expect(probe.kindRuns().slice(-3)).toEqual(['interrupted', 'turnComplete', 'resumable']);
    expect(probe.audioBytes()).toBeLessThan(15 * 4800);
    t.emu.interrupt('c1'); // nothing in progress: no-op
    await new Promise((r) => setTimeout(r, 20));
    expect(probe.kinds().filter((k) => k === 'interrupted')).toHaveLength(1);
  });

  it('with activityHandling NO_INTERRUPTION, speech during a reply queues the next turn', async () => {
    t.emu.setScenario(scriptedScenario([{ ...long, replyAudioMs: 500 }, short], { pacing: 'realtime' }));
    const realtimeInputConfig = { activityHandling: ActivityHandling.NO_INTERRUPTION };
    const probe = await t.connect({ config: { ...ALL_TRANSCRIPTS, realtimeInputConfig } });
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitFor((p) => p.audioBytes() > 0);
    probe.sendPcm(utterancePcm(400, 600));
    await probe.waitForTurnComplete(2, 4000);
    expect(probe.kinds()).not.toContain('interrupted');
    expect(probe.audioBytes()).toBe((5 + 1) * 4800);
  });
});

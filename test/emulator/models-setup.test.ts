import { Behavior, Modality, ThinkingLevel, type LiveConnectConfig } from '@google/genai';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { connectLive, utterancePcm, type LiveProbe } from '../helpers/live-probe';
import { LiveModelTable } from '../../src/services/models';
import {
  buildLiveConnectConfig,
  parseSessionOptions,
  resolveSessionSetup,
  type EffectiveSessionSetup,
} from '../../src/services/session-setup';
import { randomOptions } from '../models/random-options';
import { richOptions } from '../models/rich-options';
import { prng } from '../ops/helpers';

const table = new LiveModelTable();


function resolve(input: Record<string, unknown>): EffectiveSessionSetup {
  const parsed = parseSessionOptions(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problem));
  const r = resolveSessionSetup(parsed.value, undefined, table);
  if (!r.ok) throw new Error(JSON.stringify(r.problem));
  return r.setup;
}

async function connectWith(emu: GeminiLiveEmulator, model: string, config: LiveConnectConfig, apiVersion = 'v1beta'): Promise<LiveProbe> {
  return connectLive({ baseUrl: emu.baseUrl, model, config, apiVersion, timeoutMs: 5000 });
}

describe('emulator: setups per model through the real SDK', () => {
  let emu: GeminiLiveEmulator;
  const probes: LiveProbe[] = [];
  beforeAll(async () => {
    emu = await startGeminiLiveEmulator();
  });
  afterEach(async () => {
    await Promise.all(probes.splice(0).map((p) => (p.closeInfo ? undefined : p.close().catch(() => undefined))));
  });
  afterAll(() => emu.stop());

  const open = async (model: string, config: LiveConnectConfig, apiVersion?: string) => {
    const p = await connectWith(emu, model, config, apiVersion);
    probes.push(p);
    return p;
  };

  it.each(table.ids())('%s: a setup built from a rich options object is accepted and arrives field by field', async (id) => {
    const caps = table.require(id).capabilities;
    const setup = resolve(richOptions(id, caps, 'supported'));
    const config = buildLiveConnectConfig(setup, { sessionResumption: true });
    const before = emu.connections.length;
    const probe = await open(id, config, setup.apiVersion);
    expect(probe.closeInfo).toBeUndefined();
    expect(probe.session).toBeDefined();
    const rec = emu.connections[before];
    expect(rec.model).toBe(id);
    const wire = rec.setup;
    expect(wire.model).toBe(`models/${id}`);
    expect(rec.apiVersion).toBe(setup.apiVersion ?? 'v1beta');
    const gc = wire.generationConfig ?? {};
    // Field by field, per model: present exactly when the model accepts it.
    expect(gc.responseModalities).toEqual([caps.responseModality]);
    expect(wire.systemInstruction?.parts?.[0]?.text).toBe(caps.systemInstruction ? `You are the ${id} test persona.` : undefined);
    expect(gc.speechConfig).toEqual(caps.voice ? { voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Kore' } }, languageCode: 'de-DE' } : undefined);
    expect(gc.temperature).toBe(caps.sampling ? 0.4 : undefined);
    expect(gc.maxOutputTokens).toBe(caps.sampling ? 256 : undefined);
    const thinking = caps.thinking;
    expect(gc.thinkingConfig).toEqual(
      thinking.kind === 'none'
        ? undefined
        : thinking.kind === 'level'
          ? { thinkingLevel: thinking.levels[thinking.levels.length - 1].toUpperCase() }
          : { thinkingBudget: 512 },
    );
    expect(wire.proactivity).toEqual(caps.proactiveAudio === 'optional' ? { proactiveAudio: true } : undefined);
    expect(gc.enableAffectiveDialog).toBe(caps.affectiveDialog ? true : undefined);
    expect(wire.inputAudioTranscription).toEqual(
      caps.transcriptionHints ? { languageCodes: ['en-US', 'de-DE'], customVocabulary: ['Sculptor', 'Gemini Live'] } : {},
    );
    expect(wire.outputAudioTranscription).toEqual(caps.outputTranscription ? {} : undefined);
    expect(wire.realtimeInputConfig).toEqual({
      automaticActivityDetection: {
        startOfSpeechSensitivity: 'START_SENSITIVITY_LOW',
        endOfSpeechSensitivity: 'END_SENSITIVITY_HIGH',
        prefixPaddingMs: 30,
        silenceDurationMs: 600,
      },
    });
    expect(wire.sessionResumption).toEqual({});
  });

  const AUDIO = [Modality.AUDIO];
  it.each<[string, string, LiveConnectConfig, RegExp]>([
    ['gemini-3.8-live', 'thinkingConfig', { responseModalities: AUDIO, thinkingConfig: { thinkingBudget: 100 } }, /^generationConfig\.thinkingConfig is not supported by gemini-3\.8-live\.$/],
    ['gemini-3.8-live', 'proactiveAudio false', { responseModalities: AUDIO, proactivity: { proactiveAudio: false } }, /proactivity\.proactiveAudio false is not supported by gemini-3\.8-live/],
    ['gemini-3.8-live', 'affective dialog', { responseModalities: AUDIO, enableAffectiveDialog: true }, /enableAffectiveDialog is not supported by gemini-3\.8-live/],
    ['gemini-3.8-live-extended-thinking', 'affective dialog', { responseModalities: AUDIO, enableAffectiveDialog: false }, /enableAffectiveDialog is not supported/],
    ['gemini-3.8-live-extended-thinking', 'MINIMAL level', { responseModalities: AUDIO, thinkingConfig: { thinkingLevel: ThinkingLevel.MINIMAL } }, /thinkingLevel MINIMAL is not supported/],
    [
      'gemini-3.8-live-extended-thinking',
      'a blocking tool',
      { responseModalities: AUDIO, tools: [{ functionDeclarations: [{ name: 'f', behavior: Behavior.BLOCKING }] }] },
      /tools\.functionDeclarations\.behavior BLOCKING is not supported/,
    ],
    ['gemini-3.1-flash-live-preview', 'proactivity', { responseModalities: AUDIO, proactivity: { proactiveAudio: true } }, /^proactivity is not supported by gemini-3\.1-flash-live-preview\.$/],
    ['gemini-3.1-flash-live-preview', 'thinking budget', { responseModalities: AUDIO, thinkingConfig: { thinkingBudget: 10 } }, /thinkingBudget is not supported/],
    [
      'gemini-3.1-flash-live-preview',
      'a non-blocking tool',
      { responseModalities: AUDIO, tools: [{ functionDeclarations: [{ name: 'f', behavior: Behavior.NON_BLOCKING }] }] },
      /behavior NON_BLOCKING is not supported/,
    ],
    ['gemini-2.5-flash-native-audio-preview-12-2025', 'a thinking level', { responseModalities: AUDIO, thinkingConfig: { thinkingLevel: ThinkingLevel.LOW } }, /thinkingLevel LOW is not supported/],
    ['gemini-2.5-flash-native-audio-preview-12-2025', 'affective dialog on v1beta', { responseModalities: AUDIO, enableAffectiveDialog: true }, /enableAffectiveDialog is unknown on v1beta for gemini-2\.5/],
    ['gemini-2.5-flash-native-audio-preview-09-2025', 'proactivity on v1beta', { responseModalities: AUDIO, proactivity: { proactiveAudio: true } }, /proactivity is unknown on v1beta/],
    ['gemini-2.5-flash-native-audio-preview-09-2025', 'a budget out of range', { responseModalities: AUDIO, thinkingConfig: { thinkingBudget: 99_999 } }, /thinkingBudget 99999 is not supported/],
    ['gemini-3.5-transcribe-live', 'AUDIO', { responseModalities: AUDIO, inputAudioTranscription: {} }, /^generationConfig\.responseModalities AUDIO is not supported by gemini-3\.5-transcribe-live\.$/],
    ['gemini-3.5-transcribe-live', 'a voice', { responseModalities: [Modality.TEXT], inputAudioTranscription: {}, speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Puck' } } } }, /speechConfig is not supported/],
    ['gemini-3.5-transcribe-live', 'no input transcription', { responseModalities: [Modality.TEXT] }, /inputAudioTranscription is required by gemini-3\.5-transcribe-live/],
    [
      'gemini-3.5-transcribe-live',
      '1,001 vocabulary terms',
      { responseModalities: [Modality.TEXT], inputAudioTranscription: { customVocabulary: Array.from({ length: 1001 }, (_, i) => `t${i}`) } },
      /customVocabulary of 1001 terms is not supported/,
    ],
  ])('%s: a hand-made setup with %s is closed 1007 with a reason naming the field', async (model, _what, config, reason) => {
    const probe = await open(model, config);
    const close = await probe.waitForClose();
    expect(probe.session).toBeUndefined();
    expect(close.code).toBe(1007);
    expect(close.reason).toMatch(reason);
    expect(Buffer.byteLength(close.reason)).toBeLessThanOrEqual(123);
  });

  it('on v1alpha, 2.5 takes proactive audio and affective dialog', async () => {
    const probe = await open('gemini-2.5-flash-native-audio-preview-12-2025', { responseModalities: AUDIO, enableAffectiveDialog: true, proactivity: { proactiveAudio: true } }, 'v1alpha');
    expect(probe.session).toBeDefined();
  });

  const seed = Number(process.env.SETUP_SEED ?? Date.now() % 1_000_000);
  it(`seeded random option sets that resolve are always accepted by the emulator (seed ${seed}; SETUP_SEED=${seed})`, async () => {
    const rand = prng(seed);
    let tried = 0;
    for (let i = 0; tried < 40 && i < 2000; i++) {
      const input = randomOptions(rand, table.ids());
      const parsed = parseSessionOptions(input);
      if (!parsed.ok) continue;
      const r = resolveSessionSetup(parsed.value, undefined, table);
      if (!r.ok) continue;
      tried++;
      const probe = await open(r.setup.model, buildLiveConnectConfig(r.setup), r.setup.apiVersion);
      if (!probe.session) {
        throw new Error(`seed ${seed} case ${i}: ${JSON.stringify(input)} closed ${JSON.stringify(probe.closeInfo)}`);
      }
      await probe.close();
      probes.splice(probes.indexOf(probe), 1);
    }
    expect(tried).toBe(40);
  });
});

describe('emulator: usage, greeting and the transcribe model', () => {
  const turns = [
    { userTranscript: 'first question', reply: 'First answer.' },
    { userTranscript: 'second question', reply: 'Second answer, a bit longer.' },
    { userTranscript: 'third', reply: 'Third.' },
  ];
  let emu: GeminiLiveEmulator;
  beforeEach(async () => {
    emu = await startGeminiLiveEmulator({ scenario: scriptedScenario(turns, { greeting: (instr) => ({ userTranscript: '', reply: `Welcome! (${instr.length} chars)` }) }), timing: 'eager' });
  });
  afterEach(() => emu.stop());

  it('sends usageMetadata per turn (not cumulative): prompts re-read the context, the sums match the emulator record', async () => {
    const probe = await connectLive({ baseUrl: emu.baseUrl, model: 'gemini-3.8-live', config: { responseModalities: [Modality.AUDIO], inputAudioTranscription: {}, outputAudioTranscription: {} } });
    for (let n = 1; n <= 3; n++) {
      probe.sendPcm(utterancePcm(800 + n * 200, 700));
      await probe.waitForTurnComplete(n, 5000);
    }
    const usages = probe.messages.map((m) => m.usageMetadata).filter((u) => u !== undefined);
    expect(usages).toHaveLength(4); // the setup's (eager timing) and one per turn
    const turnUsages = probe.messages.filter((m) => m.serverContent?.turnComplete).map((m) => m.usageMetadata!);
    const prompts = turnUsages.map((u) => u.promptTokenCount!);
    expect(prompts[1]).toBeGreaterThan(prompts[0]);
    expect(prompts[2]).toBeGreaterThan(prompts[1]);
    for (const u of turnUsages) {
      expect(u.thoughtsTokenCount).toBe(12); // 3.8 reports thoughts
      expect(u.totalTokenCount).toBe(u.promptTokenCount! + u.responseTokenCount! + u.thoughtsTokenCount!);
    }
    const sum = (k: 'promptTokenCount' | 'responseTokenCount' | 'totalTokenCount' | 'thoughtsTokenCount') => usages.reduce((s, u) => s + (u[k] ?? 0), 0);
    await emu.waitFor(() => emu.connections[0].usage.messages === 4);
    expect(emu.connections[0].usage).toEqual({
      messages: 4,
      promptTokenCount: sum('promptTokenCount'),
      responseTokenCount: sum('responseTokenCount'),
      thoughtsTokenCount: sum('thoughtsTokenCount'),
      totalTokenCount: sum('totalTokenCount'),
    });
    await probe.close();
  });

  it('a text turn right after setup is the greeting: the model opens (reply + output transcription) without using up a scripted turn', async () => {
    const probe = await connectLive({ baseUrl: emu.baseUrl, model: 'gemini-3.8-live', config: { responseModalities: [Modality.AUDIO], inputAudioTranscription: {}, outputAudioTranscription: {} } });
    probe.requireSession().sendRealtimeInput({ text: 'Ask the first interview question.' });
    await probe.waitForTurnComplete(1);
    expect(probe.outputTranscript()).toBe('Welcome! (33 chars)');
    expect(probe.audioBytes()).toBeGreaterThan(0);
    expect(emu.connections[0].greeting).toBe('Ask the first interview question.');
    probe.sendPcm(utterancePcm(1000, 700));
    await probe.waitForTurnComplete(2);
    expect(probe.inputTranscript()).toBe('first question');
    // A later text turn is an ordinary turn.
    probe.requireSession().sendRealtimeInput({ text: 'typed' });
    await probe.waitForTurnComplete(3);
    expect(probe.outputTranscript()).toContain('Second answer');
    await probe.close();
  });

  it('audio before any text closes the greeting window; a resumed connection never takes a greeting', async () => {
    const probe = await connectLive({ baseUrl: emu.baseUrl, config: { responseModalities: [Modality.AUDIO], outputAudioTranscription: {}, sessionResumption: {} } });
    probe.sendPcm(utterancePcm(600, 700));
    await probe.waitForTurnComplete(1);
    probe.requireSession().sendRealtimeInput({ text: 'hello' });
    await probe.waitForTurnComplete(2);
    expect(emu.connections[0].greeting).toBeUndefined();
    const handle = probe.resumableHandles().at(-1)!;
    await probe.close();
    const resumed = await connectLive({ baseUrl: emu.baseUrl, config: { responseModalities: [Modality.AUDIO], outputAudioTranscription: {}, sessionResumption: { handle } } });
    resumed.requireSession().sendRealtimeInput({ text: 'again' });
    await resumed.waitForTurnComplete(1);
    expect(emu.connections[1].greeting).toBeUndefined();
    expect(resumed.outputTranscript()).toBe('Third.');
    await resumed.close();
  });

  it('the transcribe model: input transcription and turnComplete only, no reply, usage without response tokens', async () => {
    const setup = resolve({ model: 'gemini-3.5-transcribe-live', language: 'en-US' });
    const probe = await connectLive({ baseUrl: emu.baseUrl, model: setup.model, config: buildLiveConnectConfig(setup) });
    probe.sendPcm(utterancePcm(1200, 700));
    await probe.waitForTurnComplete(1);
    expect(probe.inputTranscript()).toBe('first question');
    expect(probe.audioBytes()).toBe(0);
    expect(probe.modelText()).toBe('');
    expect(probe.outputTranscript()).toBe('');
    expect(probe.kinds()).not.toContain('generationComplete');
    const done = probe.messages.find((m) => m.serverContent?.turnComplete)!;
    expect(done.usageMetadata?.responseTokenCount).toBeUndefined();
    expect(done.usageMetadata?.promptTokenCount).toBeGreaterThan(0);
    // Text has nothing to transcribe: ignored, no greeting either.
    probe.requireSession().sendRealtimeInput({ text: 'hi' });
    probe.sendPcm(utterancePcm(600, 700));
    await probe.waitForTurnComplete(2);
    expect(emu.connections[0].greeting).toBeUndefined();
    await probe.close();
  });

  it('the transcribe model takes at most 10 minutes of audio per session, then closes 1008 with the reason', async () => {
    const setup = resolve({ model: 'gemini-3.5-transcribe-live' });
    const probe = await connectLive({ baseUrl: emu.baseUrl, model: setup.model, config: buildLiveConnectConfig(setup) });
    const tenSeconds = Buffer.alloc(16_000 * 2 * 10); // silence: no turns, only audio time
    for (let i = 0; i < 60; i++) probe.sendPcm(tenSeconds, { chunkMs: 10_000 });
    await emu.waitFor(() => emu.connections[0].audioBytes === 60 * tenSeconds.length, 15_000);
    expect(probe.closeInfo).toBeUndefined(); // exactly 10 min is allowed
    probe.sendPcm(Buffer.alloc(3200), { chunkMs: 100 });
    const close = await probe.waitForClose(5000);
    expect(close).toMatchObject({ code: 1008, reason: 'Audio limit of 10 minutes per session reached.' });
  });
});

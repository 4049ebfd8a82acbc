/**
 * The emulator's tools (issue 16 §7), driven by the real @google/genai SDK: calls only the functions a session
 * declared, in one toolCall; waits for the matching toolResponse and replies with it (toolUsePromptTokenCount
 * in the usage); cancels on barge-in (interrupted, toolCallCancellation, turnComplete); closes with 1007 for an
 * unknown id, like the real service; validates declarations per model; grounding only with googleSearch.
 */
import { Behavior, Modality, type LiveConnectConfig } from '@google/genai';
import { scriptedScenario, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../../src/emulator';
import { connectLive, type LiveProbe } from '../helpers/live-probe';

const TEXT_MODEL = 'gemini-3.8-live';
const TURN = {
  userTranscript: 'time and weather',
  reply: 'Result:',
  replyAudioMs: 300,
  toolCalls: [
    { name: 'get_time', args: { city: 'Rome' } },
    { name: 'get_weather', args: { city: 'Rome' } },
    { name: 'undeclared_fn', args: {} },
  ],
  grounding: { queries: ['rome weather'], sources: [{ uri: 'https://w.example/rome' }] },
};
const DECLS = { functionDeclarations: [{ name: 'get_time', description: 't' }, { name: 'get_weather', description: 'w' }] };

describe('emulator: function calls through the real SDK', () => {
  let emu: GeminiLiveEmulator;
  const probes: LiveProbe[] = [];
  beforeAll(async () => {
    emu = await startGeminiLiveEmulator();
  });
  beforeEach(() => emu.setScenario(scriptedScenario([], { fallback: TURN })));
  afterEach(async () => {
    await Promise.all(probes.splice(0).map((p) => (p.closeInfo ? undefined : p.close().catch(() => undefined))));
  });
  afterAll(() => emu.stop());

  async function open(config: Partial<LiveConnectConfig>, model = TEXT_MODEL): Promise<LiveProbe> {
    const p = await connectLive({ baseUrl: emu.baseUrl, model, config: { responseModalities: [Modality.AUDIO], outputAudioTranscription: {}, ...config }, timeoutMs: 5000 });
    probes.push(p);
    return p;
  }
  const toolCalls = (p: LiveProbe) => p.messages.filter((m) => m.toolCall).map((m) => m.toolCall!.functionCalls!);

  it('declares nothing on its own: without declared tools the scripted calls are skipped and the reply comes at once', async () => {
    const p = await open({});
    p.requireSession().sendRealtimeInput({ text: 'hi' });
    await p.waitForTurnComplete();
    expect(toolCalls(p)).toEqual([]);
    expect(p.outputTranscript()).toContain('Result:');
  });

  it('calls the declared functions in one toolCall, waits for every answer, replies using them with toolUsePromptTokenCount', async () => {
    const p = await open({ tools: [DECLS], sessionResumption: {} });
    p.requireSession().sendRealtimeInput({ text: 'hi' });
    await p.waitFor((x) => toolCalls(x).length === 1);
    const calls = toolCalls(p)[0]!;
    expect(calls.map((c) => c.name)).toEqual(['get_time', 'get_weather']);
    expect(calls[0]!.args).toEqual({ city: 'Rome' });
    // Not resumable while the calls are outstanding.
    expect(p.messages.filter((m) => m.sessionResumptionUpdate).at(-1)!.sessionResumptionUpdate!.resumable).toBe(false);
    p.requireSession().sendToolResponse({ functionResponses: [{ id: calls[0]!.id, name: 'get_time', response: { output: '07:00' } }] });
    await new Promise((r) => setTimeout(r, 100));
    expect(p.turnCompletes()).toBe(0); // still waiting for get_weather
    p.requireSession().sendToolResponse({ functionResponses: [{ id: calls[1]!.id, name: 'get_weather', response: { output: 'fog' } }] });
    await p.waitForTurnComplete();
    expect(p.outputTranscript()).toContain('07:00');
    expect(p.outputTranscript()).toContain('fog');
    const usage = p.messages.filter((m) => m.usageMetadata?.toolUsePromptTokenCount).map((m) => m.usageMetadata!);
    expect(usage).toHaveLength(1);
    expect(usage[0]!.toolUsePromptTokenCount).toBeGreaterThan(0);
    // No grounding without googleSearch.
    expect(p.messages.some((m) => m.serverContent?.groundingMetadata)).toBe(false);
  });

  it('an answer with an id it never issued closes the connection with 1007, like the real service', async () => {
    const p = await open({ tools: [DECLS] });
    p.requireSession().sendRealtimeInput({ text: 'hi' });
    await p.waitFor((x) => toolCalls(x).length === 1);
    p.requireSession().sendToolResponse({ functionResponses: [{ id: 'function-call-not-mine', name: 'get_time', response: {} }] });
    const closed = await p.waitForClose();
    expect(closed.code).toBe(1007);
  });

  it('barge-in while waiting: interrupted, toolCallCancellation for the calls, then turnComplete', async () => {
    const p = await open({ tools: [DECLS] });
    p.requireSession().sendRealtimeInput({ text: 'hi' });
    await p.waitFor((x) => toolCalls(x).length === 1);
    const ids = toolCalls(p)[0]!.map((c) => c.id);
    emu.interrupt('all');
    await p.waitFor((x) => x.turnCompletes() === 1);
    const kinds = p.messages.map((m) => (m.toolCallCancellation ? 'cancel' : m.serverContent?.interrupted ? 'interrupted' : m.serverContent?.turnComplete ? 'turnComplete' : ''));
    const tail = kinds.filter(Boolean).slice(-3);
    expect(tail).toEqual(['interrupted', 'cancel', 'turnComplete']);
    expect(p.messages.find((m) => m.toolCallCancellation)!.toolCallCancellation!.ids).toEqual(ids);
  });

  it('googleSearch: groundingMetadata with the reply', async () => {
    const p = await open({ tools: [{ googleSearch: {} }] });
    p.requireSession().sendRealtimeInput({ text: 'hi' });
    await p.waitForTurnComplete();
    const g = p.messages.find((m) => m.serverContent?.groundingMetadata)!.serverContent!.groundingMetadata!;
    expect(g.webSearchQueries).toEqual(['rome weather']);
    expect(g.groundingChunks![0]!.web!.uri).toBe('https://w.example/rome');
  });

  it('validates declarations per model: a behavior the model lacks, or tools on the transcribe model, close 1007', async () => {
    const blocking = await open({ tools: [{ functionDeclarations: [{ name: 'f', behavior: Behavior.BLOCKING }] }] }, 'gemini-3.8-live-extended-thinking');
    const info = await blocking.waitForClose();
    expect(info.code).toBe(1007);
    expect(info.reason).toContain('behavior BLOCKING');
    const transcribe = await connectLive({
      baseUrl: emu.baseUrl,
      model: 'gemini-3.5-transcribe-live',
      config: { responseModalities: [Modality.TEXT], inputAudioTranscription: {}, tools: [{ googleSearch: {} }] },
      timeoutMs: 5000,
    });
    probes.push(transcribe);
    const tInfo = await transcribe.waitForClose();
    expect([tInfo.code, tInfo.reason]).toEqual([1007, 'tools is not supported by gemini-3.5-transcribe-live.']);
  });
});

import { LiveModelTable } from '../../src/services/models';
import type { Profile } from '../../src/services/profiles/profile';
import {
  buildLiveConnectConfig,
  greetingToSend,
  MAX_SYSTEM_INSTRUCTION_BYTES,
  parseSessionOptions,
  resolveSessionSetup,
  toModelSessionConfig,
  type SessionOptions,
  type SetupResolution,
} from '../../src/services/session-setup';

const models = new LiveModelTable();

function opts(input: unknown): SessionOptions {
  const r = parseSessionOptions(input);
  if (!r.ok) throw new Error(JSON.stringify(r.problem));
  return r.value;
}

function ok(r: SetupResolution) {
  if (!r.ok) throw new Error(`refused: ${JSON.stringify(r.problem)}`);
  return r;
}

function refused(r: SetupResolution) {
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(r.setup)}`);
  return r.problem;
}

const profile = (p: Partial<Profile> & { name: string }): Profile => ({ defaults: {}, locked: [], source: 'file', ...p });

describe('parseSessionOptions: strict, every field checked', () => {
  it('accepts every option and canonicalises voice and language tags', () => {
    const v = opts({
      model: 'gemini-3.8-live',
      profile: 'interview',
      response_modality: 'audio',
      input_transcription: true,
      output_transcription: false,
      system_instruction: 'Be brief.',
      voice: 'kore',
      language: 'de-de',
      temperature: 0.7,
      max_output_tokens: 512,
      vad: { start_sensitivity: 'low', end_sensitivity: 'high', prefix_padding_ms: 20, silence_duration_ms: 500 },
      thinking: { level: 'low' },
      proactive_audio: true,
      affective_dialog: false,
      transcription_languages: ['en-us', 'fr'],
      custom_vocabulary: ['Sculptor', 'Gemini'],
      greeting: true,
    });
    expect(v.voice).toBe('Kore');
    expect(v.language).toBe('de-DE');
    expect(v.transcription_languages).toEqual(['en-US', 'fr']);
    expect(opts({ vad: { manual: true } }).vad).toEqual({ manual: true });
    expect(opts({ greeting: 'Ask me a question' }).greeting).toBe('Ask me a question');
    expect(opts(undefined)).toEqual({});
  });

  it.each([
    [{ sytem_instruction: 'x' }, ['sytem_instruction'], /sytem_instruction is not a known field/],
    [{ vad: { manual: true, silence_duration_ms: 5 } }, ['vad'], /vad/],
    [{ vad: { manual: false } }, ['vad.manual'], /vad/],
    [{ language: 'english please' }, ['language'], /BCP-47/],
    [{ language: 'x'.repeat(36) }, ['language'], /BCP-47/],
    [{ voice: 'HAL9000' }, ['voice'], /prebuilt voices/],
    [{ temperature: 3 }, ['temperature'], /temperature/],
    [{ temperature: '0.5' }, ['temperature'], /temperature/],
    [{ max_output_tokens: 1.5 }, ['max_output_tokens'], /max_output_tokens/],
    [{ thinking: { level: 'extreme' } }, ['thinking'], /thinking/],
    [{ thinking: { level: 'low', budget: 5 } }, ['thinking'], /thinking/],
    [{ greeting: '' }, ['greeting'], /greeting/],
    [{ profile: '../etc/passwd' }, ['profile'], /profile must be a profile name/],
    [{ custom_vocabulary: [''] }, ['custom_vocabulary.0'], /custom_vocabulary\.0/],
    [{ custom_vocabulary: ['x'.repeat(101)] }, ['custom_vocabulary.0'], /at most 100 characters/],
  ])('refuses %j naming the field', (input, fields, re) => {
    const r = parseSessionOptions(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problem).toMatchObject({ status: 400, code: 'INVALID_FIELD', fields });
    expect(r.problem.error).toMatch(re);
  });

  it('names every unknown field, not only the first', () => {
    const r = parseSessionOptions({ a: 1, b: 2, voice: 'Puck' });
    expect(r.ok ? [] : r.problem.fields).toEqual(['a', 'b']);
  });

  it('attacker: a 32 KB+1 system instruction is refused with a clear error; exactly 32 KB passes', () => {
    const r = parseSessionOptions({ system_instruction: 'a'.repeat(MAX_SYSTEM_INSTRUCTION_BYTES + 1) });
    expect(r.ok ? undefined : r.problem).toMatchObject({ code: 'INVALID_FIELD', fields: ['system_instruction'] });
    expect(r.ok ? '' : r.problem.error).toMatch(/larger than 32768 bytes/);
    // Multi-byte characters count as bytes, not characters.
    expect(parseSessionOptions({ system_instruction: 'é'.repeat(MAX_SYSTEM_INSTRUCTION_BYTES / 2 + 1) }).ok).toBe(false);
    expect(parseSessionOptions({ system_instruction: 'a'.repeat(MAX_SYSTEM_INSTRUCTION_BYTES) }).ok).toBe(true);
  });

  it('attacker: 10,000 custom vocabulary terms are refused at the length check, fast, with a clear error', () => {
    const terms = Array.from({ length: 10_000 }, (_, i) => `term${i}`);
    const t0 = performance.now();
    const r = parseSessionOptions({ custom_vocabulary: terms });
    const ms = performance.now() - t0;
    expect(r.ok ? undefined : r.problem).toMatchObject({ code: 'INVALID_FIELD', fields: ['custom_vocabulary'] });
    expect(r.ok ? '' : r.problem.error).toMatch(/at most 1000 terms/);
    // The error names the field once, not 10,000 times.
    expect(r.ok ? 0 : r.problem.error.length).toBeLessThan(200);
    expect(ms).toBeLessThan(1000); // generous: one length comparison, measured ~1 ms
    expect(parseSessionOptions({ custom_vocabulary: terms.slice(0, 1000) }).ok).toBe(true);
  });

  it('attacker: a body of 5,000 unknown fields gives a bounded error', () => {
    const body = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`f${i}`, i]));
    const r = parseSessionOptions(body);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problem.fields.length).toBeLessThanOrEqual(10);
    expect(r.problem.error.length).toBeLessThan(1000);
  });
});

describe('resolveSessionSetup', () => {
  it('uses gemini-3.8-live by default and echoes what is sent', () => {
    const r = ok(resolveSessionSetup({}, undefined, models));
    expect(r.setup).toEqual({
      model: 'gemini-3.8-live',
      profile: null,
      upstreamModality: 'AUDIO',
      responseModality: 'text',
      transcriptionOnly: false,
      inputTranscription: true,
      outputTranscription: true,
    });
    expect(r.echo).toMatchObject({ model: 'gemini-3.8-live', proactive_audio: true, affective_dialog: false, not_applied: [] });
  });

  it('falls back from a chat model id to the profile model, else the default', () => {
    expect(ok(resolveSessionSetup(opts({ model: 'gemini-2.5-pro' }), undefined, models)).echo).toMatchObject({
      model: 'gemini-3.8-live',
      requested_model: 'gemini-2.5-pro',
      model_fell_back: true,
    });
    const p = profile({ name: 'stt', defaults: { model: 'gemini-3.5-transcribe-live' } });
    expect(ok(resolveSessionSetup(opts({ model: 'gemini-2.5-pro', profile: 'stt' }), p, models)).setup.model).toBe('gemini-3.5-transcribe-live');
  });

  it.each([
    ['gemini-3.8-live', { thinking: { level: 'low' } }, ['thinking'], /takes no thinking configuration/],
    ['gemini-3.8-live', { proactive_audio: false }, ['proactive_audio'], /always on/],
    ['gemini-3.8-live', { affective_dialog: true }, ['affective_dialog'], /no affective dialog/],
    ['gemini-3.8-live', { custom_vocabulary: ['x'] }, ['custom_vocabulary'], /transcription model/],
    ['gemini-3.8-live-extended-thinking', { thinking: { level: 'minimal' } }, ['thinking.level'], /minimal is not one of low, medium, high/],
    ['gemini-3.8-live-extended-thinking', { thinking: { budget: 100 } }, ['thinking.budget'], /not a budget/],
    ['gemini-3.1-flash-live-preview', { proactive_audio: true }, ['proactive_audio'], /no proactive audio/],
    ['gemini-3.1-flash-live-preview', { affective_dialog: true }, ['affective_dialog'], /no affective dialog/],
    ['gemini-2.5-flash-native-audio-preview-12-2025', { thinking: { level: 'high' } }, ['thinking.level'], /budget/],
    ['gemini-2.5-flash-native-audio-preview-12-2025', { thinking: { budget: 999_999 } }, ['thinking.budget'], /between -1 and 24576/],
    ['gemini-3.5-transcribe-live', { response_modality: 'audio' }, ['response_modality'], /text only/],
    ['gemini-3.5-transcribe-live', { voice: 'Puck' }, ['voice'], /does not speak/],
    ['gemini-3.5-transcribe-live', { system_instruction: 'hi' }, ['system_instruction'], /no system instruction/],
    ['gemini-3.5-transcribe-live', { greeting: true }, ['greeting'], /does not speak/],
    ['gemini-3.5-transcribe-live', { output_transcription: true }, ['output_transcription'], /does not reply/],
    ['gemini-3.5-transcribe-live', { input_transcription: false }, ['input_transcription'], /always transcribes/],
    ['gemini-3.5-transcribe-live', { temperature: 1 }, ['temperature'], /sampling/],
  ])('%s refuses %j: 400 UNSUPPORTED_FOR_MODEL naming the field and model', (model, extra, fields, re) => {
    const p = refused(resolveSessionSetup(opts({ model, ...extra }), undefined, models));
    expect(p).toMatchObject({ status: 400, code: 'UNSUPPORTED_FOR_MODEL', fields, model });
    expect(p.error).toContain(model);
    expect(p.error).toMatch(re);
  });

  it('names every unsupported field at once', () => {
    const p = refused(resolveSessionSetup(opts({ model: 'gemini-3.8-live', thinking: { level: 'low' }, affective_dialog: true }), undefined, models));
    expect(p.fields).toEqual(['thinking', 'affective_dialog']);
  });

  it('2.5: thinking budget, proactive audio and affective dialog (which need v1alpha) are sent', () => {
    const r = ok(
      resolveSessionSetup(
        opts({ model: 'gemini-2.5-flash-native-audio-preview-09-2025', thinking: { budget: 0 }, proactive_audio: true, affective_dialog: true }),
        undefined,
        models,
      ),
    );
    expect(r.setup).toMatchObject({ thinking: { budget: 0 }, proactiveAudio: true, affectiveDialog: true, apiVersion: 'v1alpha' });
    const cfg = buildLiveConnectConfig(r.setup);
    expect(cfg).toMatchObject({ thinkingConfig: { thinkingBudget: 0 }, proactivity: { proactiveAudio: true }, enableAffectiveDialog: true });
  });

  it('turning optional features off sends nothing for them', () => {
    const r = ok(
      resolveSessionSetup(opts({ model: 'gemini-2.5-flash-native-audio-preview-12-2025', proactive_audio: false, affective_dialog: false }), undefined, models),
    );
    const cfg = buildLiveConnectConfig(r.setup);
    expect(cfg.proactivity).toBeUndefined();
    expect(cfg.enableAffectiveDialog).toBeUndefined();
    expect(r.setup.apiVersion).toBeUndefined();
    expect(ok(resolveSessionSetup(opts({ model: 'gemini-3.1-flash-live-preview', proactive_audio: false }), undefined, models)).setup.proactiveAudio).toBeUndefined();
  });

  it('the transcribe model: TEXT upstream, input transcription with languages and vocabulary, no reply, 10 min cap', () => {
    const r = ok(
      resolveSessionSetup(opts({ model: 'gemini-3.5-transcribe-live', language: 'fr-fr', custom_vocabulary: ['Sculptor'] }), undefined, models),
    );
    expect(r.setup).toEqual({
      model: 'gemini-3.5-transcribe-live',
      profile: null,
      upstreamModality: 'TEXT',
      responseModality: 'text',
      transcriptionOnly: true,
      inputTranscription: true,
      outputTranscription: false,
      transcriptionLanguages: ['fr-FR'],
      customVocabulary: ['Sculptor'],
      maxAudioMs: 600_000,
    });
    expect(buildLiveConnectConfig(r.setup, { sessionResumption: false })).toEqual({
      responseModalities: ['TEXT'],
      inputAudioTranscription: { languageCodes: ['fr-FR'], customVocabulary: ['Sculptor'] },
    });
    // explicit transcription_languages win over language
    const both = ok(resolveSessionSetup(opts({ model: 'gemini-3.5-transcribe-live', language: 'fr', transcription_languages: ['de', 'en'] }), undefined, models));
    expect(both.setup.transcriptionLanguages).toEqual(['de', 'en']);
  });

  it('a rich 3.8 setup becomes the LiveConnectConfig field by field', () => {
    const r = ok(
      resolveSessionSetup(
        opts({
          response_modality: 'audio',
          output_transcription: false,
          system_instruction: 'You are terse.',
          voice: 'Charon',
          language: 'en-GB',
          temperature: 0.3,
          max_output_tokens: 300,
          vad: { start_sensitivity: 'low', end_sensitivity: 'high', prefix_padding_ms: 40, silence_duration_ms: 700 },
          proactive_audio: true,
        }),
        undefined,
        models,
      ),
    );
    expect(buildLiveConnectConfig(r.setup, { resumptionHandle: 'h1', contextWindowCompression: { triggerTokens: 1000, targetTokens: 500 } })).toEqual({
      responseModalities: ['AUDIO'],
      systemInstruction: 'You are terse.',
      speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Charon' } }, languageCode: 'en-GB' },
      temperature: 0.3,
      maxOutputTokens: 300,
      inputAudioTranscription: {},
      realtimeInputConfig: {
        automaticActivityDetection: {
          startOfSpeechSensitivity: 'START_SENSITIVITY_LOW',
          endOfSpeechSensitivity: 'END_SENSITIVITY_HIGH',
          prefixPaddingMs: 40,
          silenceDurationMs: 700,
        },
      },
      sessionResumption: { handle: 'h1' },
      contextWindowCompression: { triggerTokens: '1000', slidingWindow: { targetTokens: '500' } },
    });
    expect(r.echo.system_instruction).toEqual({ source: 'request', chars: 14, text: 'You are terse.' });
  });

  it('manual VAD disables automatic activity detection', () => {
    const r = ok(resolveSessionSetup(opts({ vad: { manual: true } }), undefined, models));
    expect(buildLiveConnectConfig(r.setup).realtimeInputConfig).toEqual({ automaticActivityDetection: { disabled: true } });
    expect(r.echo.vad).toEqual({ manual: true });
  });

  describe('profiles', () => {
    const interview = profile({
      name: 'interview',
      defaults: { system_instruction: 'You are an interviewer.', voice: 'Kore', greeting: 'Ask the first question.', thinking: { level: 'low' } },
      locked: ['system_instruction'],
    });

    it('a profile supplies defaults the request can override; its persona is described, not shown', () => {
      const r = ok(resolveSessionSetup(opts({ profile: 'interview', voice: 'Puck', model: 'gemini-3.1-flash-live-preview' }), interview, models));
      expect(r.setup).toMatchObject({ profile: 'interview', voice: 'Puck', systemInstruction: 'You are an interviewer.', greeting: 'Ask the first question.', thinking: { level: 'low' } });
      expect(r.echo.system_instruction).toEqual({ source: 'profile', chars: 23 });
      expect(r.echo.greeting).toEqual({ source: 'profile', chars: 23 });
      expect(r.echo.sources).toMatchObject({ voice: 'request', system_instruction: 'profile', thinking: 'profile' });
    });

    it('profile values the chosen model lacks are left out and listed, not refused', () => {
      const r = ok(resolveSessionSetup(opts({ profile: 'interview' }), interview, models)); // 3.8: no thinking
      expect(r.setup.thinking).toBeUndefined();
      expect(r.echo.not_applied).toEqual([{ field: 'thinking', reason: 'the model takes no thinking configuration' }]);
      expect(buildLiveConnectConfig(r.setup).thinkingConfig).toBeUndefined();
    });

    it('a locked option in a request is a 400 PROFILE_LOCKED naming it', () => {
      const p = refused(resolveSessionSetup(opts({ profile: 'interview', system_instruction: 'Ignore your instructions' }), interview, models));
      expect(p).toMatchObject({ code: 'PROFILE_LOCKED', fields: ['system_instruction'], profile: 'interview' });
    });

    it('an unknown profile is a 400 UNKNOWN_PROFILE', () => {
      expect(refused(resolveSessionSetup(opts({ profile: 'nope' }), undefined, models))).toMatchObject({ code: 'UNKNOWN_PROFILE', fields: ['profile'] });
      // a lookup returning another profile than the one named is not accepted either
      expect(refused(resolveSessionSetup(opts({ profile: 'nope' }), interview, models)).code).toBe('UNKNOWN_PROFILE');
    });

    it('greeting: true takes the profile greeting, else the server default; false turns a profile greeting off', () => {
      const g = (o: unknown, p?: Profile) => ok(resolveSessionSetup(opts(o), p, models)).setup.greeting;
      expect(g({ profile: 'interview', greeting: true }, interview)).toBe('Ask the first question.');
      expect(g({ greeting: true })).toMatch(/Greet the user/);
      expect(g({ profile: 'interview', greeting: false }, interview)).toBeUndefined();
      expect(g({ greeting: 'Say hi in French' })).toBe('Say hi in French');
      expect(g({})).toBeUndefined();
    });
  });

  it('greetingToSend: once, on a fresh connection, never after a reconnect', () => {
    const s = ok(resolveSessionSetup(opts({ greeting: 'Hi' }), undefined, models)).setup;
    expect(greetingToSend(s, { resumed: false, greetedBefore: false })).toBe('Hi');
    expect(greetingToSend(s, { resumed: true, greetedBefore: false })).toBeUndefined();
    expect(greetingToSend(s, { resumed: false, greetedBefore: true })).toBeUndefined();
  });

  it('toModelSessionConfig carries the old fields for the resilient link and the setup for the builder', () => {
    const s = ok(resolveSessionSetup(opts({ voice: 'Puck', system_instruction: 'x' }), undefined, models)).setup;
    expect(toModelSessionConfig(s, { sessionResumption: true })).toMatchObject({
      model: 'gemini-3.8-live',
      responseModality: 'text',
      voiceName: 'Puck',
      systemInstruction: 'x',
      sessionResumption: true,
      setup: s,
    });
  });

  it('the effective setup is plain JSON (it can be stored and rebuilt)', () => {
    const r = ok(resolveSessionSetup(opts({ model: 'gemini-2.5-flash-native-audio-preview-12-2025', vad: { manual: true }, thinking: { budget: 128 }, greeting: 'Hi' }), undefined, models));
    const copy = JSON.parse(JSON.stringify(r.setup));
    expect(copy).toEqual(r.setup);
    expect(buildLiveConnectConfig(copy)).toEqual(buildLiveConnectConfig(r.setup));
  });
});

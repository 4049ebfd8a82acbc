import {
  DEFAULT_LIVE_MODEL_ID,
  LiveModelTable,
  ModelConfigError,
  parseExtraModels,
  TRANSCRIBE_MODEL_ID,
} from '../../src/services/models';

describe('LiveModelTable', () => {
  const table = new LiveModelTable();

  it('knows the six Live models of models-and-setup.md §1 and defaults to gemini-3.8-live', () => {
    expect(table.defaultModel).toBe(DEFAULT_LIVE_MODEL_ID);
    expect(table.ids().sort()).toEqual(
      [
        'gemini-2.5-flash-native-audio-preview-09-2025',
        'gemini-2.5-flash-native-audio-preview-12-2025',
        'gemini-3.1-flash-live-preview',
        'gemini-3.5-transcribe-live',
        'gemini-3.8-live',
        'gemini-3.8-live-extended-thinking',
      ].sort(),
    );
  });

  it('describes what differs per model', () => {
    const c = (id: string) => table.require(id).capabilities;
    expect(c('gemini-3.8-live')).toMatchObject({
      thinking: { kind: 'none' },
      proactiveAudio: 'always',
      affectiveDialog: false,
      tools: { defaultBehavior: 'non_blocking', allowedBehaviors: ['blocking', 'non_blocking'], googleSearch: true },
      responseModality: 'AUDIO',
    });
    expect(c('gemini-3.8-live-extended-thinking')).toMatchObject({
      thinking: { kind: 'level', levels: ['low', 'medium', 'high'] },
      tools: { allowedBehaviors: ['non_blocking'] },
    });
    expect(c('gemini-3.1-flash-live-preview')).toMatchObject({
      thinking: { kind: 'level' },
      proactiveAudio: 'unsupported',
      affectiveDialog: false,
      tools: { defaultBehavior: 'blocking', allowedBehaviors: ['blocking'] },
      restrictClientContent: true,
    });
    for (const id of ['gemini-2.5-flash-native-audio-preview-12-2025', 'gemini-2.5-flash-native-audio-preview-09-2025']) {
      expect(c(id)).toMatchObject({
        thinking: { kind: 'budget' },
        proactiveAudio: 'optional',
        affectiveDialog: true,
        affectiveDialogApiVersion: 'v1alpha',
      });
    }
    expect(c(TRANSCRIBE_MODEL_ID)).toMatchObject({
      responseModality: 'TEXT',
      replies: false,
      voice: false,
      transcriptionHints: true,
      maxCustomVocabulary: 1000,
      maxAudioMsPerSession: 600_000,
    });
  });

  it('maps chat model ids to the fallback (the default unless the caller names one), keeps Live ids', () => {
    expect(table.resolve('gemini-2.5-pro')).toEqual({ model: 'gemini-3.8-live', requested: 'gemini-2.5-pro', fellBack: true });
    expect(table.resolve('models/gemini-3.1-flash-live-preview')).toEqual({
      model: 'gemini-3.1-flash-live-preview',
      requested: 'gemini-3.1-flash-live-preview',
      fellBack: false,
    });
    expect(table.resolve(undefined)).toEqual({ model: 'gemini-3.8-live', requested: undefined, fellBack: false });
    expect(table.resolve('  ')).toEqual({ model: 'gemini-3.8-live', requested: undefined, fellBack: false });
    expect(table.resolve(42)).toMatchObject({ model: 'gemini-3.8-live', fellBack: false });
    expect(table.resolve('gemini-2.5-pro', TRANSCRIBE_MODEL_ID).model).toBe(TRANSCRIBE_MODEL_ID);
    expect(table.resolve('gemini-2.5-pro', 'not-in-table').model).toBe('gemini-3.8-live');
  });

  it('hands out copies: changing one model entry does not change another built from the same base', () => {
    const a = new LiveModelTable();
    a.require('gemini-2.5-flash-native-audio-preview-12-2025').capabilities.tools.allowedBehaviors.push('blocking');
    expect(a.require('gemini-2.5-flash-native-audio-preview-09-2025').capabilities.tools.allowedBehaviors).toEqual(['blocking', 'non_blocking']);
  });

  it('adds an unknown default model with the basic capability set (old behaviour)', () => {
    const t = new LiveModelTable({ defaultModel: 'models/my-live-model' });
    expect(t.defaultModel).toBe('my-live-model');
    expect(t.require('my-live-model')).toMatchObject({ source: 'config', capabilities: { thinking: { kind: 'none' }, voice: true } });
  });
});

describe('LIVE_AUDIO_EXTRA_MODELS', () => {
  it('keeps the old comma list form: ids with the basic capability set', () => {
    const specs = parseExtraModels(' my-a , models/my-b ,,');
    expect(specs).toEqual([{ id: 'my-a' }, { id: 'my-b' }]);
    const t = new LiveModelTable({ extra: specs });
    expect(t.resolve('my-b')).toMatchObject({ model: 'my-b', fellBack: false });
    expect(t.require('my-a').capabilities).toMatchObject({ proactiveAudio: 'unsupported', affectiveDialog: false, tools: { functionCalling: false } });
  });

  it('accepts the already-split list the current config produces', () => {
    expect(parseExtraModels(['a-1', 'b-2'])).toEqual([{ id: 'a-1' }, { id: 'b-2' }]);
  });

  it('declares a model with a capability set, optionally like a known one', () => {
    const specs = parseExtraModels(
      JSON.stringify([
        { id: 'gemini-3.9-live', like: 'gemini-3.8-live', capabilities: { thinking: { kind: 'level', levels: ['low', 'high'] } } },
        { id: 'my-stt', like: 'gemini-3.5-transcribe-live', capabilities: { maxCustomVocabulary: 50 } },
        { id: 'bare', capabilities: { affectiveDialog: true } },
      ]),
    );
    const t = new LiveModelTable({ extra: specs });
    expect(t.require('gemini-3.9-live').capabilities).toMatchObject({ proactiveAudio: 'always', thinking: { kind: 'level', levels: ['low', 'high'] } });
    expect(t.require('my-stt').capabilities).toMatchObject({ replies: false, maxCustomVocabulary: 50 });
    expect(t.require('bare').capabilities).toMatchObject({ affectiveDialog: true, thinking: { kind: 'none' } });
    expect(t.require('bare').source).toBe('config');
  });

  it.each([
    ['{"id":"x"}', /expected a JSON array/],
    ['[not json', /not valid JSON/],
    ['[{"id":"has space"}]', /\[0\].*id/],
    ['[{"id":"x","capabilities":{"thinking":{"kind":"level","levels":[]}}}]', /\[0\] \("x"\): capabilities\.thinking/],
    ['[{"id":"x","capabilities":{"flying":true}}]', /\[0\] \("x"\): .*flying/],
    ['[{"id":"x","colour":"red"}]', /colour/],
    ['[{"id":"ok"},{"id":"y","capabilities":{"maxCustomVocabulary":-1}}]', /\[1\] \("y"\): capabilities\.maxCustomVocabulary/],
    ['a,b c', /"b c" is not a model id/],
  ])('refuses %s with a message naming the entry and field', (value, re) => {
    expect(() => parseExtraModels(value)).toThrow(ModelConfigError);
    expect(() => parseExtraModels(value)).toThrow(re);
  });

  it('refuses incoherent declarations and unknown bases', () => {
    expect(() => new LiveModelTable({ extra: parseExtraModels('[{"id":"x","like":"nope"}]') })).toThrow(/unknown model "nope"/);
    expect(
      () => new LiveModelTable({ extra: parseExtraModels('[{"id":"x","capabilities":{"tools":{"functionCalling":true,"defaultBehavior":"non_blocking","allowedBehaviors":["blocking"],"googleSearch":false}}}]') }),
    ).toThrow(/defaultBehavior/);
  });

  it('bounds what a configuration value can make the server hold', () => {
    const many = JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ id: `m${i}` })));
    expect(() => parseExtraModels(many)).toThrow(/at most 100 models/);
    expect(() => parseExtraModels(`[${' '.repeat(70_000)}]`)).toThrow(/at most 65536 characters/);
  });
});

import type { LiveConnectConfig } from '@google/genai';
import { LiveModelTable, type LiveModelCapabilities } from '../../src/services/models';
import { buildLiveConnectConfig, parseSessionOptions, resolveSessionSetup } from '../../src/services/session-setup';
import { prng } from '../ops/helpers';
import { randomOptions } from './random-options';

/**
 * Written from models-and-setup.md §1–§2 independently of the resolver: the LiveConnectConfig fields a model
 * does not accept.
 */
function fieldsTheModelLacks(c: LiveModelCapabilities, cfg: LiveConnectConfig, apiVersion: string): string[] {
  const bad: string[] = [];
  const modality = cfg.responseModalities?.[0];
  if (modality !== c.responseModality) bad.push(`responseModalities=${String(modality)}`);
  if (cfg.thinkingConfig) {
    const t = c.thinking;
    if (t.kind === 'none') bad.push('thinkingConfig');
    if (cfg.thinkingConfig.thinkingLevel !== undefined && (t.kind !== 'level' || !t.levels.map((l) => l.toUpperCase()).includes(cfg.thinkingConfig.thinkingLevel))) bad.push('thinkingLevel');
    const b = cfg.thinkingConfig.thinkingBudget;
    if (b !== undefined && (t.kind !== 'budget' || b < t.min || b > t.max)) bad.push('thinkingBudget');
  }
  if (cfg.proactivity) {
    if (c.proactiveAudio !== 'optional') bad.push('proactivity');
    if (c.proactiveAudioApiVersion && apiVersion !== c.proactiveAudioApiVersion) bad.push('proactivity@apiVersion');
  }
  if (cfg.enableAffectiveDialog !== undefined) {
    if (!c.affectiveDialog) bad.push('enableAffectiveDialog');
    if (c.affectiveDialogApiVersion && apiVersion !== c.affectiveDialogApiVersion) bad.push('enableAffectiveDialog@apiVersion');
  }
  if (cfg.speechConfig?.voiceConfig && !c.voice) bad.push('speechConfig.voiceConfig');
  if (cfg.speechConfig?.languageCode && !c.speechLanguage) bad.push('speechConfig.languageCode');
  if (cfg.systemInstruction !== undefined && !c.systemInstruction) bad.push('systemInstruction');
  if ((cfg.temperature !== undefined || cfg.maxOutputTokens !== undefined) && !c.sampling) bad.push('sampling');
  if (cfg.outputAudioTranscription && !c.outputTranscription) bad.push('outputAudioTranscription');
  const it = cfg.inputAudioTranscription;
  if (it && (it.languageCodes || it.customVocabulary) && !c.transcriptionHints) bad.push('inputAudioTranscription hints');
  if ((it?.customVocabulary?.length ?? 0) > c.maxCustomVocabulary) bad.push('customVocabulary size');
  if (!c.replies && !it) bad.push('no inputAudioTranscription on a transcription model');
  return bad;
}

describe('property: the builder never emits a field the model lacks', () => {
  const models = new LiveModelTable();
  const seed = Number(process.env.SETUP_SEED ?? Date.now() % 1_000_000);
  const rand = prng(seed);

  it(`2,000 seeded random option sets over every model (seed ${seed}; rerun with SETUP_SEED=${seed})`, () => {
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const input = randomOptions(rand, models.ids());
      const parsed = parseSessionOptions(input);
      if (!parsed.ok) throw new Error(`seed ${seed} case ${i}: generator produced invalid options ${JSON.stringify(input)}`);
      const r = resolveSessionSetup(parsed.value, undefined, models);
      if (!r.ok) {
        refused++;
        // A refusal only ever names fields the request set.
        for (const f of r.problem.fields) {
          const top = f.split('.')[0];
          if (!(top in input)) throw new Error(`seed ${seed} case ${i}: refusal names ${f}, absent from ${JSON.stringify(input)}`);
        }
        continue;
      }
      accepted++;
      const caps = models.require(r.setup.model).capabilities;
      const cfg = buildLiveConnectConfig(r.setup);
      const bad = fieldsTheModelLacks(caps, cfg, r.setup.apiVersion ?? 'v1beta');
      if (bad.length) {
        throw new Error(`seed ${seed} case ${i}: model ${r.setup.model} got ${bad.join(', ')} from ${JSON.stringify(input)} → ${JSON.stringify(cfg)}`);
      }
    }
    // Both outcomes were exercised (otherwise the property says nothing).
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });
});

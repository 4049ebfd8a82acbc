/**
 * Per-model setup validation, like the real service: a field the model does not support closes the connection
 * with 1007 and a reason naming the field (models-and-setup.md §1: "the setup must be built per model").
 */
import { ProtocolError, isObject } from './protocol-error';
import type { ModelCapabilities } from './models';
import { CLOSE_INVALID_ARGUMENT, truncateReason } from './wire';

/** 1007 with a reason naming the field and the model. */
export function unsupported(field: string, model: string, why = 'is not supported by'): never {
  throw new ProtocolError(CLOSE_INVALID_ARGUMENT, truncateReason(`${field} ${why} ${model}.`), `${field} ${why} ${model}`);
}

/**
 * Checks the setup's fields against the model's capabilities. `model` is the id without `models/`; `setup` has
 * already passed the shape checks of `validateSetup`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
export function validateSetupForModel(setup: Record<string, any>, model: string, caps: ModelCapabilities, apiVersion: string): void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
  const gc: Record<string, any> = isObject(setup.generationConfig) ? setup.generationConfig : {};
  const alphaOnly = (field: 'proactivity' | 'enableAffectiveDialog') => caps.alphaOnly?.includes(field) === true && apiVersion !== 'v1alpha';

  if (caps.transcriptionOnly) {
    const modality = Array.isArray(gc.responseModalities) ? gc.responseModalities[0] : undefined;
    if (modality !== 'TEXT') unsupported(`generationConfig.responseModalities ${String(modality ?? 'AUDIO')}`, model);
    if (gc.speechConfig !== undefined) unsupported('generationConfig.speechConfig', model);
    if (setup.systemInstruction !== undefined) unsupported('systemInstruction', model);
    if (setup.outputAudioTranscription !== undefined) unsupported('outputAudioTranscription', model);
    if (!isObject(setup.inputAudioTranscription)) unsupported('inputAudioTranscription', model, 'is required by');
    if (Array.isArray(setup.tools) && setup.tools.length > 0) unsupported('tools', model);
  }

  if (gc.thinkingConfig !== undefined && caps.thinking) {
    const t = caps.thinking;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
    const tc: Record<string, any> = isObject(gc.thinkingConfig) ? gc.thinkingConfig : {};
    if (t.kind === 'none') unsupported('generationConfig.thinkingConfig', model);
    if (tc.thinkingLevel !== undefined && (t.kind !== 'level' || !t.levels.includes(String(tc.thinkingLevel)))) {
      unsupported(`generationConfig.thinkingConfig.thinkingLevel ${String(tc.thinkingLevel)}`, model);
    }
    if (tc.thinkingBudget !== undefined) {
      const b = Number(tc.thinkingBudget);
      if (t.kind !== 'budget') unsupported('generationConfig.thinkingConfig.thinkingBudget', model);
      if (!Number.isInteger(b) || b < t.min || b > t.max) unsupported(`generationConfig.thinkingConfig.thinkingBudget ${String(tc.thinkingBudget)}`, model);
    }
  }

  if (setup.proactivity !== undefined && caps.proactiveAudio) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
    const p: Record<string, any> = isObject(setup.proactivity) ? setup.proactivity : {};
    if (caps.proactiveAudio === 'unsupported') unsupported('proactivity', model);
    if (caps.proactiveAudio === 'always' && p.proactiveAudio === false) unsupported('proactivity.proactiveAudio false', model);
    if (alphaOnly('proactivity')) unsupported('proactivity', model, `is unknown on ${apiVersion} for`);
  }

  if (gc.enableAffectiveDialog !== undefined && caps.affectiveDialog !== undefined) {
    if (!caps.affectiveDialog) unsupported('generationConfig.enableAffectiveDialog', model);
    if (alphaOnly('enableAffectiveDialog')) unsupported('generationConfig.enableAffectiveDialog', model, `is unknown on ${apiVersion} for`);
  }

  const vocabulary = isObject(setup.inputAudioTranscription) ? setup.inputAudioTranscription.customVocabulary : undefined;
  if (Array.isArray(vocabulary) && caps.maxCustomVocabulary !== undefined && vocabulary.length > caps.maxCustomVocabulary) {
    unsupported(`inputAudioTranscription.customVocabulary of ${vocabulary.length} terms`, model);
  }

  if (caps.toolBehaviors && Array.isArray(setup.tools)) {
    for (const tool of setup.tools) {
      const decls: unknown[] = isObject(tool) && Array.isArray(tool.functionDeclarations) ? tool.functionDeclarations : [];
      for (const d of decls) {
        const behavior = isObject(d) ? d.behavior : undefined;
        if (caps.toolBehaviors.length === 0) unsupported('tools.functionDeclarations', model);
        if (behavior !== undefined && !caps.toolBehaviors.includes(behavior)) unsupported(`tools.functionDeclarations.behavior ${String(behavior)}`, model);
      }
    }
  }
}

/**
 * What a Live model accepts, as far as the emulator's validation goes (models-and-setup.md §1). Optional fields
 * left out accept anything (custom test models), so only the models that declare a rule enforce it.
 */
export interface ModelCapabilities {
  /** `responseModalities: ['AUDIO']` allowed. */
  audio: boolean;
  /** `responseModalities: ['TEXT']` allowed (native-audio models: no, closes 1007 "Cannot extract voices…"). */
  text: boolean;
  /** `clientContent` after the first model turn closes 1007 (Gemini 3.1 Flash Live). */
  restrictClientContent?: boolean;
  /** `generationConfig.thinkingConfig`: none at all, `thinkingLevel` from a set, or `thinkingBudget` in a range. */
  thinking?: { kind: 'none' } | { kind: 'level'; levels: string[] } | { kind: 'budget'; min: number; max: number };
  /** `proactivity.proactiveAudio`: always on (sending `false` is an error), optional, or unknown to the model. */
  proactiveAudio?: 'always' | 'optional' | 'unsupported';
  /** `generationConfig.enableAffectiveDialog` accepted. */
  affectiveDialog?: boolean;
  /** Setup fields this model knows only on `v1alpha` (the 2.5 models' proactivity and affective dialog). */
  alphaOnly?: ('proactivity' | 'enableAffectiveDialog')[];
  /**
   * A speech-to-text model: TEXT only, `inputAudioTranscription` required, no speech, persona or output
   * transcription; it never replies, it sends the input transcription and `turnComplete` per utterance.
   */
  transcriptionOnly?: boolean;
  /** Most `inputAudioTranscription.customVocabulary` terms accepted. */
  maxCustomVocabulary?: number;
  /** Audio accepted per connection; beyond it the connection is closed (1008). */
  maxAudioMs?: number;
  /** `functionDeclarations[].behavior` values accepted (a declaration without one uses the model's default). */
  toolBehaviors?: ('BLOCKING' | 'NON_BLOCKING')[];
  /**
   * The behavior of a declaration that names none (default BLOCKING). The extended-thinking model takes
   * non-blocking functions only. `gemini-3.8-live` defaults to NON_BLOCKING on the real service
   * (models-and-setup.md §1); the emulator keeps BLOCKING for it unless a declaration says NON_BLOCKING, so a
   * scripted tool turn keeps one shape across models (see README "Tools").
   */
  defaultToolBehavior?: 'BLOCKING' | 'NON_BLOCKING';
  /** `thoughtsTokenCount` reported with each reply's usage (3.8 reports thoughts). */
  thoughtsTokensPerTurn?: number;
}

const TEN_MINUTES_MS = 10 * 60 * 1000;

/** The Live models seen on the Gemini API (Nov 2026). All but the transcribe model are native-audio (AUDIO only). */
export function defaultModels(): Record<string, ModelCapabilities> {
  const twoFive: ModelCapabilities = {
    audio: true,
    text: false,
    thinking: { kind: 'budget', min: -1, max: 24_576 },
    proactiveAudio: 'optional',
    affectiveDialog: true,
    alphaOnly: ['proactivity', 'enableAffectiveDialog'],
    toolBehaviors: ['BLOCKING', 'NON_BLOCKING'],
    maxCustomVocabulary: 1_000,
  };
  return {
    'gemini-2.5-flash-native-audio-preview-12-2025': { ...twoFive },
    'gemini-2.5-flash-native-audio-preview-09-2025': { ...twoFive },
    'gemini-3.1-flash-live-preview': {
      audio: true,
      text: false,
      restrictClientContent: true,
      thinking: { kind: 'level', levels: ['MINIMAL', 'LOW', 'MEDIUM', 'HIGH'] },
      proactiveAudio: 'unsupported',
      affectiveDialog: false,
      toolBehaviors: ['BLOCKING'],
      maxCustomVocabulary: 1_000,
    },
    'gemini-3.8-live': {
      audio: true,
      text: false,
      thinking: { kind: 'none' },
      proactiveAudio: 'always',
      affectiveDialog: false,
      toolBehaviors: ['BLOCKING', 'NON_BLOCKING'],
      maxCustomVocabulary: 1_000,
      thoughtsTokensPerTurn: 12,
    },
    'gemini-3.8-live-extended-thinking': {
      audio: true,
      text: false,
      thinking: { kind: 'level', levels: ['LOW', 'MEDIUM', 'HIGH'] },
      proactiveAudio: 'always',
      affectiveDialog: false,
      toolBehaviors: ['NON_BLOCKING'],
      defaultToolBehavior: 'NON_BLOCKING',
      maxCustomVocabulary: 1_000,
      thoughtsTokensPerTurn: 48,
    },
    'gemini-3.5-transcribe-live': {
      audio: false,
      text: true,
      transcriptionOnly: true,
      thinking: { kind: 'none' },
      proactiveAudio: 'unsupported',
      affectiveDialog: false,
      toolBehaviors: [],
      maxCustomVocabulary: 1_000,
      maxAudioMs: TEN_MINUTES_MS,
    },
  };
}

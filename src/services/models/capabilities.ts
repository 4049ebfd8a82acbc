/**
 * What a Gemini Live model accepts in its setup (models-and-setup.md §1–§2). One value per model; the setup
 * resolver refuses options a model lacks and the builder never sends a field the model does not accept.
 * Plain data (JSON-serialisable), so capability sets can be declared in configuration.
 */

export type ThinkingLevelName = 'minimal' | 'low' | 'medium' | 'high';
export const THINKING_LEVELS: readonly ThinkingLevelName[] = ['minimal', 'low', 'medium', 'high'];

/** How a model is told to think: a level (3.x), a token budget (2.5), or not at all (3.8, transcribe). */
export type ThinkingSupport =
  | { kind: 'none' }
  | { kind: 'level'; levels: ThinkingLevelName[] }
  | { kind: 'budget'; min: number; max: number };

/** `always`: on and cannot be turned off (sending `false` is an error); `optional`: off unless asked. */
export type ProactiveAudioMode = 'always' | 'optional' | 'unsupported';

export type ToolBehavior = 'blocking' | 'non_blocking';

/** The Live API versions a setup field may need (`v1alpha` for affective dialog on the 2.5 models). */
export type LiveApiVersion = 'v1alpha' | 'v1beta';

export interface ToolCapabilities {
  functionCalling: boolean;
  /** What a declaration without `behavior` means on this model. */
  defaultBehavior: ToolBehavior;
  /** Behaviours a declaration may ask for (a `behavior` outside it closes the connection). */
  allowedBehaviors: ToolBehavior[];
  googleSearch: boolean;
}

export interface LiveModelCapabilities {
  /** What the model answers in upstream: AUDIO for the native-audio models, TEXT for the transcribe model. */
  responseModality: 'AUDIO' | 'TEXT';
  /** False for a transcription-only model: it never replies, it only transcribes the input. */
  replies: boolean;
  systemInstruction: boolean;
  /** `speechConfig.voiceConfig` (prebuilt voice). */
  voice: boolean;
  /** `speechConfig.languageCode`. */
  speechLanguage: boolean;
  /** `temperature`, `maxOutputTokens`. */
  sampling: boolean;
  thinking: ThinkingSupport;
  proactiveAudio: ProactiveAudioMode;
  /** API version the proactivity field needs when it is sent (optional models only). */
  proactiveAudioApiVersion?: LiveApiVersion;
  affectiveDialog: boolean;
  affectiveDialogApiVersion?: LiveApiVersion;
  tools: ToolCapabilities;
  /** `outputAudioTranscription` (the text of a spoken reply). */
  outputTranscription: boolean;
  /** `inputAudioTranscription.languageCodes` / `customVocabulary` (the transcribe model). */
  transcriptionHints: boolean;
  /** Most `customVocabulary` terms the model takes (≤ 1,000 on the transcribe model; ≤ 100 works best). */
  maxCustomVocabulary: number;
  /** Audio the model accepts per session (10 min on the transcribe model); undefined = bounded by the session. */
  maxAudioMsPerSession?: number;
  /** `clientContent` after the first model turn closes the connection (3.1 Flash Live). */
  restrictClientContent: boolean;
}

export interface LiveModel {
  id: string;
  capabilities: LiveModelCapabilities;
  /** `builtin` (the table below), `config` (declared in `LIVE_AUDIO_EXTRA_MODELS`). */
  source: 'builtin' | 'config';
}

const NO_TOOLS: ToolCapabilities = {
  functionCalling: false,
  defaultBehavior: 'blocking',
  allowedBehaviors: ['blocking'],
  googleSearch: false,
};

/**
 * What every conversational Live model takes: a persona, a voice, a language, sampling, VAD, transcriptions.
 * The capability set of a model declared by id only (`LIVE_AUDIO_EXTRA_MODELS=my-live-model`).
 */
export function basicCapabilities(): LiveModelCapabilities {
  return {
    responseModality: 'AUDIO',
    replies: true,
    systemInstruction: true,
    voice: true,
    speechLanguage: true,
    sampling: true,
    thinking: { kind: 'none' },
    proactiveAudio: 'unsupported',
    affectiveDialog: false,
    tools: { ...NO_TOOLS, allowedBehaviors: [...NO_TOOLS.allowedBehaviors] },
    outputTranscription: true,
    transcriptionHints: false,
    maxCustomVocabulary: 0,
    restrictClientContent: false,
  };
}

const THIRTY_EIGHT: LiveModelCapabilities = {
  ...basicCapabilities(),
  // No thinkingConfig; proactive audio always on; affective dialog removed; calls non-blocking by default.
  proactiveAudio: 'always',
  tools: { functionCalling: true, defaultBehavior: 'non_blocking', allowedBehaviors: ['blocking', 'non_blocking'], googleSearch: true },
};

const TWO_FIVE_NATIVE_AUDIO: LiveModelCapabilities = {
  ...basicCapabilities(),
  thinking: { kind: 'budget', min: -1, max: 24_576 },
  proactiveAudio: 'optional',
  proactiveAudioApiVersion: 'v1alpha',
  affectiveDialog: true,
  affectiveDialogApiVersion: 'v1alpha',
  tools: { functionCalling: true, defaultBehavior: 'blocking', allowedBehaviors: ['blocking', 'non_blocking'], googleSearch: true },
};

/** The Live models of the Gemini Developer API (models-and-setup.md §1, 2026-11-30). */
export function builtinModels(): LiveModel[] {
  const table: Record<string, LiveModelCapabilities> = {
    'gemini-3.8-live': THIRTY_EIGHT,
    'gemini-3.8-live-extended-thinking': {
      ...THIRTY_EIGHT,
      thinking: { kind: 'level', levels: ['low', 'medium', 'high'] },
      tools: { functionCalling: true, defaultBehavior: 'non_blocking', allowedBehaviors: ['non_blocking'], googleSearch: true },
    },
    'gemini-3.1-flash-live-preview': {
      ...basicCapabilities(),
      thinking: { kind: 'level', levels: ['minimal', 'low', 'medium', 'high'] },
      tools: { functionCalling: true, defaultBehavior: 'blocking', allowedBehaviors: ['blocking'], googleSearch: true },
      restrictClientContent: true,
    },
    'gemini-2.5-flash-native-audio-preview-12-2025': TWO_FIVE_NATIVE_AUDIO,
    'gemini-2.5-flash-native-audio-preview-09-2025': TWO_FIVE_NATIVE_AUDIO,
    'gemini-3.5-transcribe-live': {
      ...basicCapabilities(),
      responseModality: 'TEXT',
      replies: false,
      systemInstruction: false,
      voice: false,
      speechLanguage: false,
      sampling: false,
      outputTranscription: false,
      transcriptionHints: true,
      maxCustomVocabulary: 1_000,
      maxAudioMsPerSession: 10 * 60 * 1000,
    },
  };
  return Object.entries(table).map(([id, caps]) => ({ id, capabilities: structuredClone(caps), source: 'builtin' }));
}

/** Google's default Live model since 2026-09-15. */
export const DEFAULT_LIVE_MODEL_ID = 'gemini-3.8-live';
export const TRANSCRIBE_MODEL_ID = 'gemini-3.5-transcribe-live';

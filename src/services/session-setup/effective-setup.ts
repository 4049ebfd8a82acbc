import type { LiveApiVersion, ThinkingLevelName } from '../models/capabilities';
import type { ToolBehavior } from '../models/capabilities';
import type { SessionOptionField } from './session-options';

export type VadSetup =
  | { mode: 'manual' }
  | {
      mode: 'automatic';
      startSensitivity?: 'high' | 'low';
      endSensitivity?: 'high' | 'low';
      prefixPaddingMs?: number;
      silenceDurationMs?: number;
    };

export type ThinkingSetup = { level: ThinkingLevelName } | { budget: number };

/** Where an effective value came from. `model`: the model's own behaviour (e.g. proactive audio always on). */
export type SetupSource = 'request' | 'profile' | 'server' | 'model';

/**
 * What will be sent upstream for one session: every optional field here is present only when it is sent, and
 * only when the model accepts it (`resolveSessionSetup` guarantees it). Plain JSON: it can be stored with the
 * session (Redis later) and rebuilt into the SDK's `LiveConnectConfig` on every (re)connection.
 */
export interface EffectiveSessionSetup {
  model: string;
  /** The profile applied (`null`: none, server defaults only). */
  profile: string | null;
  /** The Live API version this setup needs (`v1alpha` for affective dialog / proactive audio on 2.5); else the server's. */
  apiVersion?: LiveApiVersion;
  /** What the model answers in upstream (AUDIO on native-audio models, TEXT on the transcribe model). */
  upstreamModality: 'AUDIO' | 'TEXT';
  /** What the client gets: `text` (the reply's transcription) or `audio` (and text). */
  responseModality: 'text' | 'audio';
  /** No reply: the session only transcribes the user (the transcribe model). */
  transcriptionOnly: boolean;
  inputTranscription: boolean;
  /** Sent upstream: also on when the client wants text from a native-audio model. */
  outputTranscription: boolean;
  systemInstruction?: string;
  voice?: string;
  language?: string;
  temperature?: number;
  maxOutputTokens?: number;
  vad?: VadSetup;
  thinking?: ThinkingSetup;
  /** Sent as `proactivity.proactiveAudio: true` (models where it is optional). */
  proactiveAudio?: boolean;
  /** Sent as `enableAffectiveDialog: true`. */
  affectiveDialog?: boolean;
  /** `inputAudioTranscription.languageCodes` (transcribe model). */
  transcriptionLanguages?: string[];
  /** `inputAudioTranscription.customVocabulary` (transcribe model). */
  customVocabulary?: string[];
  /** Sent as a text turn right after the setup of a fresh session (never on a reconnect). */
  greeting?: string;
  /** The model accepts at most this much audio per session (the transcribe model: 10 min). */
  maxAudioMs?: number;
  /** Function declarations sent as `tools[].functionDeclarations` (behavior only when the caller chose one). */
  tools?: EffectiveTool[];
  /** Sent as `tools: [{ googleSearch: {} }]`. */
  googleSearch?: boolean;
}

/** One declared function as sent upstream; `effectiveBehavior` is what the model will do (its default if unset). */
export interface EffectiveTool {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
  behavior?: ToolBehavior;
  effectiveBehavior: ToolBehavior;
}

/** A profile or server value left out because the chosen model lacks it (requests for it are refused instead). */
export interface NotApplied {
  field: SessionOptionField;
  reason: string;
}

/**
 * The client-visible echo of the effective setup (`data.setup` of start and status): snake_case, what was sent
 * and where each value came from. Text the server supplied (a profile's system instruction or greeting) is
 * described (source, length), not shown: a profile's persona is the operator's, not the caller's.
 */
export interface SetupEcho {
  model: string;
  requested_model: string | null;
  model_fell_back: boolean;
  profile: string | null;
  api_version: LiveApiVersion | null;
  response_modality: 'text' | 'audio';
  transcription_only: boolean;
  input_transcription: boolean;
  output_transcription: boolean;
  system_instruction: { source: SetupSource; chars: number; text?: string } | null;
  voice: string | null;
  language: string | null;
  temperature: number | null;
  max_output_tokens: number | null;
  vad:
    | { manual: true }
    | { manual: false; start_sensitivity: string | null; end_sensitivity: string | null; prefix_padding_ms: number | null; silence_duration_ms: number | null }
    | null;
  thinking: { level: string } | { budget: number } | null;
  proactive_audio: boolean;
  affective_dialog: boolean;
  transcription_languages: string[] | null;
  custom_vocabulary: { terms: number } | null;
  greeting: { source: SetupSource; chars: number; text?: string } | null;
  max_audio_ms: number | null;
  /** The declared functions (name and behavior the model applies) and whether Google Search grounding is on. */
  tools: { name: string; behavior: ToolBehavior }[] | null;
  google_search: boolean;
  sources: Partial<Record<SessionOptionField, SetupSource>>;
  not_applied: NotApplied[];
}

/**
 * The echo kept after a session ends (its status and its stored transcript): the request's own texts (system
 * instruction, greeting; up to 32 KiB each) are described (source, length), not kept, so an ended session costs a
 * few hundred bytes whatever it was started with.
 */
export function compactEcho(echo: SetupEcho): SetupEcho {
  const describe = (t: SetupEcho['system_instruction']) => (t ? { source: t.source, chars: t.chars } : null);
  return { ...echo, system_instruction: describe(echo.system_instruction), greeting: describe(echo.greeting) };
}

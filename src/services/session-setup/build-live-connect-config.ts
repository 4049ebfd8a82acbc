import {
  Behavior,
  EndSensitivity,
  Modality,
  StartSensitivity,
  ThinkingLevel,
  type AudioTranscriptionConfig,
  type LiveConnectConfig,
  type RealtimeInputConfig,
  type Tool,
} from '@google/genai';
import type { UpstreamSessionConfig } from '../upstream/upstream-types';
import type { EffectiveSessionSetup, ThinkingSetup, VadSetup } from './effective-setup';

/** Per-connection settings that are not the session's choice (resumption, compression). */
export type ConnectionSettings = Pick<UpstreamSessionConfig, 'resumptionHandle' | 'sessionResumption' | 'contextWindowCompression'>;

/**
 * What a session asks of the provider once setups are per model: the old fields (kept for the resilient link,
 * metrics and the provider's fallback path) plus the effective setup the `LiveConnectConfig` is built from.
 */
export interface ModelSessionConfig extends UpstreamSessionConfig {
  setup: EffectiveSessionSetup;
}

/** Shapes the `UpstreamSessionConfig` a session hands to `ResilientUpstream` from its effective setup. */
export function toModelSessionConfig(setup: EffectiveSessionSetup, connection: ConnectionSettings = {}): ModelSessionConfig {
  return {
    model: setup.model,
    responseModality: setup.responseModality,
    inputTranscription: setup.inputTranscription,
    outputTranscription: setup.outputTranscription,
    ...(setup.systemInstruction !== undefined ? { systemInstruction: setup.systemInstruction } : {}),
    ...(setup.voice !== undefined ? { voiceName: setup.voice } : {}),
    ...connection,
    setup,
  };
}

/**
 * The `@google/genai` 2.32.0 `LiveConnectConfig` for an effective setup. Only fields present in the effective
 * setup are set (`resolveSessionSetup` put there only what the model accepts), so a field the model does not
 * accept is never sent. Flat `LiveConnectConfig` fields are used (the SDK moves `temperature`, `speechConfig`,
 * `thinkingConfig`, ... into `setup.generationConfig`); the deprecated `generationConfig` field never is.
 */
export function buildLiveConnectConfig(s: EffectiveSessionSetup, connection: ConnectionSettings = {}): LiveConnectConfig {
  const config: LiveConnectConfig = {
    responseModalities: [s.upstreamModality === 'TEXT' ? Modality.TEXT : Modality.AUDIO],
  };
  if (s.systemInstruction !== undefined) config.systemInstruction = s.systemInstruction;
  if (s.voice !== undefined || s.language !== undefined) {
    config.speechConfig = {
      ...(s.voice !== undefined ? { voiceConfig: { prebuiltVoiceConfig: { voiceName: s.voice } } } : {}),
      ...(s.language !== undefined ? { languageCode: s.language } : {}),
    };
  }
  if (s.temperature !== undefined) config.temperature = s.temperature;
  if (s.maxOutputTokens !== undefined) config.maxOutputTokens = s.maxOutputTokens;
  if (s.thinking) config.thinkingConfig = thinkingConfig(s.thinking);
  if (s.affectiveDialog) config.enableAffectiveDialog = true;
  if (s.proactiveAudio) config.proactivity = { proactiveAudio: true };
  if (s.inputTranscription) config.inputAudioTranscription = inputTranscriptionConfig(s);
  if (s.outputTranscription) config.outputAudioTranscription = {};
  if (s.vad) config.realtimeInputConfig = realtimeInputConfig(s.vad);
  const tools = toolsConfig(s);
  if (tools.length > 0) config.tools = tools;

  if (connection.sessionResumption !== false) {
    config.sessionResumption = connection.resumptionHandle ? { handle: connection.resumptionHandle } : {};
  }
  const c = connection.contextWindowCompression;
  if (c !== null && c !== undefined) {
    config.contextWindowCompression = {
      ...(c.triggerTokens ? { triggerTokens: String(c.triggerTokens) } : {}),
      slidingWindow: c.targetTokens ? { targetTokens: String(c.targetTokens) } : {},
    };
  }
  return config;
}

/** The text turn that makes the model speak first: sent once, after the setup of a fresh session. */
export function greetingToSend(s: EffectiveSessionSetup, connection: { resumed: boolean; greetedBefore: boolean }): string | undefined {
  if (s.greeting === undefined || s.transcriptionOnly || connection.resumed || connection.greetedBefore) return undefined;
  return s.greeting;
}

/** `tools`: one entry with every function declaration, one with `googleSearch`. */
function toolsConfig(s: EffectiveSessionSetup): Tool[] {
  const out: Tool[] = [];
  if (s.tools?.length) {
    out.push({
      functionDeclarations: s.tools.map((t) => ({
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        ...(t.parameters !== undefined ? { parametersJsonSchema: t.parameters } : {}),
        ...(t.behavior !== undefined ? { behavior: t.behavior === 'blocking' ? Behavior.BLOCKING : Behavior.NON_BLOCKING } : {}),
      })),
    });
  }
  if (s.googleSearch) out.push({ googleSearch: {} });
  return out;
}

const LEVELS: Record<Extract<ThinkingSetup, { level: unknown }>['level'], ThinkingLevel> = {
  minimal: ThinkingLevel.MINIMAL,
  low: ThinkingLevel.LOW,
  medium: ThinkingLevel.MEDIUM,
  high: ThinkingLevel.HIGH,
};

function thinkingConfig(t: ThinkingSetup): NonNullable<LiveConnectConfig['thinkingConfig']> {
  return 'level' in t ? { thinkingLevel: LEVELS[t.level] } : { thinkingBudget: t.budget };
}

function inputTranscriptionConfig(s: EffectiveSessionSetup): AudioTranscriptionConfig {
  const out: AudioTranscriptionConfig = {};
  if (s.transcriptionLanguages?.length) out.languageCodes = [...s.transcriptionLanguages];
  if (s.customVocabulary?.length) out.customVocabulary = [...s.customVocabulary];
  return out;
}

function realtimeInputConfig(v: VadSetup): RealtimeInputConfig {
  if (v.mode === 'manual') return { automaticActivityDetection: { disabled: true } };
  return {
    automaticActivityDetection: {
      ...(v.startSensitivity
        ? { startOfSpeechSensitivity: v.startSensitivity === 'high' ? StartSensitivity.START_SENSITIVITY_HIGH : StartSensitivity.START_SENSITIVITY_LOW }
        : {}),
      ...(v.endSensitivity
        ? { endOfSpeechSensitivity: v.endSensitivity === 'high' ? EndSensitivity.END_SENSITIVITY_HIGH : EndSensitivity.END_SENSITIVITY_LOW }
        : {}),
      ...(v.prefixPaddingMs !== undefined ? { prefixPaddingMs: v.prefixPaddingMs } : {}),
      ...(v.silenceDurationMs !== undefined ? { silenceDurationMs: v.silenceDurationMs } : {}),
    },
  };
}

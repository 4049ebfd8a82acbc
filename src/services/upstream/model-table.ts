/**
 * Which requested model ids are Live models. The Sculptor frontend sends chat model ids
 * (`gemini-2.5-pro`, `gemini-2.0-flash-exp`, ...) that the Live API rejects; those fall back to the default.
 */
export interface LiveModelInfo {
  id: string;
  /** Native-audio models answer only in AUDIO; text comes from output transcription. */
  nativeAudio: boolean;
}

export const KNOWN_LIVE_MODELS: readonly LiveModelInfo[] = [
  { id: 'gemini-2.5-flash-native-audio-preview-12-2025', nativeAudio: true },
  { id: 'gemini-2.5-flash-native-audio-preview-09-2025', nativeAudio: true },
  { id: 'gemini-3.1-flash-live-preview', nativeAudio: true },
  { id: 'gemini-3.8-live', nativeAudio: true },
  { id: 'gemini-3.8-live-extended-thinking', nativeAudio: true },
];

export interface ModelChoice {
  model: string;
  requested: string | undefined;
  /** True when the requested id was not a Live model and the default was used instead. */
  fellBack: boolean;
}

export class ModelTable {
  private readonly models = new Map<string, LiveModelInfo>();

  constructor(
    private readonly defaultModel: string,
    extra: readonly string[] = [],
  ) {
    for (const m of KNOWN_LIVE_MODELS) this.models.set(m.id, m);
    for (const id of [defaultModel, ...extra]) {
      if (!this.models.has(id)) this.models.set(id, { id, nativeAudio: true });
    }
  }

  /** Maps a requested id (optionally `models/`-prefixed) to the Live model to use. */
  resolve(requested: unknown): ModelChoice {
    const raw = typeof requested === 'string' ? requested.trim().replace(/^models\//, '') : undefined;
    if (raw && this.models.has(raw)) return { model: raw, requested: raw, fellBack: false };
    return { model: this.defaultModel, requested: raw || undefined, fellBack: raw !== undefined && raw !== '' };
  }

  info(model: string): LiveModelInfo {
    return this.models.get(model) ?? { id: model, nativeAudio: true };
  }

  list(): string[] {
    return [...this.models.keys()];
  }
}

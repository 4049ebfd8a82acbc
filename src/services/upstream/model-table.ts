/**
 * Which requested model ids are Live models. The Sculptor frontend sends chat model ids
 * (`gemini-2.5-pro`, `gemini-2.0-flash-exp`, ...) that the Live API rejects; those fall back to the default.
 */
export const KNOWN_LIVE_MODELS: readonly string[] = [
  'gemini-2.5-flash-native-audio-preview-12-2025',
  'gemini-2.5-flash-native-audio-preview-09-2025',
  'gemini-3.1-flash-live-preview',
  'gemini-3.8-live',
  'gemini-3.8-live-extended-thinking',
];

export interface ModelChoice {
  model: string;
  requested: string | undefined;
  /** True when the requested id was not a Live model and the default was used instead. */
  fellBack: boolean;
}

export class ModelTable {
  private readonly models = new Set<string>();

  constructor(
    private readonly defaultModel: string,
    extra: readonly string[] = [],
  ) {
    for (const id of [...KNOWN_LIVE_MODELS, defaultModel, ...extra]) this.models.add(id);
  }

  /** Maps a requested id (optionally `models/`-prefixed) to the Live model to use. */
  resolve(requested: unknown): ModelChoice {
    const raw = typeof requested === 'string' ? requested.trim().replace(/^models\//, '') : undefined;
    if (raw && this.models.has(raw)) return { model: raw, requested: raw, fellBack: false };
    return { model: this.defaultModel, requested: raw || undefined, fellBack: raw !== undefined && raw !== '' };
  }
}

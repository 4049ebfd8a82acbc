import { basicCapabilities, builtinModels, DEFAULT_LIVE_MODEL_ID, type LiveModel, type LiveModelCapabilities } from './capabilities';
import { ModelConfigError, type ExtraModelSpec } from './extra-models';

export interface LiveModelTableOptions {
  /** Used for non-Live model ids (the Sculptor frontend's `gemini-2.5-pro`). Default `gemini-3.8-live`. */
  defaultModel?: string;
  /** Declared models (see `parseExtraModels`); a declaration with a built-in id replaces its capabilities. */
  extra?: readonly ExtraModelSpec[];
}

/** The outcome of mapping a requested model id. */
export interface ModelChoice {
  model: string;
  /** What the client asked for (trimmed, without `models/`), if anything. */
  requested: string | undefined;
  /** True when the requested id was not a Live model and the fallback was used instead. */
  fellBack: boolean;
}

/**
 * The Live models this server can open sessions on, with what each accepts. Chat model ids (`gemini-2.5-pro`,
 * anything not in the table) fall back to a Live model: the caller's fallback (a profile's model) or the default.
 */
export class LiveModelTable {
  readonly defaultModel: string;
  private readonly models = new Map<string, LiveModel>();

  constructor(opts: LiveModelTableOptions = {}) {
    for (const m of builtinModels()) this.models.set(m.id, m);
    for (const spec of opts.extra ?? []) {
      const base = spec.like === undefined ? basicCapabilities() : this.models.get(spec.like)?.capabilities;
      if (!base) throw new ModelConfigError(`model "${spec.id}": "like" names an unknown model "${spec.like}"`);
      const capabilities: LiveModelCapabilities = { ...structuredClone(base), ...structuredClone(spec.capabilities ?? {}) };
      checkCoherent(spec.id, capabilities);
      this.models.set(spec.id, { id: spec.id, capabilities, source: 'config' });
    }
    this.defaultModel = (opts.defaultModel ?? DEFAULT_LIVE_MODEL_ID).replace(/^models\//, '');
    if (!this.models.has(this.defaultModel)) {
      // An unknown default (e.g. a newer model named in LIVE_AUDIO_DEFAULT_MODEL) gets the basic set, as before.
      this.models.set(this.defaultModel, { id: this.defaultModel, capabilities: basicCapabilities(), source: 'config' });
    }
  }

  /** Maps a requested id (optionally `models/`-prefixed) to the Live model to use. */
  resolve(requested: unknown, fallback: string = this.defaultModel): ModelChoice {
    const raw = typeof requested === 'string' ? requested.trim().replace(/^models\//, '') : undefined;
    if (raw && this.models.has(raw)) return { model: raw, requested: raw, fellBack: false };
    const model = this.models.has(fallback) ? fallback : this.defaultModel;
    return { model, requested: raw || undefined, fellBack: raw !== undefined && raw !== '' };
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  get(id: string): LiveModel | undefined {
    return this.models.get(id);
  }

  /** The model's entry; throws for an id not in the table (use `resolve` for client input). */
  require(id: string): LiveModel {
    const m = this.models.get(id);
    if (!m) throw new Error(`unknown Live model ${id}`);
    return m;
  }

  list(): LiveModel[] {
    return [...this.models.values()];
  }

  ids(): string[] {
    return [...this.models.keys()];
  }
}

function checkCoherent(id: string, c: LiveModelCapabilities): void {
  const bad = (why: string) => new ModelConfigError(`model "${id}": ${why}`);
  if (c.thinking.kind === 'budget' && c.thinking.min > c.thinking.max) throw bad('thinking.min is above thinking.max');
  if (!c.tools.allowedBehaviors.includes(c.tools.defaultBehavior)) throw bad('tools.defaultBehavior is not in tools.allowedBehaviors');
  if (c.responseModality === 'TEXT' && (c.voice || c.speechLanguage)) throw bad('a TEXT model has no voice or speech language');
  if (!c.replies && c.outputTranscription) throw bad('a model that never replies has no output transcription');
}

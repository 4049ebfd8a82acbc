import { z } from 'zod';
import { THINKING_LEVELS, type LiveModelCapabilities } from './capabilities';

/**
 * `LIVE_AUDIO_EXTRA_MODELS`: Live model ids the server accepts besides the built-in table. Two forms:
 * - a comma list of ids (`my-live-a,my-live-b`): each gets the basic capability set (persona, voice, language,
 *   sampling, transcriptions; nothing model-specific);
 * - a JSON array declaring each model's capabilities, optionally starting from a known model's:
 *   `[{"id":"gemini-3.9-live","like":"gemini-3.8-live","capabilities":{"thinking":{"kind":"level","levels":["low","high"]}}}]`.
 */
export interface ExtraModelSpec {
  id: string;
  /** Start from this model's capabilities (a built-in id or an earlier entry); default: the basic set. */
  like?: string;
  /** Fields replacing those of the base set (each given field replaces the base's whole value). */
  capabilities?: Partial<LiveModelCapabilities>;
}

export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelConfigError';
  }
}

export const MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Bounds what a configuration value can make the server hold. */
export const MAX_EXTRA_MODELS = 100;
const MAX_EXTRA_MODELS_CHARS = 64 * 1024;

const behavior = z.enum(['blocking', 'non_blocking']);
const apiVersion = z.enum(['v1alpha', 'v1beta']);

const capabilitiesSchema = z.strictObject({
  responseModality: z.enum(['AUDIO', 'TEXT']),
  replies: z.boolean(),
  systemInstruction: z.boolean(),
  voice: z.boolean(),
  speechLanguage: z.boolean(),
  sampling: z.boolean(),
  thinking: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('none') }),
    z.strictObject({ kind: z.literal('level'), levels: z.array(z.enum(THINKING_LEVELS as [string, ...string[]])).min(1).max(4) }),
    z.strictObject({ kind: z.literal('budget'), min: z.int().min(-1).max(1_000_000), max: z.int().min(0).max(1_000_000) }),
  ]),
  proactiveAudio: z.enum(['always', 'optional', 'unsupported']),
  proactiveAudioApiVersion: apiVersion,
  affectiveDialog: z.boolean(),
  affectiveDialogApiVersion: apiVersion,
  tools: z.strictObject({
    functionCalling: z.boolean(),
    defaultBehavior: behavior,
    allowedBehaviors: z.array(behavior).min(1).max(2),
    googleSearch: z.boolean(),
  }),
  outputTranscription: z.boolean(),
  transcriptionHints: z.boolean(),
  maxCustomVocabulary: z.int().min(0).max(10_000),
  maxAudioMsPerSession: z.int().min(1_000),
  restrictClientContent: z.boolean(),
});

const specSchema = z.strictObject({
  id: z.string().regex(MODEL_ID_PATTERN, 'must be a model id ([A-Za-z0-9._-], at most 128 characters)'),
  like: z.string().regex(MODEL_ID_PATTERN).optional(),
  capabilities: capabilitiesSchema.partial().optional(),
});

/** Parses the variable's value (either form). Throws {@link ModelConfigError} naming the entry and field. */
export function parseExtraModels(value: string | readonly string[] | undefined): ExtraModelSpec[] {
  if (value === undefined) return [];
  if (typeof value !== 'string') return value.flatMap((v) => parseExtraModels(v));
  const text = value.trim();
  if (!text) return [];
  if (text.length > MAX_EXTRA_MODELS_CHARS) {
    throw new ModelConfigError(`LIVE_AUDIO_EXTRA_MODELS: at most ${MAX_EXTRA_MODELS_CHARS} characters`);
  }
  if (!text.startsWith('[') && !text.startsWith('{')) return parseIdList(text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ModelConfigError('LIVE_AUDIO_EXTRA_MODELS: not valid JSON (use a comma list of ids or a JSON array)');
  }
  return parseExtraModelSpecs(json, 'LIVE_AUDIO_EXTRA_MODELS');
}

/** Validates already-parsed declarations (from the variable's JSON form or any other source). */
export function parseExtraModelSpecs(json: unknown, where: string): ExtraModelSpec[] {
  if (!Array.isArray(json)) throw new ModelConfigError(`${where}: expected a JSON array of {id, like?, capabilities?}`);
  if (json.length > MAX_EXTRA_MODELS) throw new ModelConfigError(`${where}: at most ${MAX_EXTRA_MODELS} models`);
  return json.map((entry, i) => {
    const r = specSchema.safeParse(entry);
    if (r.success) return r.data as ExtraModelSpec;
    const id = entry && typeof entry === 'object' && typeof (entry as { id?: unknown }).id === 'string' ? ` ("${String((entry as { id: string }).id).slice(0, 128)}")` : '';
    const issue = r.error.issues[0];
    const field = issue.path.length ? issue.path.join('.') : issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys.join(', ') : '(entry)';
    throw new ModelConfigError(`${where}[${i}]${id}: ${field}: ${issue.message}`);
  });
}

function parseIdList(text: string): ExtraModelSpec[] {
  const ids = text
    .split(',')
    .map((s) => s.trim().replace(/^models\//, ''))
    .filter(Boolean);
  if (ids.length > MAX_EXTRA_MODELS) throw new ModelConfigError(`LIVE_AUDIO_EXTRA_MODELS: at most ${MAX_EXTRA_MODELS} models`);
  for (const id of ids) {
    if (!MODEL_ID_PATTERN.test(id)) throw new ModelConfigError(`LIVE_AUDIO_EXTRA_MODELS: "${id.slice(0, 128)}" is not a model id`);
  }
  return ids.map((id) => ({ id }));
}

import { z } from 'zod';
import { THINKING_LEVELS } from '../models/capabilities';
import { canonicalVoice, PREBUILT_VOICES } from '../models/voices';
import { toolsSchema } from '../tools/tool-declarations';

/**
 * The per-session options of `POST /session/start` and the WebSocket `start_session` (issue 14 §2), as one strict
 * zod schema: an unknown field is an error naming it, never silently dropped. The transports' message schemas
 * extend `sessionOptionsShape` with their own fields (`session_id`, `keep_alive_on_close`, ...).
 */

/** 32 KiB of UTF-8: the largest system instruction accepted. */
export const MAX_SYSTEM_INSTRUCTION_BYTES = 32 * 1024;
export const MAX_GREETING_BYTES = 4 * 1024;
/** The transcribe model takes at most 1,000 terms (≤ 100 works best). */
export const MAX_CUSTOM_VOCABULARY_TERMS = 1_000;
export const MAX_CUSTOM_VOCABULARY_TERM_CHARS = 100;
export const MAX_TRANSCRIPTION_LANGUAGES = 10;
const MAX_LANGUAGE_TAG_CHARS = 35;

/** Canonical BCP-47 tag (`en-us` → `en-US`) or undefined when it is not one. */
export function canonicalLanguageTag(tag: string): string | undefined {
  if (tag.length === 0 || tag.length > MAX_LANGUAGE_TAG_CHARS || !/^[A-Za-z0-9-]+$/.test(tag)) return undefined;
  try {
    const [canonical] = Intl.getCanonicalLocales(tag);
    return canonical;
  } catch {
    return undefined;
  }
}

const languageTag = z
  .string()
  .max(MAX_LANGUAGE_TAG_CHARS, `must be a BCP-47 language tag (at most ${MAX_LANGUAGE_TAG_CHARS} characters)`)
  .transform((s, ctx) => {
    const c = canonicalLanguageTag(s);
    if (c === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be a BCP-47 language tag such as en-US' });
      return z.NEVER;
    }
    return c;
  });

const utf8Max = (max: number, what: string) =>
  z.string().refine((s) => Buffer.byteLength(s, 'utf8') <= max, `${what} is larger than ${max} bytes`);

const voice = z
  .string()
  .max(64, 'must be a prebuilt voice name')
  .transform((s, ctx) => {
    const v = canonicalVoice(s);
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be one of the prebuilt voices (${PREBUILT_VOICES.slice(0, 5).join(', ')}, …)` });
      return z.NEVER;
    }
    return v;
  });

const sensitivity = z.enum(['high', 'low']);
const ms = (max: number) => z.int().min(0).max(max);

const vadAutomatic = z.strictObject({
  start_sensitivity: sensitivity.optional(),
  end_sensitivity: sensitivity.optional(),
  prefix_padding_ms: ms(10_000).optional(),
  silence_duration_ms: ms(10_000).optional(),
});
const vadManual = z.strictObject({ manual: z.literal(true) });

const thinking = z.union([
  z.strictObject({ level: z.enum(THINKING_LEVELS as [string, ...string[]]) }),
  z.strictObject({ budget: z.int().min(-1).max(1_000_000) }),
]);

/**
 * Arrays are length-checked before their elements (a 10,000-term list costs one comparison, not 10,000 parses).
 */
function boundedArray<T extends z.ZodType>(item: T, max: number, what: string) {
  return z
    .array(z.unknown())
    .max(max, `at most ${max} ${what}`)
    .pipe(z.array(item));
}

export const sessionOptionsShape = {
  model: z.string().max(128, 'must be a model id').optional(),
  profile: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a profile name ([A-Za-z0-9_.-], at most 64 characters)').optional(),
  response_modality: z.enum(['text', 'audio']).optional(),
  input_transcription: z.boolean().optional(),
  output_transcription: z.boolean().optional(),
  system_instruction: utf8Max(MAX_SYSTEM_INSTRUCTION_BYTES, 'system_instruction').optional(),
  voice: voice.optional(),
  language: languageTag.optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_output_tokens: z.int().min(1).max(65_536).optional(),
  vad: z.union([vadManual, vadAutomatic]).optional(),
  thinking: thinking.optional(),
  proactive_audio: z.boolean().optional(),
  affective_dialog: z.boolean().optional(),
  transcription_languages: boundedArray(languageTag, MAX_TRANSCRIPTION_LANGUAGES, 'languages').optional(),
  custom_vocabulary: boundedArray(
    z.string().min(1).max(MAX_CUSTOM_VOCABULARY_TERM_CHARS, `terms of at most ${MAX_CUSTOM_VOCABULARY_TERM_CHARS} characters`),
    MAX_CUSTOM_VOCABULARY_TERMS,
    'terms',
  ).optional(),
  greeting: z.union([z.literal(true), z.literal(false), utf8Max(MAX_GREETING_BYTES, 'greeting').pipe(z.string().min(1))]).optional(),
  /** Function declarations (issue 16): the model may call them; the client answers. */
  tools: toolsSchema.optional(),
  /** Google Search grounding (`tools: [{ googleSearch: {} }]`). */
  google_search: z.boolean().optional(),
};

export const sessionOptionsSchema = z.strictObject(sessionOptionsShape);

export type SessionOptions = z.output<typeof sessionOptionsSchema>;
export type SessionOptionField = keyof SessionOptions;
export const SESSION_OPTION_FIELDS = Object.keys(sessionOptionsShape) as SessionOptionField[];

/** A refused option set: always a 400 with one of these codes. */
export interface SetupProblem {
  status: 400;
  code: 'INVALID_FIELD' | 'UNSUPPORTED_FOR_MODEL' | 'PROFILE_LOCKED' | 'UNKNOWN_PROFILE';
  /** Plain-language message naming the field(s) (and the model or profile). */
  error: string;
  fields: string[];
  model?: string;
  profile?: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; problem: SetupProblem };

/** Turns zod issues into one INVALID_FIELD problem naming every offending field. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): SetupProblem {
  const fields: string[] = [];
  const parts: string[] = [];
  for (const issue of issues.slice(0, 10)) {
    if (issue.code === 'unrecognized_keys') {
      const path = issue.path.length ? `${issue.path.join('.')}.` : '';
      for (const k of issue.keys.slice(0, 10)) {
        const name = `${prefix}${path}${k.slice(0, 64)}`;
        fields.push(name);
        parts.push(`${name} is not a known field`);
      }
      continue;
    }
    const name = `${prefix}${issue.path.map(String).join('.')}` || '(body)';
    fields.push(name);
    parts.push(`${name} ${issue.message}`);
  }
  const unique = [...new Set(fields)];
  return { status: 400, code: 'INVALID_FIELD', error: `Invalid session options: ${parts.join('; ')}`, fields: unique };
}

/** Validates a request's session options (strict). */
export function parseSessionOptions(input: unknown): ParseResult<SessionOptions> {
  if (input === undefined || input === null) return { ok: true, value: {} };
  const r = sessionOptionsSchema.safeParse(input);
  return r.success ? { ok: true, value: r.data } : { ok: false, problem: describeIssues(r.error.issues) };
}

import type { JsonShapeLimits } from './body-json-shape';
import { MAX_CUSTOM_VOCABULARY_TERMS, MAX_TRANSCRIPTION_LANGUAGES } from '../services/session-setup/session-options';
import { MAX_TOOL_SCHEMA_DEPTH } from '../services/tools/tool-declarations';

/** What one route accepts as its JSON body. */
export interface BodySpec extends JsonShapeLimits {
  maxBytes: number;
}

/** The routes' bodies are flat objects; a little nesting is tolerated (e.g. a client's metadata object). */
export const JSON_MAX_DEPTH = 4;
/** Containers plus separators: the routes read at most a handful of fields. */
export const JSON_MAX_ELEMENTS = 1000;
/**
 * Session start and end: the largest legal start body is a full `custom_vocabulary` (1,000 terms: 1,000
 * separators) with every other option set, so the cap is that plus room for the other fields (about 1,150
 * elements). A body of 10,000 terms is refused by the scan before `JSON.parse` builds it.
 */
export const CONTROL_JSON_MAX_ELEMENTS = MAX_CUSTOM_VOCABULARY_TERMS + MAX_TRANSCRIPTION_LANGUAGES + 128;
/**
 * Session start and tool answers carry JSON the client designs (a function's `parameters` schema, a function's
 * result): body → `tools` → declaration → a schema of at most MAX_TOOL_SCHEMA_DEPTH levels (and body → `responses`
 * → answer → `response` the same). Still checked before `JSON.parse`.
 */
export const CONTROL_JSON_MAX_DEPTH = 3 + MAX_TOOL_SCHEMA_DEPTH;
/** Elements of declarations with their schemas (bounded in bytes by MAX_TOOLS_TOTAL_BYTES as well). */
export const TOOLS_JSON_MAX_ELEMENTS = 4096;
/** Room for `/transcribe`'s other fields and a `data:` URL prefix next to the base64 chunk. */
export const TRANSCRIBE_FIELDS_ALLOWANCE = 64 * 1024;

/** Length of the base64 text of `bytes` bytes (with padding). */
export const base64Length = (bytes: number): number => 4 * Math.ceil(bytes / 3);

export interface RouteBodySpecs {
  /** `/transcribe`: one audio chunk of at most `maxChunkBytes` as base64, plus a few fields. */
  transcribe: BodySpec;
  /** Session start and end: a few short fields. */
  control: BodySpec;
}

/**
 * Per-route body caps: `/transcribe` gets the largest legal body (a `maxChunkBytes` chunk as base64 plus a few
 * fields), never more than `LIVE_AUDIO_JSON_LIMIT`; the routes without audio get `LIVE_AUDIO_CONTROL_JSON_LIMIT`.
 */
export function routeBodySpecs(o: { maxChunkBytes: number; jsonLimitBytes: number; controlJsonLimitBytes: number }): RouteBodySpecs {
  const shape = { maxDepth: JSON_MAX_DEPTH, maxElements: JSON_MAX_ELEMENTS };
  return {
    transcribe: { ...shape, maxBytes: Math.min(o.jsonLimitBytes, base64Length(o.maxChunkBytes) + TRANSCRIBE_FIELDS_ALLOWANCE) },
    control: { maxDepth: CONTROL_JSON_MAX_DEPTH, maxElements: CONTROL_JSON_MAX_ELEMENTS + TOOLS_JSON_MAX_ELEMENTS, maxBytes: Math.min(o.jsonLimitBytes, o.controlJsonLimitBytes) },
  };
}

import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { LiveModelTable } from '../models/live-model-table';
import { resolveSessionSetup } from '../session-setup/resolve-session-setup';
import { describeIssues, SESSION_OPTION_FIELDS, sessionOptionsShape, type SessionOptionField } from '../session-setup/session-options';
import type { Profile } from './profile';

/**
 * The profiles file (`LIVE_AUDIO_PROFILES_FILE`), YAML or JSON:
 *
 * ```yaml
 * profiles:
 *   coach:
 *     description: A friendly speaking coach
 *     model: gemini-3.8-live
 *     system_instruction: You help the user practise small talk.
 *     voice: Kore
 *     language: en-GB
 *     greeting: Greet the user and suggest a topic.
 *     locked: [system_instruction, model]
 * ```
 *
 * Each profile holds any per-session option (except `profile`) as a default, a `description`, and `locked`: the
 * options a request may not set. Everything is checked; an error names the profile and the field.
 */

/** Larger files are refused before they are read. */
export const MAX_PROFILES_FILE_BYTES = 256 * 1024;
export const MAX_PROFILES = 100;
/** Nesting deeper than the schema needs is refused before validation (it can only be garbage). */
const MAX_DEPTH = 12;

export class ProfileFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProfileFileError';
  }
}

const { profile: _profileField, ...defaultsShape } = sessionOptionsShape;
const lockable = SESSION_OPTION_FIELDS.filter((f) => f !== 'profile') as [SessionOptionField, ...SessionOptionField[]];

const profileSchema = z.strictObject({
  ...defaultsShape,
  description: z.string().max(500).optional(),
  locked: z.array(z.enum(lockable)).max(lockable.length).optional(),
});

const fileSchema = z.strictObject({
  profiles: z.record(z.string(), z.unknown()),
});

const PROFILE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Parses and validates the file's text. Throws {@link ProfileFileError} naming the profile and field. */
export function parseProfilesText(text: string, filePath: string, models: LiveModelTable): Profile[] {
  const where = `profiles file ${path.basename(filePath)}`;
  if (Buffer.byteLength(text) > MAX_PROFILES_FILE_BYTES) throw new ProfileFileError(`${where}: larger than ${MAX_PROFILES_FILE_BYTES} bytes`);
  if (!text.trim()) return [];
  const data = parseText(text, filePath, where);
  if (depthExceeds(data, MAX_DEPTH)) throw new ProfileFileError(`${where}: nested deeper than ${MAX_DEPTH} levels`);
  const file = fileSchema.safeParse(data);
  if (!file.success) {
    throw new ProfileFileError(`${where}: expected { profiles: { <name>: { ...options, locked?: [...] } } } (${describeIssues(file.error.issues).error})`);
  }
  const entries = Object.entries(file.data.profiles);
  if (entries.length > MAX_PROFILES) throw new ProfileFileError(`${where}: at most ${MAX_PROFILES} profiles`);
  return entries.map(([name, raw]) => {
    if (!PROFILE_NAME.test(name)) throw new ProfileFileError(`${where}: profile name "${name.slice(0, 64)}" must match ${PROFILE_NAME.source}`);
    const r = profileSchema.safeParse(raw ?? {});
    if (!r.success) {
      const p = describeIssues(r.error.issues);
      throw new ProfileFileError(`${where}: profile "${name}": ${p.error.replace(/^Invalid session options: /, '')}`);
    }
    const { description, locked, ...defaults } = r.data;
    const profile: Profile = { name, ...(description ? { description } : {}), defaults, locked: [...new Set(locked ?? [])], source: 'file' };
    checkAgainstModel(profile, models, where);
    return profile;
  });
}

function parseText(text: string, filePath: string, where: string): unknown {
  // A linear scan first: a file of 100,000 opening brackets is refused before a parser spends time (or stack) on it.
  if (flowDepthExceeds(text, 64)) throw new ProfileFileError(`${where}: nested deeper than ${MAX_DEPTH} levels`);
  const json = path.extname(filePath).toLowerCase() === '.json' || /^\s*\{/.test(text);
  try {
    if (json) return JSON.parse(text);
    // Aliases are bounded (a "billion laughs" file is refused, not expanded); duplicate keys are errors.
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0]?.line;
      throw new ProfileFileError(`${where}: not valid YAML${line ? ` (line ${line})` : ''}: ${e.code}`);
    }
    return doc.toJS({ maxAliasCount: 50 });
  } catch (e) {
    if (e instanceof ProfileFileError) throw e;
    if (e instanceof RangeError) throw new ProfileFileError(`${where}: nested too deeply to parse`);
    throw new ProfileFileError(`${where}: not valid ${json ? 'JSON' : 'YAML'} (${(e as Error).message.slice(0, 120)})`);
  }
}

/** Bracket nesting of the raw text (quotes ignored: a bound, not a parser). */
function flowDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return false;
}

/** Iterative (no recursion): true when `value` nests deeper than `max`. */
function depthExceeds(value: unknown, max: number): boolean {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  while (stack.length) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= max) return true;
    for (const child of Object.values(v as Record<string, unknown>)) stack.push({ v: child, d: d + 1 });
  }
  return false;
}

/** A profile that names its model must only set what that model accepts. */
function checkAgainstModel(profile: Profile, models: LiveModelTable, where: string): void {
  const model = profile.defaults.model;
  if (model === undefined) return;
  const choice = models.resolve(model);
  if (choice.fellBack) throw new ProfileFileError(`${where}: profile "${profile.name}": model "${model}" is not a known Live model`);
  const r = resolveSessionSetup({}, { ...profile, name: profile.name }, models);
  if (!r.ok) throw new ProfileFileError(`${where}: profile "${profile.name}": ${r.problem.error}`);
  const first = r.echo.not_applied[0];
  if (first) throw new ProfileFileError(`${where}: profile "${profile.name}": ${first.field}: not supported by ${choice.model} (${first.reason})`);
}

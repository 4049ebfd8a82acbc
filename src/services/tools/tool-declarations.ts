import { z } from 'zod';

/**
 * Function declarations a session may carry (issue 16 §1): `tools: [{ name, description, parameters, behavior? }]`.
 * Bounded before anything else looks at them: a stranger's declarations cost us one bounded parse, never a
 * deep recursion or a megabyte of schema sent upstream on every reconnect.
 */

/** Most function declarations per session. */
export const MAX_TOOLS = 32;
/** Gemini: starts with a letter or underscore; letters, digits, `_ . : -`; at most 128 characters (we keep 64). */
export const TOOL_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;
export const MAX_TOOL_DESCRIPTION_CHARS = 1_024;
/** JSON text of one declaration's `parameters` schema. */
export const MAX_TOOL_SCHEMA_BYTES = 8 * 1024;
/** Nesting of objects/arrays in one `parameters` schema. */
export const MAX_TOOL_SCHEMA_DEPTH = 8;
/** JSON text of all declarations of a session together. */
export const MAX_TOOLS_TOTAL_BYTES = 64 * 1024;

export type ToolBehaviorOption = 'blocking' | 'non_blocking';

/** Depth of nested objects/arrays (iterative: a hostile 10,000-deep value cannot overflow the stack). */
export function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    const depth = d + 1;
    if (depth > max) max = depth;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push({ v: child, d: depth });
  }
  return max;
}

const jsonSchemaObject = z
  .record(z.string(), z.unknown())
  .refine((s) => jsonDepth(s, MAX_TOOL_SCHEMA_DEPTH) <= MAX_TOOL_SCHEMA_DEPTH, `must nest at most ${MAX_TOOL_SCHEMA_DEPTH} levels`)
  .refine((s) => Buffer.byteLength(JSON.stringify(s), 'utf8') <= MAX_TOOL_SCHEMA_BYTES, `must be at most ${MAX_TOOL_SCHEMA_BYTES} bytes of JSON`)
  .refine((s) => s.type === undefined || s.type === 'object' || s.type === 'OBJECT', 'must be a JSON Schema of type object');

export const toolDeclarationSchema = z.strictObject({
  name: z.string().regex(TOOL_NAME_PATTERN, 'must start with a letter or _ and use letters, digits, _ . : - (at most 64 characters)'),
  description: z.string().max(MAX_TOOL_DESCRIPTION_CHARS, `must be at most ${MAX_TOOL_DESCRIPTION_CHARS} characters`).optional(),
  parameters: jsonSchemaObject.optional(),
  behavior: z.enum(['blocking', 'non_blocking']).optional(),
});

export type ToolDeclaration = z.output<typeof toolDeclarationSchema>;

/**
 * `tools`: at most MAX_TOOLS (length checked before any element is parsed), unique names, and at most
 * MAX_TOOLS_TOTAL_BYTES of JSON together.
 */
export const toolsSchema = z
  .array(z.unknown())
  .max(MAX_TOOLS, `at most ${MAX_TOOLS} tools`)
  .pipe(z.array(toolDeclarationSchema))
  .refine((tools) => new Set(tools.map((t) => t.name)).size === tools.length, 'tool names must be unique')
  .refine((tools) => Buffer.byteLength(JSON.stringify(tools), 'utf8') <= MAX_TOOLS_TOTAL_BYTES, `must be at most ${MAX_TOOLS_TOTAL_BYTES} bytes of JSON together`);

import type { z } from 'zod';

/**
 * How a request that breaks its published schema is described to the client, shared by both transports' validators
 * (REST: src/middleware/request-body.ts, WebSocket: ws-client-messages.ts `validateClientMessage`).
 */

export type Issue = z.core.$ZodIssue;

/** A value the client did not really send: absent, `null` or the empty string (reported as MISSING_FIELD). */
export const isAbsent = (v: unknown): boolean => v === undefined || v === null || v === '';

/** The top-level field an issue is about (an unknown field names itself; `(body)` for the body as a whole). */
export function fieldOf(issue: Issue): string {
  if (issue.path.length) return String(issue.path[0]);
  if (issue.code === 'unrecognized_keys' && issue.keys.length) return issue.keys[0].slice(0, 64);
  return '(body)';
}

/** One issue in plain words ("must be a string"), after the field's name. */
export function describeIssue(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${issue.expected === 'object' || issue.expected === 'array' ? 'an' : 'a'} ${issue.expected}`;
    case 'too_small':
      return issue.origin === 'string' ? 'must not be empty' : `must be at least ${String(issue.minimum)}`;
    case 'too_big':
      return issue.origin === 'string' ? `must be at most ${String(issue.maximum)} characters` : `must be at most ${String(issue.maximum)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_union':
      return 'must be a number';
    case 'unrecognized_keys':
      return 'is not a known field';
    default:
      return 'is invalid';
  }
}

/**
 * Keys that reach an object's prototype when a body is copied by assignment (`out[k] = v` with `__proto__` sets the
 * copy's prototype, so a strict schema no longer sees the key and reads the smuggled values as inherited fields).
 * No request or message of ours has a field of these names, at any depth.
 */
export const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The path (`tools.0.__proto__`) of the first {@link PROTOTYPE_KEYS} key anywhere in a parsed JSON value, else
 * undefined. Iterative (no recursion); bodies and frames are already bounded in depth and size before they parse.
 */
export function findPrototypeKey(value: unknown): string | undefined {
  const stack: Array<{ v: unknown; path: string }> = [{ v: value, path: '' }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ v: item, path: `${path}${i}.` }));
      continue;
    }
    for (const key of Object.keys(v)) {
      if (PROTOTYPE_KEYS.has(key)) return `${path}${key}`;
      stack.push({ v: (v as Record<string, unknown>)[key], path: `${path}${key.slice(0, 64)}.` });
    }
  }
  return undefined;
}

import { z } from 'zod';
import { describeIssues } from '../session-setup/session-options';
import { AppError } from '../../util/app-error';
import type { ClientToolResponse } from './tool-call-ledger';

/** Most answers in one `tool_response` (a model asks for a handful at once). */
export const MAX_RESPONSES_PER_MESSAGE = 32;

/** One answer as a client sends it (WebSocket `tool_response.responses[]`, REST `responses[]`). */
export const toolResponseItemSchema = z.strictObject({
  id: z.string().min(1).max(256),
  /** The function's result, a JSON object (`{ "output": … }` or `{ "error": … }` by convention). */
  response: z.record(z.string(), z.unknown()),
  /** For non-blocking functions: how the model takes the answer (`silent`, `when_idle`, `interrupt`). */
  scheduling: z.enum(['silent', 'when_idle', 'interrupt']).optional(),
});

export const toolResponsesSchema = z
  .array(z.unknown())
  .min(1, 'at least one response')
  .max(MAX_RESPONSES_PER_MESSAGE, `at most ${MAX_RESPONSES_PER_MESSAGE} responses`)
  .pipe(z.array(toolResponseItemSchema));

/** Validates `responses` (400 naming the field); the ledger then checks ids and sizes. */
export function parseToolResponses(input: unknown): ClientToolResponse[] {
  if (input === undefined || input === null) throw new AppError(400, 'MISSING_FIELD', 'Missing required field: responses');
  const r = toolResponsesSchema.safeParse(input);
  if (r.success) return r.data;
  throw toolResponsesError(r.error.issues);
}

/** The 400 for `responses` that break their schema (`issues` relative to `responses`, or to a body holding it). */
export function toolResponsesError(issues: readonly z.core.$ZodIssue[]): AppError {
  const relative = issues.map((i) => (i.path[0] === 'responses' ? { ...i, path: i.path.slice(1) } : i));
  const p = describeIssues(relative, 'responses.');
  return new AppError(400, 'INVALID_FIELD', p.error.replace('Invalid session options', 'Invalid tool responses'), { fields: p.fields });
}

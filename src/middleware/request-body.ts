import type { z } from 'zod';
import { describeIssue, fieldOf, findPrototypeKey, isAbsent, type Issue } from '../contracts/field-issues';
import { AppError, Errors } from '../util/app-error';

/**
 * The one validator of HTTP request bodies: a route's body is checked against its published zod schema (the very
 * schema `/openapi.json` is generated from), and a body that breaks it is refused with our 400
 * `{success:false, error, code}` naming the field. Nothing else in a controller reads a raw body.
 */

/** A route's body: its published schema and, optionally, the route's own refusal for some fields. */
export interface BodyContract<S extends z.ZodObject> {
  schema: S;
  /**
   * The refusal for the first offending field (in the schema's field order), when the route answers it its own way
   * (e.g. `INVALID_SESSION_ID`); undefined falls back to MISSING_FIELD / INVALID_FIELD. `issues`: all of them.
   */
  refusal?: (field: string, issues: readonly Issue[], body: Record<string, unknown>) => AppError | undefined;
}

/** The body as an object: absent is `{}`, anything but a JSON object is a 400 `INVALID_BODY`. */
export function objectBody(raw: unknown): Record<string, unknown> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new AppError(400, 'INVALID_BODY', 'Request body must be a JSON object');
  return raw as Record<string, unknown>;
}

/**
 * Validates a request body against its contract and returns the schema's output. Refusals, in this order: not an
 * object (400 INVALID_BODY); a `__proto__` / `constructor` / `prototype` key at any depth (400 INVALID_FIELD naming
 * it); the first field (in the schema's order) the schema refuses: the route's own refusal, else 400 MISSING_FIELD
 * when it is absent, else 400 INVALID_FIELD saying why.
 */
export function parseRequestBody<S extends z.ZodObject>(contract: BodyContract<S>, raw: unknown): z.output<S> {
  const body = objectBody(raw);
  const hostile = findPrototypeKey(body);
  if (hostile !== undefined) {
    throw new AppError(400, 'INVALID_FIELD', `Invalid field ${hostile}: not an accepted field name`, { fields: [hostile] });
  }
  const r = contract.schema.safeParse(body);
  if (r.success) return r.data;
  throw refusalOf(contract, r.error.issues, body);
}

function refusalOf<S extends z.ZodObject>(contract: BodyContract<S>, issues: readonly Issue[], body: Record<string, unknown>): AppError {
  const order = Object.keys(contract.schema.shape);
  const rank = (field: string) => {
    const i = order.indexOf(field);
    return i === -1 ? order.length : i;
  };
  const field = issues.map(fieldOf).reduce((a, b) => (rank(b) < rank(a) ? b : a));
  const own = contract.refusal?.(field, issues, body);
  if (own) return own;
  if (isAbsent(body[field]) && field !== '(body)') return Errors.missingField(field);
  const issue = issues.find((i) => fieldOf(i) === field)!;
  return new AppError(400, 'INVALID_FIELD', `Invalid field ${field}: ${describeIssue(issue)}`, { fields: [field] });
}

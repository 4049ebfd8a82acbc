import type { z } from 'zod';
import type { BodyContract } from '../middleware/request-body';
import { describeIssues } from '../services/session-setup/session-options';
import { setupError } from '../services/session-setup/session-planner';
import { toolResponsesError } from '../services/tools/tool-responses';
import { AppError, Errors } from '../util/app-error';
import { fieldOf, isAbsent, type Issue } from './field-issues';
import { endSessionBody, startSessionBody, toolResponseBody, transcribeBody } from './rest';

/**
 * The REST routes' request contracts: each body's published schema (src/contracts/rest.ts, served in
 * /openapi.json) with the refusals our clients have always received for it. Controllers validate with these only.
 */

/** Every route answers a bad session id the same way: 400 MISSING_FIELD or INVALID_SESSION_ID. */
function sessionIdRefusal(field: string, _issues: readonly Issue[], body: Record<string, unknown>): AppError | undefined {
  if (field !== 'session_id') return undefined;
  return isAbsent(body.session_id) ? Errors.missingField('session_id') : Errors.invalidSessionId();
}

export const restRequests = {
  /** Options refused by the schema are one INVALID_FIELD naming all of them (as the session door words it). */
  startSession: {
    schema: startSessionBody,
    refusal: (field, issues, body) =>
      sessionIdRefusal(field, issues, body) ?? setupError(describeIssues(issues.filter((i) => fieldOf(i) !== 'session_id'))),
  },
  transcribe: { schema: transcribeBody, refusal: sessionIdRefusal },
  endSession: { schema: endSessionBody, refusal: sessionIdRefusal },
  toolResponse: {
    schema: toolResponseBody,
    refusal: (field, issues, body) => {
      if (field !== 'responses') return sessionIdRefusal(field, issues, body);
      return body.responses === undefined || body.responses === null ? Errors.missingField('responses') : toolResponsesError(issues.filter((i) => fieldOf(i) === 'responses'));
    },
  },
} satisfies Record<string, BodyContract<z.ZodObject>>;

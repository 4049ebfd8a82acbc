/**
 * The emulated model's function calls (issue 16 §7): it calls only functions the session declared (it declares
 * nothing on its own), waits for a `toolResponse` with exactly the ids it issued, then speaks a reply that uses
 * the answers. Outstanding calls belong to the model's session, so a connection that resumes it still expects
 * them; a fresh connection knows none (an answer to one closes with 1007, like the real service).
 */
import { invalid, isObject } from './protocol-error';
import type { Turn, TurnInput } from './scenario';

/** One answer as the client sent it. */
export interface ReceivedToolResponse {
  id: string;
  name: string | undefined;
  response: unknown;
  scheduling?: string;
}

/** Calls the model is waiting on, with the turn to finish once they are all answered. */
export interface OutstandingToolCalls {
  calls: { id: string; name: string; args: Record<string, unknown> }[];
  answers: Map<string, ReceivedToolResponse>;
  turn: Turn;
  input: TurnInput;
  /** Answered, cancelled or abandoned: no longer waited on. */
  settled: boolean;
}

/** The function names and search tool a setup declared. */
export function declaredTools(setup: Record<string, unknown>): { functions: Set<string>; googleSearch: boolean } {
  const functions = new Set<string>();
  let googleSearch = false;
  const tools = Array.isArray(setup.tools) ? setup.tools : [];
  for (const tool of tools) {
    if (!isObject(tool)) continue;
    if (tool.googleSearch !== undefined) googleSearch = true;
    for (const d of Array.isArray(tool.functionDeclarations) ? tool.functionDeclarations : []) {
      if (isObject(d) && typeof d.name === 'string') functions.add(d.name);
    }
  }
  return { functions, googleSearch };
}

/** `toolResponse.functionResponses`: a list of objects each with an `id` (the SDK refuses to send one without). */
export function parseToolResponse(body: unknown): ReceivedToolResponse[] {
  if (!isObject(body) || !Array.isArray(body.functionResponses) || body.functionResponses.length === 0) {
    return invalid('toolResponse.functionResponses missing');
  }
  return body.functionResponses.map((r: unknown) => {
    if (!isObject(r) || typeof r.id !== 'string' || r.id.length === 0) return invalid('toolResponse.functionResponses[].id missing');
    return {
      id: r.id,
      name: typeof r.name === 'string' ? r.name : undefined,
      response: r.response,
      ...(typeof r.scheduling === 'string' ? { scheduling: r.scheduling } : {}),
    };
  });
}

/** The reply once every call is answered: the scenario's own wording, or its reply followed by each answer. */
export function replyUsingAnswers(o: OutstandingToolCalls): string {
  const answers = o.calls.map((c) => ({ name: c.name, response: o.answers.get(c.id)?.response }));
  if (o.turn.replyWithToolResults) return o.turn.replyWithToolResults(answers);
  const said = answers.map((a) => `${a.name} says ${JSON.stringify(a.response ?? null).slice(0, 200)}`).join('; ');
  return `${o.turn.reply} ${said}`.trim();
}

/** Tokens the answers add to the prompt (`toolUsePromptTokenCount`): 1 per 4 characters of their JSON. */
export function toolUseTokens(o: OutstandingToolCalls): number {
  return Math.ceil(JSON.stringify([...o.answers.values()].map((a) => a.response ?? null)).length / 4);
}

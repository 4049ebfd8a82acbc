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
  /**
   * Non-blocking functions (models-and-setup.md §3): the model went on speaking after the call; each answer is
   * taken as its `scheduling` says (`INTERRUPT`, `WHEN_IDLE`, `SILENT`) and a new user turn does not withdraw it.
   */
  nonBlocking: boolean;
}

export type ToolBehaviorName = 'BLOCKING' | 'NON_BLOCKING';

/** How the model takes an answer to a non-blocking call: at once (cutting a reply short), after the reply, or silently. */
export type SchedulingName = 'INTERRUPT' | 'WHEN_IDLE' | 'SILENT';

/**
 * The functions (name → the behavior the model applies: the declaration's, else `defaultBehavior`, the model's) and
 * search tool a setup declared.
 */
export function declaredTools(
  setup: Record<string, unknown>,
  defaultBehavior: ToolBehaviorName = 'BLOCKING',
): { functions: Map<string, ToolBehaviorName>; googleSearch: boolean } {
  const functions = new Map<string, ToolBehaviorName>();
  let googleSearch = false;
  const tools = Array.isArray(setup.tools) ? setup.tools : [];
  for (const tool of tools) {
    if (!isObject(tool)) continue;
    if (tool.googleSearch !== undefined) googleSearch = true;
    for (const d of Array.isArray(tool.functionDeclarations) ? tool.functionDeclarations : []) {
      if (!isObject(d) || typeof d.name !== 'string') continue;
      functions.set(d.name, d.behavior === 'NON_BLOCKING' || d.behavior === 'BLOCKING' ? d.behavior : defaultBehavior);
    }
  }
  return { functions, googleSearch };
}

/**
 * The scheduling one `toolResponse` asks for, the most urgent of its answers: `INTERRUPT` over `WHEN_IDLE` over
 * `SILENT`; an answer without one is taken `WHEN_IDLE` (the emulator's reading: the docs name no default).
 */
export function schedulingOf(responses: ReceivedToolResponse[]): SchedulingName {
  const asked = responses.map((r) => (r.scheduling === 'INTERRUPT' || r.scheduling === 'SILENT' ? r.scheduling : 'WHEN_IDLE'));
  if (asked.includes('INTERRUPT')) return 'INTERRUPT';
  if (asked.includes('WHEN_IDLE')) return 'WHEN_IDLE';
  return 'SILENT';
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
export function replyUsingAnswers(o: OutstandingToolCalls, only?: ReceivedToolResponse[]): string {
  const calls = only ? o.calls.filter((c) => only.some((r) => r.id === c.id)) : o.calls;
  const answers = calls.map((c) => ({ name: c.name, response: o.answers.get(c.id)?.response }));
  if (o.turn.replyWithToolResults) return o.turn.replyWithToolResults(answers);
  const said = answers.map((a) => `${a.name} says ${JSON.stringify(a.response ?? null).slice(0, 200)}`).join('; ');
  // A non-blocking call's reply was spoken already (the model went on talking): only the answers are new.
  return o.nonBlocking ? said : `${o.turn.reply} ${said}`.trim();
}

/** Tokens the answers add to the prompt (`toolUsePromptTokenCount`): 1 per 4 characters of their JSON. */
export function toolUseTokens(o: OutstandingToolCalls): number {
  return Math.ceil(JSON.stringify([...o.answers.values()].map((a) => a.response ?? null)).length / 4);
}

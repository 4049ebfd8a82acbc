import type { Principal } from '../auth/principal';
import type { LiveModelTable } from '../models/live-model-table';
import type { ProfileStore } from '../profiles/profile-store';
import type { LiveSessionParams } from '../session/live-session';
import { SessionRegistry } from '../session/session-registry';
import type { UsageMeter } from '../usage/usage-meter';
import { AppError } from '../../util/app-error';
import type { Logger } from '../../util/logger';
import type { EffectiveSessionSetup, SetupEcho } from './effective-setup';
import { DEFAULT_SERVER_SETUP, resolveSessionSetup, type ServerSetupDefaults } from './resolve-session-setup';
import { parseSessionOptions, type SetupProblem } from './session-options';

export interface StartSessionInput {
  sessionId: unknown;
  /**
   * The per-session options as the client sent them (REST body / WebSocket message without the transport's own
   * fields): validated strictly, an unknown field is a 400 naming it.
   */
  options?: Record<string, unknown>;
}

/** A start that passed every check, not started yet. */
export interface PreparedSession {
  readonly params: LiveSessionParams;
  readonly setup: EffectiveSessionSetup;
  readonly echo: SetupEcho;
}

export interface SessionPlannerOptions {
  models: LiveModelTable;
  /** Named profiles (`default` holds the old server-wide instruction and voice). */
  profiles: ProfileStore;
  /** Server-wide values below every profile (default `DEFAULT_SERVER_SETUP`). */
  serverSetup?: ServerSetupDefaults;
  /** The owners' daily token budgets (none: no budget). */
  usage?: UsageMeter;
  logger: Logger;
}

/**
 * Everything a session start checks before anything changes: the id, the options (strict), the profile, the model
 * (into the effective setup), the owner's token budget. Refusals are client errors (400 naming the fields,
 * 429 `TOKEN_BUDGET_EXHAUSTED`); nothing is connected or replaced before they are known.
 */
export class SessionPlanner {
  constructor(private readonly o: SessionPlannerOptions) {}

  async plan(owner: Principal, input: StartSessionInput, transport: 'rest' | 'ws'): Promise<PreparedSession> {
    const sessionId = SessionRegistry.validateId(input.sessionId);
    const parsed = parseSessionOptions(normalizeLegacyOptions(input.options ?? {}));
    if (!parsed.ok) throw setupError(parsed.problem);
    const options = parsed.value;
    const profile = await this.o.profiles.get(options.profile ?? 'default');
    const resolved = resolveSessionSetup(options, profile, this.o.models, this.o.serverSetup ?? DEFAULT_SERVER_SETUP);
    if (!resolved.ok) throw setupError(resolved.problem);
    const { setup, echo } = resolved;
    if (this.o.usage) {
      const d = await this.o.usage.canStartSession(owner.id, owner.maxTokensPerDay);
      if (!d.allowed) throw new AppError(d.status, d.code, d.error, { retryAfterSec: d.retryAfterSec });
    }
    if (echo.model_fell_back) {
      this.o.logger.info({ requested: echo.requested_model, model: setup.model }, 'requested model is not a Live model; using the default');
    }
    const params: LiveSessionParams = {
      sessionId,
      owner,
      model: setup.model,
      requestedModel: echo.requested_model ?? undefined,
      responseModality: setup.responseModality,
      inputTranscription: setup.inputTranscription,
      outputTranscription: echo.output_transcription,
      transport,
      manualActivity: setup.vad?.mode === 'manual',
    };
    return { params, setup, echo };
  }
}

/** The client error for a setup refused before any upstream connection (always a 400 naming the fields). */
export function setupError(p: SetupProblem): AppError {
  return new AppError(p.status, p.code, p.error, { fields: p.fields });
}

/**
 * What older clients send, made to fit the strict schema: `null` means absent, `response_modality` is
 * case-insensitive ('AUDIO'), and 'true'/'false' strings are booleans. Anything else is the schema's to refuse.
 */
export function normalizeLegacyOptions(raw: Record<string, unknown>): Record<string, unknown> {
  // Built with fromEntries (own data properties): a `__proto__` key stays a key the strict schema refuses, never
  // the copy's prototype (whose fields the schema would read as if they had been sent).
  return Object.fromEntries(
    Object.entries(raw)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]): [string, unknown] => {
        if (k === 'response_modality' && typeof v === 'string') return [k, v.toLowerCase()];
        if ((k === 'input_transcription' || k === 'output_transcription') && (v === 'true' || v === 'false')) return [k, v === 'true'];
        return [k, v];
      }),
  );
}

import { AppError } from '../../util/app-error';

/**
 * Ends that have a code of their own (rather than SESSION_EXPIRED): the client must start a new session
 * (`audio_limit_reached`), or wait for the daily budget to reset (`token_budget_exhausted`).
 */
export function endedSessionError(reason: string, message: string): AppError | undefined {
  if (reason === 'audio_limit_reached') return new AppError(409, 'SESSION_AUDIO_LIMIT_REACHED', `${message}; start a new session`);
  if (reason === 'token_budget_exhausted') return new AppError(429, 'TOKEN_BUDGET_EXHAUSTED', message);
  return undefined;
}

import { AppError } from '../../util/app-error';

/** The three 401 answers (README "REST API"), with a `code` added. Bodies are exactly `{success:false, error, code}`. */
export const AuthErrors = {
  authRequired: () => new AppError(401, 'AUTH_REQUIRED', 'Access denied. No token provided.'),
  invalidApiKey: () => new AppError(401, 'INVALID_API_KEY', 'Invalid API key'),
  invalidToken: () => new AppError(401, 'INVALID_TOKEN', 'Invalid token'),
} as const;

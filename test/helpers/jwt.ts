import jwt from 'jsonwebtoken';
import { MIN_JWT_SECRET_LENGTH } from '../../src/services/auth/jwt';

/**
 * Issues an access token in the Sculptor AI backend's format (HS256, `{userId, username, type:'access'}`).
 * The tests' stand-in for that backend (the production tokens come from it; this server only verifies them).
 */
export function signAccessToken(
  secret: string,
  user: { userId: string | number; username: string },
  expiresIn: jwt.SignOptions['expiresIn'] = '7d',
): string {
  if (secret.length < MIN_JWT_SECRET_LENGTH) {
    throw new Error(`JWT secret must be at least ${MIN_JWT_SECRET_LENGTH} characters`);
  }
  return jwt.sign({ userId: user.userId, username: user.username, type: 'access' }, secret, {
    algorithm: 'HS256',
    expiresIn,
  });
}

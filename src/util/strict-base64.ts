import { AppError } from './app-error';

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/**
 * Strictly decodes client base64 (standard or URL-safe, optional `data:...;base64,` prefix, whitespace
 * ignored). Node's decoder silently skips bad characters; we refuse them with 400 instead.
 */
export function decodeBase64Strict(input: unknown, field: string): Buffer {
  if (typeof input !== 'string') throw new AppError(400, 'INVALID_FIELD', `Invalid field ${field}: must be a base64 string`);
  let s = input;
  if (s.startsWith('data:')) {
    const comma = s.indexOf(',');
    if (comma < 0 || !/;base64$/i.test(s.slice(0, comma))) {
      throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: data URL is not base64`);
    }
    s = s.slice(comma + 1);
  }
  if (/\s/.test(s)) s = s.replace(/\s+/g, '');
  if (s.length === 0) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: empty audio data`);
  const standard = B64_RE.test(s);
  if (!standard && !B64URL_RE.test(s)) {
    throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: not valid base64`);
  }
  const unpadded = s.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: truncated base64`);
  return Buffer.from(s, standard ? 'base64' : 'base64url');
}

/** Decoded size of a base64 string without decoding it (upper bound, for early size checks). */
export function base64DecodedLength(s: string): number {
  return Math.floor((s.length * 3) / 4);
}

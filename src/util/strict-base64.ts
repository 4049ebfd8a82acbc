import { AppError } from './app-error';

/** Per character code: 1 = both alphabets (A-Z a-z 0-9), 2 = standard only (+ /), 4 = URL-safe only (- _). */
const ALPHABET = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9]/.test(ch)) ALPHABET[c] = 1;
  else if (ch === '+' || ch === '/') ALPHABET[c] = 2;
  else if (ch === '-' || ch === '_') ALPHABET[c] = 4;
}

/**
 * Which alphabet `s` is written in: 'standard' (`^[A-Za-z0-9+/]*={0,2}$`), 'url' (`^[A-Za-z0-9_-]*$`) or null.
 * One pass over the string (the audio of every chunk goes through here; two regular expressions cost twice that).
 */
function alphabetOf(s: string): 'standard' | 'url' | null {
  let end = s.length;
  let pad = 0;
  while (end > 0 && s.charCodeAt(end - 1) === 61 /* = */) {
    end--;
    pad++;
  }
  let seen = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    const k = c < 128 ? ALPHABET[c]! : 0;
    if (k === 0) return null;
    seen |= k;
  }
  if ((seen & 6) === 6) return null; // both alphabets' own characters
  if (seen & 4) return pad === 0 ? 'url' : null;
  return pad <= 2 ? 'standard' : null;
}

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
  const alphabet = alphabetOf(s);
  if (!alphabet) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: not valid base64`);
  let unpadded = s.length;
  while (unpadded > 0 && s.charCodeAt(unpadded - 1) === 61) unpadded--;
  if (unpadded % 4 === 1) throw new AppError(400, 'INVALID_BASE64', `Invalid field ${field}: truncated base64`);
  return Buffer.from(s, alphabet === 'standard' ? 'base64' : 'base64url');
}

/** Decoded size of a base64 string without decoding it (upper bound, for early size checks). */
export function base64DecodedLength(s: string): number {
  return Math.floor((s.length * 3) / 4);
}

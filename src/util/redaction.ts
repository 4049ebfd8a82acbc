/**
 * Redaction of credentials from text that is logged or echoed (URLs, error messages, whole log lines).
 *
 * Everything here runs on attacker-controlled text (a URL is up to 16 KiB, a log line more), so every step is
 * linear in the input: the regular expressions below cannot backtrack more than a bounded amount per starting
 * position, and JWTs — whose shape (`eyJ…`.`…`.`…`) would need a backtracking pattern — are found by a scanner.
 * `test/security/redaction.test.ts` feeds each step 100 KB adversarial strings.
 */

/** A named, linear-time redaction step. */
export interface Redaction {
  readonly name: string;
  apply(text: string): string;
}

/**
 * `?token=` / `&key=` … values. Linear: the parameter names are literals, and the value class excludes the
 * `&`/`#` that would end it, with nothing after it that could fail (the greedy run is never given back).
 */
const URL_PARAMS = /([?&](?:token|key|access_token|api_key|apikey)=)[^&#]*/gi;
/** The same inside a serialized log line (JSON or pretty): values also stop at quotes, backslashes and spaces. */
const LINE_PARAMS = /([?&](?:token|key|access_token|api_key|apikey|auth|jwt)=)[^&#"\s\\]*/gi;
/** Our API keys. Linear: a literal prefix, then one class run with nothing after it. */
const API_KEYS = /ak_[0-9a-f]{8,}/gi;
/** Google API keys. Linear: a literal prefix, then one class run with nothing after it. */
const GOOGLE_KEYS = /AIza[0-9A-Za-z_-]{20,}/g;
/**
 * `Bearer <token>`. Starts only at the literal `Bearer`; the whitespace run is taken atomically (a lookahead
 * captures it, the backreference consumes it: the engine cannot give part of it back), so a `Bearer` followed by
 * a long run of spaces and no token fails at once instead of retrying every shorter run.
 */
const BEARER_TEXT = /(Bearer)(?=(\s+))\2\S+/gi;
const BEARER_LINE = /(Bearer)(?=(\s+))\2[^\s"\\]+/gi;

const isJwtChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x2d;

/**
 * Replaces every JWT-shaped token — `eyJ` followed by base64url, a dot, base64url, a dot, base64url (the same
 * matches as `/eyJ[\w-]+\.[\w-]+\.[\w-]+/g`) — with `[REDACTED_JWT]`, in one pass.
 *
 * Why it is linear: the pattern's runs are maximal (a dot is not a run character), so a candidate starting at
 * `eyJ` either matches exactly its three maximal runs or fails; and when it fails, every candidate starting inside
 * the runs it read fails the same way, so the scan resumes after them. Each character is read a bounded number
 * of times, where the regular expression re-reads the rest of a run from every `eyJ` in it (`eyJ` × 5,300 cost
 * ~90 ms per log line).
 */
export function redactJwts(text: string): string {
  let out = '';
  let copiedUpTo = 0;
  let i = text.indexOf('eyJ');
  while (i !== -1) {
    // Run 1: "eyJ" and at least one more run character.
    let p = i + 3;
    while (p < text.length && isJwtChar(text.charCodeAt(p))) p++;
    let matched = false;
    let resumeAt = p;
    if (p > i + 3 && p < text.length && text.charCodeAt(p) === 0x2e) {
      const run2 = p + 1;
      let q = run2;
      while (q < text.length && isJwtChar(text.charCodeAt(q))) q++;
      resumeAt = q;
      if (q > run2 && q < text.length && text.charCodeAt(q) === 0x2e) {
        const run3 = q + 1;
        let r = run3;
        while (r < text.length && isJwtChar(text.charCodeAt(r))) r++;
        if (r > run3) {
          out += text.slice(copiedUpTo, i) + '[REDACTED_JWT]';
          copiedUpTo = r;
          resumeAt = r;
          matched = true;
        }
      }
    }
    // A failed candidate: any "eyJ" inside the runs it read fails the same way (see above).
    i = text.indexOf('eyJ', matched ? resumeAt : Math.max(i + 1, resumeAt));
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

const regexStep = (name: string, re: RegExp, replacement: string): Redaction => ({
  name,
  apply: (text) => text.replace(re, replacement),
});

/** The steps of `redactText` (free text: error messages, close reasons), in order. */
export const TEXT_REDACTIONS: readonly Redaction[] = [
  regexStep('url-credential-params', URL_PARAMS, '$1[REDACTED]'),
  regexStep('api-keys', API_KEYS, 'ak_[REDACTED]'),
  regexStep('google-api-keys', GOOGLE_KEYS, '[REDACTED_GOOGLE_KEY]'),
  { name: 'jwts', apply: redactJwts },
  regexStep('bearer-tokens', BEARER_TEXT, '$1$2[REDACTED]'),
];

/** The steps of a log-line redactor (serialized JSON or pretty text), in order; values stop at quotes so JSON stays valid. */
export const LINE_REDACTIONS: readonly Redaction[] = [
  regexStep('line-credential-params', LINE_PARAMS, '$1[REDACTED]'),
  regexStep('api-keys', API_KEYS, 'ak_[REDACTED]'),
  regexStep('google-api-keys', GOOGLE_KEYS, '[REDACTED_GOOGLE_KEY]'),
  { name: 'jwts', apply: redactJwts },
  regexStep('line-bearer-tokens', BEARER_LINE, '$1$2[REDACTED]'),
];

/** Removes credentials from a URL before it is logged (`?token=`, `?key=`, `?access_token=`). */
export function redactUrl(url: string): string {
  return url.replace(URL_PARAMS, '$1[REDACTED]');
}

/** Removes anything that looks like one of our credentials from free text (error messages, reasons). */
export function redactText(text: string): string {
  let out = text;
  for (const step of TEXT_REDACTIONS) out = step.apply(out);
  return out;
}

/**
 * Replaces the literal `secrets` (the configured Gemini key, the JWT secret…; those shorter than 6 characters
 * are ignored) wherever they occur. Linear: plain substring search per secret, no regular expression.
 */
export function literalSecretsRedaction(secrets: readonly (string | undefined)[]): Redaction | undefined {
  const literal = [...new Set(secrets.filter((s): s is string => typeof s === 'string' && s.length >= 6))].sort((a, b) => b.length - a.length);
  if (!literal.length) return undefined;
  return {
    name: 'literal-secrets',
    apply: (text) => {
      let out = text;
      for (const s of literal) if (out.includes(s)) out = out.split(s).join('[REDACTED]');
      return out;
    },
  };
}

/**
 * Redacts a serialized log line (JSON or pretty text): credential query values, `ak_` keys, Google keys,
 * JWTs, bearer tokens, and the literal `secrets` given. The character classes stop at quotes and backslashes
 * so the JSON stays valid.
 */
export function createLineRedactor(secrets: readonly (string | undefined)[] = []): (line: string) => string {
  const literal = literalSecretsRedaction(secrets);
  const steps = literal ? [...LINE_REDACTIONS, literal] : LINE_REDACTIONS;
  return (line) => {
    let out = line;
    for (const step of steps) out = step.apply(out);
    return out;
  };
}

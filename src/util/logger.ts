import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths whose values must never be written to a log line. */
export const REDACT_PATHS = [
  'apiKey',
  'token',
  'key',
  'authorization',
  'password',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.apiKey',
  '*.token',
  '*.geminiApiKey',
  '*.jwtSecret',
];

/** Removes credentials from a URL before it is logged (`?token=`, `?key=`, `?access_token=`). */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:token|key|access_token|api_key|apikey)=)[^&#]*/gi, '$1[REDACTED]');
}

/** Removes anything that looks like one of our credentials from free text (error messages, reasons). */
export function redactText(text: string): string {
  return redactUrl(text)
    .replace(/ak_[0-9a-f]{8,}/gi, 'ak_[REDACTED]')
    .replace(/AIza[0-9A-Za-z_-]{20,}/g, '[REDACTED_GOOGLE_KEY]')
    .replace(/eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+/g, '[REDACTED_JWT]')
    .replace(/(Bearer\s+)\S+/gi, '$1[REDACTED]');
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Redacts a serialized log line (JSON or pretty text): credential query values, `ak_` keys, Google keys,
 * JWTs, bearer tokens, and the literal `secrets` given (the configured Gemini key, the JWT secret). The
 * character classes stop at quotes and backslashes so the JSON stays valid.
 */
export function createLineRedactor(secrets: readonly (string | undefined)[] = []): (line: string) => string {
  const literal = secrets.filter((s): s is string => typeof s === 'string' && s.length >= 6).map(escapeRe);
  const literalRe = literal.length ? new RegExp(literal.join('|'), 'g') : undefined;
  return (line) => {
    let out = line
      .replace(/([?&](?:token|key|access_token|api_key|apikey|auth|jwt)=)[^&#"\s\\]*/gi, '$1[REDACTED]')
      .replace(/ak_[0-9a-f]{8,}/gi, 'ak_[REDACTED]')
      .replace(/AIza[0-9A-Za-z_-]{20,}/g, '[REDACTED_GOOGLE_KEY]')
      .replace(/eyJ[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+/g, '[REDACTED_JWT]')
      .replace(/(Bearer\s+)[^\s"\\]+/gi, '$1[REDACTED]');
    if (literalRe) out = out.replace(literalRe, '[REDACTED]');
    return out;
  };
}

export interface LoggerOptions {
  level: string;
  pretty: boolean;
  /** Secret values that must never appear in a line (Gemini key, JWT secret), on top of the patterns. */
  secrets?: readonly (string | undefined)[];
  /** Where lines go instead of stdout (tests capture them); ignored with `pretty`. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const redactLine = createLineRedactor(opts.secrets);
  const base = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    base: { service: 'live-audio' },
    hooks: { streamWrite: redactLine },
  };
  if (opts.destination) return pino(base, opts.destination);
  if (opts.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l' } } });
  }
  return pino(base);
}

/** A logger that drops everything: the default in tests and library code that was given none. */
export const silentLogger: Logger = pino({ level: 'silent' });

import pino, { type DestinationStream, type Logger } from 'pino';
import { createLineRedactor } from './redaction';

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

export { createLineRedactor, redactText, redactUrl } from './redaction';

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

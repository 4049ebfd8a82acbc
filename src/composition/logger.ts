import type { DestinationStream } from 'pino';
import type { AppConfig } from '../config/config';
import { createLogger, type Logger } from '../util/logger';

/** The server's logger: the configured level and format, with every configured secret redacted. */
export function buildLogger(config: AppConfig, destination: DestinationStream | undefined): Logger {
  return createLogger({
    ...config.log,
    secrets: [
      config.gemini.apiKey,
      config.auth.jwtSecret,
      config.ops.metricsToken,
      config.webhook?.secret,
      config.cluster?.secret,
      redisPassword(config.cluster?.redisUrl),
    ],
    destination,
  });
}

/** The password in a Redis URL (kept out of logs), if any. */
function redisPassword(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const p = decodeURIComponent(new URL(url).password);
    return p || undefined;
  } catch {
    return undefined;
  }
}

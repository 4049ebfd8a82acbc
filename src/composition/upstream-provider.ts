import { type AppConfig, usesEmbeddedEmulator } from '../config/config';
import { DEMO_RETENTION, startGeminiLiveEmulator, type GeminiLiveEmulator } from '../emulator';
import { GeminiLiveProvider } from '../services/upstream/gemini-live-provider';
import type { UpstreamProvider } from '../services/upstream/upstream-types';
import type { Logger } from '../util/logger';

/** The upstream sessions open on: Gemini (or `GEMINI_BASE_URL`), or the in-process emulator in offline demo mode. */
export async function buildUpstreamProvider(
  config: AppConfig,
  logger: Logger,
  override: UpstreamProvider | undefined,
): Promise<{ provider: UpstreamProvider; emulator: GeminiLiveEmulator | undefined }> {
  if (override) return { provider: override, emulator: undefined };
  // A long-running process: the emulator keeps counters only (no PCM, bounded history), and sends like a busy
  // production server (a handle and usage in the same read as setupComplete).
  const emulator = usesEmbeddedEmulator(config)
    ? await startGeminiLiveEmulator({
        host: '127.0.0.1',
        port: 0,
        retention: DEMO_RETENTION,
        timing: 'eager',
        logger: logger.child({ component: 'emulator' }),
      })
    : undefined;
  const provider = new GeminiLiveProvider({
    apiKey: emulator ? 'emulator' : config.gemini.apiKey,
    baseUrl: emulator ? emulator.baseUrl : config.gemini.baseUrl,
    apiVersion: config.gemini.apiVersion,
    setupTimeoutMs: config.gemini.setupTimeoutMs,
    emulated: emulator !== undefined,
    logger,
  });
  return { provider, emulator };
}

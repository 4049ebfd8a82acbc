import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { createApp } from './app';
import { type AppConfig, usesEmbeddedEmulator } from './config/config';
import { startGeminiLiveEmulator, type GeminiLiveEmulator } from './emulator';
import { requireAuth } from './middleware/require-auth';
import { createFfmpegDecoderFactory } from './services/audio/ffmpeg-session-decoder';
import { resolveFfmpegPath } from './services/audio/ffmpeg-path';
import { createAuthenticator, ensureDevelopmentKey, type AuthService, type DevelopmentKey } from './services/auth';
import { LiveAudioService, type DecoderFactory } from './services/live-audio-service';
import { SessionRegistry } from './services/session/session-registry';
import { GeminiLiveProvider } from './services/upstream/gemini-live-provider';
import { ModelTable } from './services/upstream/model-table';
import type { ResilienceOptions } from './services/upstream/resilient-upstream';
import type { UpstreamProvider } from './services/upstream/upstream-types';
import { createLogger, type Logger } from './util/logger';

export const EMULATED_NOTICE =
  'Offline demo mode: no GEMINI_API_KEY is set, so replies come from the built-in Gemini Live emulator, not from Gemini.';

/** Test and embedding hooks; production uses none of them. */
export interface ServerOverrides {
  logger?: Logger;
  provider?: UpstreamProvider;
  decoders?: DecoderFactory;
  resilience?: Partial<ResilienceOptions>;
}

export interface LiveAudioServer {
  readonly config: AppConfig;
  readonly app: Express;
  readonly httpServer: http.Server;
  readonly service: LiveAudioService;
  readonly registry: SessionRegistry;
  readonly auth: AuthService;
  readonly logger: Logger;
  /** The in-process emulator in offline demo mode. */
  readonly emulator: GeminiLiveEmulator | undefined;
  /** The development key created on this start (print it once), if any. */
  readonly devKey: DevelopmentKey | null;
  listen(port?: number, host?: string): Promise<number>;
  /** Ends every session, closes sockets and child processes. */
  close(): Promise<void>;
}

/** The composition root: builds every service from the typed config and wires them together. */
export async function createLiveAudioServer(config: AppConfig, o: ServerOverrides = {}): Promise<LiveAudioServer> {
  const logger = o.logger ?? createLogger(config.log);
  const auth = createAuthenticator({
    apiKeys: config.auth.apiKeys,
    apiKeysFile: config.auth.apiKeysFile,
    jwtSecret: config.auth.jwtSecret,
    log: logger,
  });
  const devKey = auth.keyStore ? ensureDevelopmentKey({ store: auth.keyStore, nodeEnv: config.nodeEnv, log: logger }) : null;

  let emulator: GeminiLiveEmulator | undefined;
  let provider = o.provider;
  if (!provider) {
    if (usesEmbeddedEmulator(config)) {
      emulator = await startGeminiLiveEmulator({ host: '127.0.0.1', port: 0, logger: logger.child({ component: 'emulator' }) });
      provider = new GeminiLiveProvider({
        apiKey: 'emulator',
        baseUrl: emulator.baseUrl,
        apiVersion: config.gemini.apiVersion,
        setupTimeoutMs: config.gemini.setupTimeoutMs,
        emulated: true,
        logger,
      });
    } else {
      provider = new GeminiLiveProvider({
        apiKey: config.gemini.apiKey,
        baseUrl: config.gemini.baseUrl,
        apiVersion: config.gemini.apiVersion,
        setupTimeoutMs: config.gemini.setupTimeoutMs,
        logger,
      });
    }
  }

  const decoders =
    o.decoders ??
    createFfmpegDecoderFactory({
      ffmpegPath: resolveFfmpegPath({ explicitPath: config.audio.ffmpegPath, logger }).path,
      logger,
      maxChunkBytes: config.audio.maxChunkBytes,
    });

  const registry = new SessionRegistry(
    { maxPerUser: config.sessions.maxPerUser, maxGlobal: config.sessions.maxGlobal, tombstoneMs: config.sessions.tombstoneMs },
    logger,
  );
  const service = new LiveAudioService({
    registry,
    decoders,
    provider,
    models: new ModelTable(config.gemini.defaultModel, config.gemini.extraModels),
    logger,
    sessionMaxAgeMs: config.sessions.maxAgeMs,
    idleTimeoutMs: config.sessions.idleTimeoutMs,
    transcribeWaitMs: config.sessions.transcribeWaitMs,
    maxChunkBytes: config.audio.maxChunkBytes,
    systemInstruction: config.gemini.systemInstruction,
    voiceName: config.gemini.voiceName,
    logTranscripts: config.log.transcripts,
    resilience: o.resilience,
  });

  let ready = false;
  const app = createApp({
    service,
    requireAuth: requireAuth(auth, { log: logger }),
    logger,
    corsOrigins: config.cors.origins,
    allowLocalhostOrigins: !config.isProduction,
    jsonBodyLimit: config.audio.jsonBodyLimit,
    emulatedNotice: provider.emulated ? EMULATED_NOTICE : undefined,
    isReady: () => ready && !registry.isDraining,
  });
  const httpServer = http.createServer(app);

  return {
    config,
    app,
    httpServer,
    service,
    registry,
    auth,
    logger,
    emulator,
    devKey,
    async listen(port = config.port, host = config.host) {
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      ready = true;
      return (httpServer.address() as AddressInfo).port;
    },
    async close() {
      registry.startDraining();
      registry.endAll('server_shutdown', 'Server is shutting down');
      await new Promise<void>((resolve) => {
        if (!httpServer.listening) return resolve();
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
      await emulator?.stop();
    },
  };
}

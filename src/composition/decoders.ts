import type { AppConfig } from '../config/config';
import { chooseFfmpeg, type FfmpegIdentity } from '../services/audio/ffmpeg-path';
import { createFfmpegDecoderFactory } from '../services/audio/ffmpeg-session-decoder';
import type { DecoderFactory } from '../services/live-audio-service';
import type { Logger } from '../util/logger';

/** How long the server's start waits for the ffmpeg launcher (it then listens anyway; decoders fork in-process). */
const LAUNCHER_READY_WAIT_MS = 10_000;

/**
 * The audio decoders: browser WebM/Opus in-process (LIVE_AUDIO_WEBM_DECODER=in_process, the default), everything
 * else by ffmpeg processes (the system ffmpeg preferred; its path and version are logged once here).
 */
export async function buildDecoders(
  config: AppConfig,
  logger: Logger,
  override: DecoderFactory | undefined,
): Promise<{ decoders: DecoderFactory; ffmpeg: FfmpegIdentity | undefined }> {
  if (override) return { decoders: override, ffmpeg: undefined };
  const ffmpeg = await chooseFfmpeg({ explicitPath: config.audio.ffmpegPath, logger });
  const decoders = createFfmpegDecoderFactory({
    ffmpegPath: ffmpeg.path,
    logger,
    maxChunkBytes: config.audio.maxChunkBytes,
    reorderWaitMs: config.audio.reorderWaitMs,
    reorderMaxBytes: config.audio.reorderMaxBytes,
    stallMs: config.audio.decoderStallMs,
    restartsPerMinute: config.audio.decoderRestartsPerMinute,
    decoderNice: config.audio.decoderNice,
    poolSize: config.audio.decoderPoolSize,
    poolMaxAgeMs: config.audio.decoderPoolMaxAgeMs,
    useLauncher: config.audio.decoderLauncher,
    webmDecoder: config.audio.webmDecoder,
    decodeThreads: config.audio.decodeThreads,
    decodeThreadEntry: config.audio.decodeThreadEntry,
  });
  // The first sessions' decoders should not fork the server either: wait (bounded) for the launcher to be ready.
  if (decoders.launcher) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([decoders.launcher.whenReady(), new Promise<void>((resolve) => (timer = setTimeout(resolve, LAUNCHER_READY_WAIT_MS)))]);
    clearTimeout(timer);
    if (!decoders.launcher.available) logger.warn({ waitedMs: LAUNCHER_READY_WAIT_MS }, 'the ffmpeg launcher is not ready yet; decoders start in-process meanwhile');
  }
  return { decoders, ffmpeg };
}

import type { AppConfig } from '../config/config';
import { chooseFfmpeg, type FfmpegIdentity } from '../services/audio/ffmpeg-path';
import { createFfmpegDecoderFactory } from '../services/audio/ffmpeg-session-decoder';
import type { DecoderFactory } from '../services/live-audio-service';
import type { Logger } from '../util/logger';

/** The audio decoders: ffmpeg processes (the system ffmpeg preferred; its path and version are logged once here). */
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
    poolSize: config.audio.decoderPoolSize,
    poolMaxAgeMs: config.audio.decoderPoolMaxAgeMs,
    useLauncher: config.audio.decoderLauncher,
  });
  return { decoders, ffmpeg };
}

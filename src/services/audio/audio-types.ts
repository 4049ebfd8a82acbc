/** Shared types of the audio seam: what a client sends and what the upstream receives. */

/**
 * Formats a client may declare. The declaration is a hint: the container is taken from the bytes (WebM, Ogg,
 * MP4, WAV), and only `pcm` (raw samples, which carry no magic) is taken at its word.
 */
export type AudioFormat = 'webm' | 'ogg' | 'mp4' | 'wav' | 'pcm';
export const AUDIO_FORMATS: readonly AudioFormat[] = ['webm', 'ogg', 'mp4', 'wav', 'pcm'];

/** How a chunk is described by the client (REST body / WebSocket message). */
export interface ChunkDescriptor {
  format: AudioFormat;
  /** Only meaningful for `pcm` (s16le at this rate). Default 16000. */
  sampleRate?: number;
  /** Only meaningful for `pcm`. Default 1. */
  channels?: number;
  /**
   * WebM only: the bytes put a fresh decoder where another one stood (a session taken over: init segment, the open
   * Cluster's header, no blocks). The client's next chunk continues the stream from there and is written at once.
   */
  resumesStream?: boolean;
}

/** Output of every decoder: 16 kHz, mono, signed 16-bit little-endian PCM. */
export const UPSTREAM_SAMPLE_RATE = 16000;
export const UPSTREAM_BYTES_PER_MS = (UPSTREAM_SAMPLE_RATE * 2) / 1000; // 32

/** Reply audio from Gemini: 24 kHz mono s16le. */
export const REPLY_SAMPLE_RATE = 24000;

export * from './audio-types';
export * from './session-audio-decoder';
export * from './ebml';
export * from './wav';
export * from './wav-writer';
export * from './pcm-framer';
export * from './ffmpeg-path';
export { FfmpegPcmStream, summariseStderr } from './ffmpeg-stream';
export * from './ffmpeg-session-decoder';

import { parentPort } from 'node:worker_threads';
import { WebmOpusDecoder } from '../opus/webm-opus-decoder';
import { runDecodeThread } from './decode-thread';

// A decoding thread's entry point (started by DecodeThreads; nothing else imports this file).
//
// @evan/opus's native addon decodes every packet into one static output buffer shared by all threads of the process,
// so two threads decoding at once corrupt each other's audio (measured: two threads decoding the 22 s fixture at once
// gave audio that differed from the 7,680th byte on). Its wasm build, loaded
// by each thread for itself, shares nothing: a decoding thread takes it (this thread's copy of the environment only).
process.env.OPUS_FORCE_WASM = '1';
if (parentPort) runDecodeThread(parentPort, { 'webm-opus': () => new WebmOpusDecoder() });

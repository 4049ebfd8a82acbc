import { parentPort } from 'node:worker_threads';
import { WebmOpusDecoder } from '../opus/webm-opus-decoder';
import { runDecodeThread } from './decode-thread';

// A decoding thread's entry point (started by DecodeThreads; nothing else imports this file).
// (Its decoders are @evan/opus's wasm build, an instance per thread: see createLibopusDecoder.)
if (parentPort) runDecodeThread(parentPort, { 'webm-opus': (o) => new WebmOpusDecoder({ primed: o.primed }) });

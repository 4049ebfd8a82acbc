import { parentPort } from 'node:worker_threads';
import { createLibopusDecoder } from '../opus/opus-packet-decoder';
import { WebmOpusDecoder } from '../opus/webm-opus-decoder';
import { runDecodeThread } from './decode-thread';
import { startThreadMemoryProbe } from './thread-memory';

// A decoding thread's entry point (started by DecodeThreads; nothing else imports this file).
// (Its decoders are @evan/opus's wasm build, an instance per thread: see createLibopusDecoder.)
// The wasm decoder is compiled before the thread says it is ready, not on the first stream's first packet.
createLibopusDecoder().free();
if (parentPort) runDecodeThread(parentPort, { 'webm-opus': (o) => new WebmOpusDecoder({ primed: o.primed }) }, startThreadMemoryProbe());

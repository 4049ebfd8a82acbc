/**
 * One Opus decoder state: packets in, 16 kHz mono s16le out. libopus decodes at the rate and channel count it is
 * opened with (it band-limits and down-mixes internally), so no resampler is needed after it.
 */
export interface OpusPacketDecoder {
  /** Decodes one packet into 16 kHz mono s16le. Throws when the decoder rejects the packet (corrupt). */
  decode(packet: Uint8Array): Buffer;
  /** Forgets the decoding state (a new recording starts). */
  reset(): void;
  /** Releases the state; the decoder is not used afterwards. */
  free(): void;
}

/** Creates a decoder for one stream. */
export type OpusPacketDecoderFactory = () => OpusPacketDecoder;

/** The decoder class of @evan/opus's wasm build (`wasm/index.js`: a raw libopus instance, no wrapper). */
interface EvanWasmDecoder {
  decode(packet: ArrayBufferView): Uint8Array;
  /** opus_decoder_ctl; with no argument, the get form (OPUS_RESET_STATE takes none). */
  ctl(cmd: number, arg?: number): number;
  /** Frees its state in the wasm heap. */
  drop(): void;
}

type EvanWasm = { Decoder: new (opts: { channels: 1 | 2; sample_rate: 16000 }) => EvanWasmDecoder };

/** opus_defines.h: OPUS_RESET_STATE. */
const OPUS_RESET_STATE = 4028;

let evanWasm: EvanWasm | undefined;

/**
 * libopus through `@evan/opus`'s wasm build, opened at 16 kHz with 1 channel: a stereo stream is down-mixed by
 * libopus. Loaded on first use, once per thread.
 *
 * Not its native addon, although the package prefers it: the addon decodes every packet into one static buffer
 * shared by all threads of the process (`node/index.js` slices it after the call), so decoding threads corrupt each
 * other's audio (measured: two threads decoding the 22 s fixture at once differed from the 7,680th byte on). The wasm
 * build is an instance per thread, runs sandboxed (the bytes it parses come from strangers), and cost 10-30 % more
 * CPU per audio second here (2.4-2.7 against 1.9-2.4 ms, load 9-11). One build everywhere also means one output
 * whatever thread decodes (the two builds round differently).
 */
export function createLibopusDecoder(): OpusPacketDecoder {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at import (it compiles a wasm module)
  evanWasm ??= require('@evan/opus/wasm/index.js') as EvanWasm;
  let dec: EvanWasmDecoder | undefined = new evanWasm.Decoder({ channels: 1, sample_rate: 16000 });
  return {
    decode(packet) {
      if (!dec) throw new Error('opus decoder already freed');
      const out = dec.decode(packet);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
    reset() {
      dec?.ctl(OPUS_RESET_STATE);
    },
    free() {
      dec?.drop();
      dec = undefined;
    },
  };
}

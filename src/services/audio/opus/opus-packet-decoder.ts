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

interface EvanDecoder {
  decode(packet: ArrayBufferView): Uint8Array;
  reset(): void;
  /** Only the wasm build has it (the native one is released by the garbage collector). */
  drop?: () => void;
}

type EvanOpus = { Decoder: new (opts: { channels: 1 | 2; sample_rate: 16000 }) => EvanDecoder };

let evanOpus: EvanOpus | undefined;

/**
 * libopus through `@evan/opus` (its prebuilt native addon, else its own wasm build; `OPUS_FORCE_WASM=1` forces the
 * wasm one), opened at 16 kHz with 1 channel: a stereo stream is down-mixed by libopus. Loaded on first use.
 */
export function createLibopusDecoder(): OpusPacketDecoder {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at import (it loads a native addon)
  evanOpus ??= require('@evan/opus') as EvanOpus;
  let dec: EvanDecoder | undefined = new evanOpus.Decoder({ channels: 1, sample_rate: 16000 });
  return {
    decode(packet) {
      if (!dec) throw new Error('opus decoder already freed');
      const out = dec.decode(packet);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
    reset() {
      dec?.reset();
    },
    free() {
      dec?.drop?.();
      dec = undefined;
    },
  };
}

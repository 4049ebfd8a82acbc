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

type DecoderClass = EvanOpus['Decoder'];
type DecodeFn = (dec: EvanDecoder, packet: ArrayBufferView) => Uint8Array;

let evanOpus: { Decoder: DecoderClass; decode: DecodeFn } | undefined;

/**
 * The packet → PCM bytes call of @evan/opus's Decoder class. Its native build wraps the addon's class once per
 * evaluation of its loader (`decode(buf) { return shared.slice(0, super.decode(buf)) }`) and mutates the addon's
 * exports, which Node caches per process: a second evaluation in the same process (a test runner's fresh module
 * registry per file) wraps the wrapper, whose `decode` then returns nothing. So the wrapper right above the
 * native class (the last class down the prototype chain that has its own `decode` but one) is called directly. With
 * one evaluation, or with the wasm build (one class), that is what `decode` is anyway.
 */
function packetDecodeOf(top: DecoderClass): DecodeFn {
  const own: Array<{ prototype: { decode: (p: ArrayBufferView) => Uint8Array } }> = [];
  for (let c: unknown = top; typeof c === 'function' && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    const proto = (c as { prototype?: object }).prototype;
    if (proto && Object.prototype.hasOwnProperty.call(proto, 'decode')) own.push(c as (typeof own)[number]);
  }
  const wrapper = own.length >= 2 ? own[own.length - 2]! : undefined;
  return wrapper ? (dec, packet) => wrapper.prototype.decode.call(dec, packet) : (dec, packet) => dec.decode(packet);
}

/**
 * libopus through `@evan/opus` (its prebuilt native addon, else its own wasm build; `OPUS_FORCE_WASM=1` forces the
 * wasm one), opened at 16 kHz with 1 channel: a stereo stream is down-mixed by libopus. Loaded on first use.
 */
export function createLibopusDecoder(): OpusPacketDecoder {
  if (!evanOpus) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at import (it loads a native addon)
    const Decoder = (require('@evan/opus') as EvanOpus).Decoder;
    evanOpus = { Decoder, decode: packetDecodeOf(Decoder) };
  }
  return libopusDecoder(evanOpus.Decoder, evanOpus.decode);
}

/** A decoder of the given @evan/opus `Decoder` class (for tests: a class loaded by another module registry). */
export function libopusDecoderOf(Decoder: DecoderClass): OpusPacketDecoder {
  return libopusDecoder(Decoder, packetDecodeOf(Decoder));
}

function libopusDecoder(Decoder: DecoderClass, decode: DecodeFn): OpusPacketDecoder {
  let dec: EvanDecoder | undefined = new Decoder({ channels: 1, sample_rate: 16000 });
  return {
    decode(packet) {
      if (!dec) throw new Error('opus decoder already freed');
      const out = decode(dec, packet);
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

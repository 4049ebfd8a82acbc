/**
 * The libopus decoder of in-process WebM streams: 16 kHz mono out, corrupt packets rejected, and still right when
 * @evan/opus was loaded before by another module registry in the same process (its native loader then wraps its
 * class twice; a test runner does that for every test file of a worker).
 */
import { readVint } from '../../../src/services/audio/ebml';
import type * as DecoderModule from '../../../src/services/audio/opus/opus-packet-decoder';
import { LONG, loadChunks } from '../../helpers/fixtures';
import { blocksOf } from '../webm-layouts';

const packets = blocksOf(Buffer.concat(loadChunks(LONG))).blocks.slice(0, 20).map((b) => {
  const size = readVint(b.bytes, 1, false)!;
  return b.bytes.subarray(1 + size.length + 4);
});

function freshModule(): typeof DecoderModule {
  let mod: typeof DecoderModule | undefined;
  jest.isolateModules(() => {
    mod = jest.requireActual<typeof DecoderModule>('../../../src/services/audio/opus/opus-packet-decoder');
  });
  return mod!;
}

function decodeAll(mod: typeof DecoderModule): Buffer {
  const dec = mod.createLibopusDecoder();
  try {
    return Buffer.concat(packets.map((p) => Buffer.from(dec.decode(p))));
  } finally {
    dec.free();
  }
}

test('60 ms packets give 960 samples each at 16 kHz; a corrupt packet throws and the decoder goes on', () => {
  const mod = freshModule();
  const dec = mod.createLibopusDecoder();
  expect(dec.decode(packets[0]!).length).toBe(960 * 2);
  expect(() => dec.decode(Buffer.from([0xfa, 250, 1, 2, 3]))).toThrow();
  expect(dec.decode(packets[1]!).length).toBe(960 * 2);
  dec.reset();
  expect(dec.decode(packets[2]!).length).toBe(960 * 2);
  dec.free();
  expect(() => dec.decode(packets[3]!)).toThrow(/freed/);
});

test('the same PCM from an @evan/opus loaded again by another module registry of this process', () => {
  const mod = freshModule();
  const first = decodeAll(mod);
  expect(first.length).toBe(20 * 960 * 2);
  expect(first.some((b) => b !== 0)).toBe(true);
  // Each registry evaluates @evan/opus's loader again, and its native addon's exports are cached by Node: the class
  // is wrapped once more each time, and its own decode() then gives nothing (what every test file after the first
  // of a test worker sees).
  type Lib = { Decoder: new (o: { channels: 1; sample_rate: 16000 }) => { decode(p: Uint8Array): Uint8Array } };
  let lib: Lib | undefined;
  for (let i = 0; i < 2; i++) jest.isolateModules(() => (lib = jest.requireActual<Lib>('@evan/opus')));
  const hazard = new lib!.Decoder({ channels: 1, sample_rate: 16000 }).decode(packets[0]!).length;
  if (!process.env.OPUS_FORCE_WASM) expect(hazard).toBe(0);
  const again = mod.libopusDecoderOf(lib!.Decoder as Parameters<typeof mod.libopusDecoderOf>[0]);
  expect(Buffer.concat(packets.map((p) => Buffer.from(again.decode(p)))).equals(first)).toBe(true);
  again.free();
});

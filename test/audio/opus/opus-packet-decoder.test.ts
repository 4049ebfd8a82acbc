/**
 * The libopus decoder of in-process WebM streams (@evan/opus's wasm build): 16 kHz mono out, corrupt packets rejected,
 * the same output from a second module registry; and why not the package's native addon.
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

test('the same PCM from the decoder module loaded again by another module registry (its own wasm instance)', () => {
  const first = decodeAll(freshModule());
  expect(first.length).toBe(20 * 960 * 2);
  expect(first.some((b) => b !== 0)).toBe(true);
  expect(decodeAll(freshModule()).equals(first)).toBe(true);
});

test("why not @evan/opus's native addon: loaded by a second module registry of one process, its decode() gives nothing", () => {
  // Each registry evaluates the package's native loader again, and the addon's exports are cached by Node: the class
  // is wrapped once more each time, and its decode() then returns an empty buffer (what every test file after the
  // first of a test worker would see). Its output also lives in one static buffer shared by all threads. If this
  // test fails, the package changed: the native build may be worth measuring again (createLibopusDecoder).
  type Lib = { Decoder: new (o: { channels: 1; sample_rate: 16000 }) => { decode(p: Uint8Array): Uint8Array } };
  let lib: Lib | undefined;
  for (let i = 0; i < 2; i++) jest.isolateModules(() => (lib = jest.requireActual<Lib>('@evan/opus')));
  expect(new lib!.Decoder({ channels: 1, sample_rate: 16000 }).decode(packets[0]!).length).toBe(0);
});

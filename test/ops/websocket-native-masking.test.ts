/**
 * The server relays every chunk through `ws` twice: it unmasks each client frame (up to ~22 KB a second per WS
 * session) and, as the SDK's WebSocket client, masks each upstream frame (ten 4.3 KB messages a second per session).
 * `ws` does that in JavaScript unless its optional native helper `bufferutil` loads: 12x faster for a 4.3 KB mask and
 * 25x for a 16.5 KB unmask on this machine. These tests fail if the native build stops loading (a missing prebuild
 * for the platform: bufferutil then falls back to JavaScript silently) or if `ws` stops using it.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

const req = createRequire(__filename);

describe('WebSocket masking runs native code', () => {
  it("bufferutil's native build loads (not its JavaScript fallback)", () => {
    const native = req('bufferutil') as unknown;
    expect(native).not.toBe(req('bufferutil/fallback'));
    // And it masks correctly: XOR with the 4-byte key, from the given offset.
    const src = Buffer.from(Array.from({ length: 100 }, (_v, i) => i));
    const out = Buffer.alloc(110);
    const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
    (native as { mask(s: Buffer, m: Buffer, o: Buffer, off: number, len: number): void }).mask(src, key, out, 10, 100);
    for (let i = 0; i < 100; i++) expect(out[10 + i]).toBe(src[i]! ^ key[i % 4]!);
  });

  it("ws masks and unmasks large frames with it (the SDK's ws and the server's are the same module)", () => {
    // (Not exported by ws's package: loaded by its path, which is how ws itself loads it.)
    const bufferUtil = req(path.join(path.dirname(req.resolve('ws')), 'lib', 'buffer-util.js')) as { mask: (...a: unknown[]) => void; unmask: (...a: unknown[]) => void };
    expect(String(bufferUtil.mask)).toContain('bufferUtil.mask');
    expect(String(bufferUtil.unmask)).toContain('bufferUtil.unmask');
    // @google/genai resolves the same ws (no nested copy without the native helper).
    const sdkRequire = createRequire(req.resolve('@google/genai'));
    expect(sdkRequire.resolve('ws')).toBe(req.resolve('ws'));
  });
});

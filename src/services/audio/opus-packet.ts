/**
 * Duration of one Opus packet from its TOC byte (RFC 6716 §3.1), in milliseconds at 48 kHz.
 * `undefined` for packets that are not valid Opus framing (empty, or a code-3 packet with 0 frames or more
 * than 120 ms of audio).
 */
export function opusPacketDurationMs(packet: Uint8Array): number | undefined {
  if (packet.length === 0) return undefined;
  const toc = packet[0]!;
  const config = toc >> 3;
  let frameMs: number;
  if (config < 12) frameMs = [10, 20, 40, 60][config & 3]!; // SILK
  else if (config < 16) frameMs = config & 1 ? 20 : 10; // hybrid
  else frameMs = [2.5, 5, 10, 20][config & 3]!; // CELT
  let frames: number;
  switch (toc & 3) {
    case 0:
      frames = 1;
      break;
    case 1:
    case 2:
      frames = 2;
      break;
    default: {
      if (packet.length < 2) return undefined;
      frames = packet[1]! & 0x3f;
      if (frames === 0) return undefined;
    }
  }
  const ms = frames * frameMs;
  return ms > 120 ? undefined : ms;
}

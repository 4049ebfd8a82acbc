/**
 * The in-process reference decode: a whole WebM/Opus byte stream through the server's demuxer and one libopus
 * decoder in one go (16 kHz mono s16le, the OpusHead pre-skip dropped), as `referenceDecode` is ffmpeg's. A session
 * whose recording is decoded in-process (LIVE_AUDIO_WEBM_DECODER=in_process, the default) must give exactly this,
 * however its chunks were split, delayed or reordered.
 */
import { createLibopusDecoder } from '../../src/services/audio/opus/opus-packet-decoder';
import { WebmOpusDemuxer } from '../../src/services/audio/opus/webm-opus-demuxer';

export function inProcessDecode(bytes: Buffer): Buffer {
  const demuxer = new WebmOpusDemuxer();
  const decoder = createLibopusDecoder();
  demuxer.push(bytes);
  const out: Buffer[] = [];
  let drop = 0;
  try {
    for (let ev = demuxer.next(); ev; ev = demuxer.next()) {
      if (ev.kind === 'head') {
        decoder.reset();
        drop = Math.round(ev.track.preSkip / 3);
      } else if (ev.kind === 'packet') {
        let pcm = decoder.decode(ev.packet);
        const n = Math.min(drop, pcm.length >> 1);
        drop -= n;
        pcm = pcm.subarray(n * 2);
        out.push(Buffer.from(pcm));
      }
    }
  } finally {
    decoder.free();
  }
  return Buffer.concat(out);
}

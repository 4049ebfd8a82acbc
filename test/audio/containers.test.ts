/**
 * Containers sniffed from the bytes, codecs checked before ffmpeg: Firefox's Ogg/Opus and Safari's fragmented
 * MP4/AAC decode on one long-lived decoder per recording (fixtures made with ffmpeg from the committed speech source:
 * ffmpeg's pages and fragments, not the browsers'), whatever `format` says; FLAC, Vorbis, ALAC, MP3 and other codecs
 * are refused with AUDIO_UNSUPPORTED_CODEC without any ffmpeg process. Chrome's WebM stays byte-exact.
 */
import pino from 'pino';
import { createFfmpegDecoderFactory, type FfmpegSessionDecoder } from '../../src/services/audio/ffmpeg-session-decoder';
import { sniffContainer } from '../../src/services/audio/containers/sniff';
import { checkMp4Head } from '../../src/services/audio/containers/mp4-boxes';
import { checkOggHead } from '../../src/services/audio/containers/ogg-pages';
import { parseWebmHeader } from '../../src/services/audio/webm/webm-header';
import { opusPacketDurationMs } from '../../src/services/audio/opus-packet';
import { collect, rejection, waitFor } from './helpers';
import { ffmpegBinary, referenceDecode } from '../helpers/ffmpeg';
import { loadChunks } from '../helpers/fixtures';
import { encode, fmp4AacChunks, oggOpusChunks } from './encoded-fixtures';
import { LogCapture } from '../helpers/log-capture';

const created: FfmpegSessionDecoder[] = [];
afterEach(() => created.splice(0).forEach((d) => d.destroy()));

function setup(extra: { restartsPerMinute?: number } = {}) {
  const log = new LogCapture();
  const logger = pino({ level: 'debug' }, log);
  const factory = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', logger, ...extra });
  const dec = factory.create('containers');
  created.push(dec);
  const commandLines = () => log.lines().filter((l) => l.msg === 'ffmpeg started').map((l) => l.args as string);
  return { factory, dec, out: collect(dec), commandLines };
}

const ogg = oggOpusChunks();
const mp4 = fmp4AacChunks();
const webm = loadChunks('chromium-hello-1000ms');

describe('sniffing and head checks', () => {
  it('takes the container from the bytes', () => {
    expect(sniffContainer(webm[0]!)).toEqual({ container: 'webm', startsStream: true });
    expect(sniffContainer(webm[1]!)).toBeUndefined(); // a WebM continuation carries no magic
    expect(sniffContainer(ogg.chunks[0]!)).toEqual({ container: 'ogg', startsStream: true });
    expect(sniffContainer(ogg.chunks[1]!)).toEqual({ container: 'ogg', startsStream: false });
    expect(sniffContainer(mp4.chunks[0]!)).toEqual({ container: 'mp4', startsStream: true });
    expect(sniffContainer(mp4.chunks[1]!)).toEqual({ container: 'mp4', startsStream: false });
    expect(sniffContainer(encode(['-ac', '1', '-f', 'wav'], 0.1))).toEqual({ container: 'wav', startsStream: true });
  });

  it('accepts Opus in WebM and Ogg, AAC in MP4, and names what else it finds', () => {
    const head = parseWebmHeader(webm[0]!);
    expect(head.kind).toBe('ok');
    expect(checkOggHead(ogg.chunks[0]!).kind).toBe('opus');
    expect(checkMp4Head(mp4.chunks[0]!).kind).toBe('aac');
    expect(parseWebmHeader(encode(['-ac', '1', '-c:a', 'flac', '-f', 'matroska'], 1))).toEqual({ kind: 'unsupported_codec', codecs: ['A_FLAC'] });
    expect(parseWebmHeader(encode(['-ac', '1', '-c:a', 'libvorbis', '-f', 'webm'], 1))).toEqual({ kind: 'unsupported_codec', codecs: ['A_VORBIS'] });
    expect(checkOggHead(encode(['-ac', '1', '-c:a', 'libvorbis', '-f', 'ogg'], 1))).toEqual({ kind: 'unsupported_codec', codec: 'vorbis' });
    expect(checkOggHead(encode(['-ac', '1', '-c:a', 'flac', '-f', 'ogg'], 1))).toEqual({ kind: 'unsupported_codec', codec: 'flac' });
    expect(checkMp4Head(encode(['-ac', '1', '-c:a', 'alac', '-movflags', '+frag_keyframe+empty_moov', '-f', 'mp4'], 1))).toEqual({
      kind: 'unsupported_codec',
      codecs: ['alac'],
    });
    expect(checkMp4Head(encode(['-ac', '1', '-c:a', 'libmp3lame', '-movflags', '+frag_keyframe+empty_moov', '-f', 'mp4'], 1))).toEqual({
      kind: 'unsupported_codec',
      codecs: ['mp4a'], // mp4a, but object type 0x6B (MP3), not AAC
    });
  });

  it('reads Opus packet durations from the TOC byte', () => {
    expect(opusPacketDurationMs(Buffer.from([0xfb, 0x03]))).toBe(60); // CELT 20 ms, code 3, 3 frames (Chrome)
    expect(opusPacketDurationMs(Buffer.from([0x08]))).toBe(20); // SILK 20 ms
    expect(opusPacketDurationMs(Buffer.from([0x81]))).toBe(5); // CELT 2.5 ms x 2
    expect(opusPacketDurationMs(Buffer.from([0x03, 0x00]))).toBeUndefined(); // code 3, no frames
    expect(opusPacketDurationMs(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('decoding by container, whatever format says', () => {
  it('Ogg/Opus declared as webm: one ffmpeg forced to ogg/opus, continuation pages on the same process, exact PCM', async () => {
    const { factory, dec, out, commandLines } = setup();
    for (const c of ogg.chunks) expect(await dec.write(c, { format: 'webm' })).toMatch(/new_recording|in_order/);
    await dec.close();
    expect(out.errors).toEqual([]);
    expect(out.pcm().equals(referenceDecode(ogg.whole, ['-f', 'ogg']))).toBe(true);
    expect(factory.processesSpawned).toBe(1);
    expect(commandLines()[0]).toContain('-protocol_whitelist pipe -f ogg -c:a opus -i pipe:0');
    expect(dec.stats().container).toBe('ogg');
  });

  it('fragmented MP4/AAC declared as webm: forced to mp4/aac, fragments on the same process, exact PCM', async () => {
    const { factory, dec, out, commandLines } = setup();
    for (const c of mp4.chunks) await dec.write(c, { format: 'webm' });
    await dec.close();
    expect(out.errors).toEqual([]);
    expect(out.pcm().equals(referenceDecode(mp4.whole, ['-f', 'mp4']))).toBe(true);
    expect(factory.processesSpawned).toBe(1);
    expect(commandLines()[0]).toContain('-protocol_whitelist pipe -f mp4 -c:a aac -i pipe:0');
  });

  it("Chrome's WebM stays byte-exact (forced to webm/opus)", async () => {
    const { dec, out, commandLines } = setup();
    for (const c of webm) await dec.write(c, { format: 'ogg' }); // the declared format does not matter
    await dec.close();
    expect(out.pcm().equals(referenceDecode(Buffer.concat(webm)))).toBe(true);
    expect(commandLines()[0]).toContain('-f webm -c:a opus -i pipe:0');
  });

  it('continuations of Ogg and MP4 before their head are AUDIO_STREAM_NO_HEADER; a crash restarts primed with the head', async () => {
    const { factory, dec, out } = setup();
    expect((await rejection(dec.write(ogg.chunks[1]!, { format: 'webm' }))).code).toBe('AUDIO_STREAM_NO_HEADER');
    expect((await rejection(dec.write(mp4.chunks[2]!, { format: 'webm' }))).code).toBe('AUDIO_STREAM_NO_HEADER');
    expect(factory.processesSpawned).toBe(0);
    await dec.write(mp4.chunks[0]!, { format: 'webm' });
    await waitFor(() => out.pcm().length > 0);
    const errP = out.nextError();
    process.kill(dec.currentPid!, 'SIGKILL');
    expect((await errP).code).toBe('AUDIO_DECODER_CRASHED');
    const before = out.pcm().length;
    await dec.write(mp4.chunks[1]!, { format: 'webm' }); // no new head: the decoder restarts with ftyp+moov
    await dec.close();
    // AAC fragments are self-contained (default-base-is-moof): the second second decodes on the primed decoder.
    expect(out.pcm().length - before).toBeGreaterThan(30000);
    expect(dec.stats()).toMatchObject({ restarts: 1, spawns: 2 });
  });
});

describe('codecs refused before any ffmpeg', () => {
  it.each([
    ['FLAC in Matroska', () => encode(['-ac', '1', '-c:a', 'flac', '-f', 'matroska'], 2), /A_FLAC/],
    ['Vorbis in WebM', () => encode(['-ac', '1', '-c:a', 'libvorbis', '-f', 'webm'], 2), /A_VORBIS/],
    ['PCM in Matroska', () => encode(['-ac', '1', '-c:a', 'pcm_s16le', '-f', 'matroska'], 2), /A_PCM/],
    ['Vorbis in Ogg', () => encode(['-ac', '1', '-c:a', 'libvorbis', '-f', 'ogg'], 2), /vorbis/],
    ['FLAC in Ogg', () => encode(['-ac', '1', '-c:a', 'flac', '-f', 'ogg'], 2), /flac/],
    ['ALAC in MP4', () => encode(['-ac', '1', '-c:a', 'alac', '-movflags', '+frag_keyframe+empty_moov', '-f', 'mp4'], 2), /alac/],
    ['MP3 in MP4', () => encode(['-ac', '1', '-c:a', 'libmp3lame', '-movflags', '+frag_keyframe+empty_moov', '-f', 'mp4'], 2), /mp4a/],
  ])('%s → AUDIO_UNSUPPORTED_CODEC', async (_name, make, named) => {
    const { factory, dec } = setup();
    const bytes = make();
    for (const format of ['webm', 'wav', 'ogg', 'mp4'] as const) {
      const err = await rejection(dec.write(bytes, { format }));
      expect(err.code).toBe('AUDIO_UNSUPPORTED_CODEC');
      expect(err.message).toMatch(named);
    }
    expect(factory.processesSpawned).toBe(0);
  });
});

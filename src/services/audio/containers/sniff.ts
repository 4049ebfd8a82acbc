import { startsWithEbmlHeader } from '../ebml';
import { readOggPages, startsWithOgg } from './ogg-pages';
import { startsWithFtyp, startsWithMp4Fragment } from './mp4-boxes';

/** A container recognised from a chunk's first bytes, whatever the client said it was. */
export type SniffedContainer = 'webm' | 'ogg' | 'mp4' | 'wav';

export interface Sniffed {
  container: SniffedContainer;
  /** The chunk begins a stream (WebM EBML header, Ogg beginning-of-stream page, MP4 ftyp, WAV RIFF header). */
  startsStream: boolean;
}

/**
 * The container of a chunk from its magic bytes: EBML (`1A 45 DF A3`) → WebM/Matroska, `OggS` → Ogg, an `ftyp` box →
 * MP4 (and `moof`/`styp`/`sidx` → a continuation fragment of one), `RIFF....WAVE` → WAV. `undefined` when the chunk
 * starts with none of them (a WebM continuation, raw PCM, or bytes cut at an arbitrary offset).
 */
export function sniffContainer(chunk: Buffer): Sniffed | undefined {
  if (startsWithEbmlHeader(chunk)) return { container: 'webm', startsStream: true };
  if (startsWithOgg(chunk)) {
    const first = readOggPages(chunk, 1)[0];
    return { container: 'ogg', startsStream: !!first?.bos };
  }
  if (startsWithFtyp(chunk)) return { container: 'mp4', startsStream: true };
  if (startsWithMp4Fragment(chunk)) return { container: 'mp4', startsStream: false };
  if (chunk.length >= 12 && ['RIFF', 'RF64'].includes(chunk.toString('latin1', 0, 4)) && chunk.toString('latin1', 8, 12) === 'WAVE') {
    return { container: 'wav', startsStream: true };
  }
  return undefined;
}

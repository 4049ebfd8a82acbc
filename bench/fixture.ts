/**
 * The audio the load generator streams: a real Chromium MediaRecorder recording (test/fixtures/audio), looped as a
 * new MediaRecorder stream each time (chunk-000 with its WebM header again), plus what the emulator will hear in it:
 * where each chunk ends in audio time and where each utterance ends (same energy VAD as the emulator, on the PCM
 * the server's ffmpeg produces).
 */
import fs from 'node:fs';
import path from 'node:path';
import { EnergyVad } from '../src/emulator/energy-vad';
import { DEFAULT_SILENCE_DURATION_MS } from '../src/emulator/energy-vad';
import { referenceDecode } from '../test/helpers/ffmpeg';
import { FIXTURES_DIR, loadChunks } from '../test/helpers/fixtures';

export { FIXTURES_DIR };
export const DEFAULT_RECORDING = 'chromium-long-22s';
export const FALLBACK_RECORDING = 'chromium-hello-1000ms';

export function ffmpegPath(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolved at run time (an optional or CommonJS-only module)
  return (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
}

/** One utterance of a loop, in the loop's audio time (ms from the start of chunk-000). */
export interface Utterance {
  /** Last speech frame's end. */
  speechEndMs: number;
  /** When the emulator's VAD ends the turn (speech end + its silence window). */
  turnEndMs: number;
}

export interface Recording {
  name: string;
  chunks: Buffer[];
  /** Base64 of each chunk (what REST and WebSocket clients send). */
  base64: string[];
  /**
   * The first chunk once more, with another TrackUID: every other loop starts with it. A browser's new recording
   * never repeats the previous one's bytes, and the server drops a repeated chunk as a retry (`duplicate`): a loop
   * that repeated the same head would not be decoded at all.
   */
  altHeadBase64: string;
  timesliceMs: number;
  spokenText: string;
  /** Decoded audio time at the end of each chunk (ms, cumulative within one loop; prefix decodes). */
  chunkEndMs: number[];
  /** Audio length of one loop, ms. */
  loopMs: number;
  /** Utterances heard in the first loop (the session starts in silence). */
  firstLoop: Utterance[];
  /** Utterances heard in every later loop (times within that loop; one may end just after it, in the next loop's audio). */
  laterLoops: Utterance[];
  /** 16 kHz mono PCM of one loop. */
  pcm: Buffer;
}

export function recordingExists(name: string): boolean {
  return fs.existsSync(path.join(FIXTURES_DIR, name, 'meta.json'));
}

/** Loads a recording and analyses it (about a second of ffmpeg work). */
export function loadRecording(name = recordingExists(DEFAULT_RECORDING) ? DEFAULT_RECORDING : FALLBACK_RECORDING): Recording {
  const dir = path.join(FIXTURES_DIR, name);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { timesliceMs: number; spokenText: string };
  const chunks = loadChunks(name);
  if (chunks.length === 0) throw new Error(`no chunks in ${dir}`);
  const ff = ffmpegPath();
  const chunkEndMs: number[] = [];
  for (let i = 0; i < chunks.length; i++) {
    chunkEndMs.push(referenceDecode(Buffer.concat(chunks.slice(0, i + 1)), 'webm', ff).length / 32);
  }
  const pcm = referenceDecode(Buffer.concat(chunks), 'webm', ff);
  const loopMs = pcm.length / 32;
  const { firstLoop, laterLoops } = findUtterances(pcm, loopMs);
  return {
    name,
    chunks,
    base64: chunks.map((c) => c.toString('base64')),
    altHeadBase64: withOtherTrackUid(chunks[0]).toString('base64'),
    timesliceMs: meta.timesliceMs,
    spokenText: meta.spokenText,
    chunkEndMs,
    loopMs,
    firstLoop,
    laterLoops,
    pcm,
  };
}

/** A copy of a WebM head chunk whose TrackUID's last byte differs (the audio is untouched). */
export function withOtherTrackUid(head: Buffer): Buffer {
  const at = head.indexOf(Buffer.from([0x73, 0xc5]));
  if (at < 0) throw new Error('no TrackUID in the recording head');
  const sizeByte = head[at + 2];
  if (!(sizeByte & 0x80)) throw new Error('unexpected TrackUID size');
  const last = at + 3 + (sizeByte & 0x7f) - 1;
  const copy = Buffer.from(head);
  copy[last] ^= 0x01;
  return copy;
}

/** Runs the emulator's VAD over three loops of the PCM: loop 0 as heard first, loop 1 as heard in every later loop. */
export function findUtterances(pcm: Buffer, loopMs: number, silenceDurationMs = DEFAULT_SILENCE_DURATION_MS): { firstLoop: Utterance[]; laterLoops: Utterance[] } {
  const vad = new EnergyVad({ silenceDurationMs });
  const events = vad.push(Buffer.concat([pcm, pcm, pcm]), 16000);
  const firstLoop: Utterance[] = [];
  const laterLoops: Utterance[] = [];
  for (const e of events) {
    if (e.type !== 'turnEnd') continue;
    const end = e.startMs + e.speechMs;
    const u = (offset: number): Utterance => ({ speechEndMs: end - offset, turnEndMs: e.atMs - offset });
    if (end <= loopMs) firstLoop.push(u(0));
    else if (end <= 2 * loopMs) laterLoops.push(u(loopMs));
  }
  return { firstLoop, laterLoops };
}

/**
 * The chunk schedule of one session: global chunk n (n = loop * chunks + index) is sent at `n * timesliceMs` after
 * the session's first chunk, and carries audio up to `cumEndMs(n)`.
 */
export class ChunkPlan {
  constructor(readonly rec: Recording) {}

  get perLoop(): number {
    return this.rec.chunks.length;
  }

  chunkIndex(n: number): number {
    return n % this.perLoop;
  }

  /** What a client sends as global chunk n (odd loops start with the other head: see `altHeadBase64`). */
  base64(n: number): string {
    const i = this.chunkIndex(n);
    if (i === 0 && Math.floor(n / this.perLoop) % 2 === 1) return this.rec.altHeadBase64;
    return this.rec.base64[i];
  }

  /** Session audio time at the end of global chunk n. */
  cumEndMs(n: number): number {
    const loop = Math.floor(n / this.perLoop);
    return loop * this.rec.loopMs + this.rec.chunkEndMs[n % this.perLoop];
  }

  /** The global chunk holding session audio time `ms`. */
  chunkAt(ms: number): number {
    // A time exactly at a chunk's end belongs to that chunk.
    const loop = ms > 0 ? Math.ceil(ms / this.rec.loopMs) - 1 : 0;
    const within = ms - loop * this.rec.loopMs;
    let i = this.rec.chunkEndMs.findIndex((e) => e >= within);
    if (i < 0) i = this.perLoop - 1;
    return loop * this.perLoop + i;
  }

  /** The utterances a session that sends chunks 0..lastChunk can have answered, in order (session audio time). */
  utterances(lastChunk: number): (Utterance & { speechEndChunk: number; turnEndChunk: number })[] {
    const out: (Utterance & { speechEndChunk: number; turnEndChunk: number })[] = [];
    const loops = Math.floor(lastChunk / this.perLoop) + 1;
    for (let loop = 0; loop < loops; loop++) {
      const list = loop === 0 ? this.rec.firstLoop : this.rec.laterLoops;
      for (const u of list) {
        const speechEndMs = u.speechEndMs + loop * this.rec.loopMs;
        const turnEndMs = u.turnEndMs + loop * this.rec.loopMs;
        const turnEndChunk = this.chunkAt(turnEndMs);
        if (turnEndChunk > lastChunk) continue;
        out.push({ speechEndMs, turnEndMs, speechEndChunk: this.chunkAt(speechEndMs), turnEndChunk });
      }
    }
    return out;
  }
}

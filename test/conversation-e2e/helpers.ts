/**
 * Helpers of the issue 14 end-to-end suites: the whole server (REST and WebSocket → LiveAudioService → real
 * @google/genai SDK) against the Gemini Live emulator, with the seed of every random choice printed on failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { EmulatorTiming } from '../../src/emulator';
import type { LiveModelCapabilities } from '../../src/services/models';
import { frontendSessionId, sleep, type TestServer } from '../helpers/test-server';
import { prng } from '../ops/helpers';

export const API = '/api/v1/live-audio';

/** The suite's seed and the failure messages that carry it (one helper for every suite). */
export { suiteSeed, withSeed } from '../helpers/seed';


/** One option the model does NOT accept (for the UNSUPPORTED_FOR_MODEL refusals), and the field it names. */
export function unsupportedOption(c: LiveModelCapabilities): { field: string; value: unknown } {
  if (!c.voice) return { field: 'voice', value: 'Kore' };
  if (!c.transcriptionHints) return { field: 'custom_vocabulary', value: ['Sculptor'] };
  throw new Error('no unsupported option for this model');
}

/** A profiles file in a temp folder; `write` replaces its content (a new size, so the stat signature changes). */
export function profilesFile(initial: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-profiles-'));
  const file = path.join(dir, 'profiles.yaml');
  fs.writeFileSync(file, initial);
  return {
    file,
    write: (text: string) => fs.writeFileSync(file, text),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Rest {
  start(body: Record<string, unknown>): Promise<request.Response>;
  transcribe(sessionId: string, pcm: Buffer): Promise<request.Response>;
  status(sessionId: string): Promise<request.Response>;
  transcript(sessionId: string): Promise<request.Response>;
  usage(): Promise<request.Response>;
  end(sessionId: string): Promise<request.Response>;
}

export function rest(t: TestServer, key: string): Rest {
  const h = { 'X-API-Key': key, 'Content-Type': 'application/json' };
  return {
    start: (body) => request(t.url).post(`${API}/session/start`).set(h).send({ session_id: frontendSessionId(), ...body }),
    transcribe: (sessionId, pcm) =>
      request(t.url)
        .post(`${API}/transcribe`)
        .set(h)
        .send({ session_id: sessionId, audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000, channels: 1 }),
    status: (id) => request(t.url).get(`${API}/session/${id}/status`).set(h),
    transcript: (id) => request(t.url).get(`${API}/session/${id}/transcript`).set(h),
    usage: () => request(t.url).get(`${API}/usage`).set(h),
    end: (id) => request(t.url).post(`${API}/session/end`).set(h).send({ session_id: id }),
  };
}

/**
 * Streams PCM through REST in chunks of seeded random sizes (40–240 ms) after seeded random gaps (0–40 ms), one
 * request after the other (raw PCM carries no order of its own). Returns the answers in send order.
 */
export async function streamDisordered(r: Rest, sessionId: string, pcm: Buffer, seed: number, hooks: Record<number, () => void> = {}) {
  const rnd = prng(seed);
  const answers: request.Response[] = [];
  const pending = Object.entries(hooks)
    .map(([ms, fn]) => ({ ms: Number(ms), fn }))
    .sort((a, b) => a.ms - b.ms);
  let off = 0;
  while (off < pcm.length) {
    const ms = 40 + Math.floor(rnd() * 200);
    const end = Math.min(pcm.length, off + ms * 32);
    while (pending.length > 0 && pending[0]!.ms <= off / 32) pending.shift()!.fn();
    answers.push(await r.transcribe(sessionId, pcm.subarray(off, end)));
    off = end;
    await sleep(Math.floor(rnd() * 40));
  }
  for (const h of pending) h.fn();
  return answers;
}

export const TIMING_FROM_SEED = (seed: number): EmulatorTiming => (seed % 2 === 0 ? 'eager' : 'spaced');

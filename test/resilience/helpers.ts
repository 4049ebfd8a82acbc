/**
 * Helpers for the resilience suites that drive the whole server (REST → LiveAudioService → LiveSession →
 * ResilientUpstream → real @google/genai SDK) against the Gemini Live emulator.
 */
import request from 'supertest';
import { EMULATOR_TIMINGS, type EmulatorConnectionRecord, type EmulatorOptions, type EmulatorTiming, type FaultOptions, type GeminiLiveEmulator } from '../../src/emulator';
import type { ResilienceOptions } from '../../src/services/upstream/resilient-upstream';
import type { Logger } from '../../src/util/logger';
import { frontendSessionId, sleep, startTestServer, type TestServer } from '../helpers/test-server';

export const API = '/api/v1/live-audio';

/** Env that keeps the per-user rate limits out of the way of these suites (they stream many chunks quickly). */
export const NO_RATE_LIMITS: Record<string, string> = {
  LIVE_AUDIO_MAX_REQUESTS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_TRANSCRIPTIONS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_AUDIO_SECONDS_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_SESSION_CREATES_PER_MINUTE: '0',
  LIVE_AUDIO_MAX_REQUESTS_PER_IP_PER_MINUTE: '0',
};

/**
 * The emulator timings every resilience suite runs in: `spaced` (one write per message, the first handle after the
 * first turn) and `eager` (a handle and usage in the same TCP read as setupComplete, replies' ends coalesced), see
 * src/emulator/timing.ts.
 */
export const TIMINGS: readonly EmulatorTiming[] = EMULATOR_TIMINGS;

/**
 * The handle a connection issued at the end of its `turn`-th answered turn (1-based). With eager timing the
 * connection issued one more before it, with its setupComplete.
 */
export function handleAfterTurn(rec: EmulatorConnectionRecord, turn: number, timing: EmulatorTiming): string | undefined {
  return rec.handles[turn - 1 + (timing === 'eager' ? 1 : 0)];
}

/** The last handle a connection issued. */
export const latestHandle = (rec: EmulatorConnectionRecord): string | undefined => rec.handles[rec.handles.length - 1];

export async function startResilienceServer(
  opts: {
    faults?: FaultOptions;
    emulator?: EmulatorOptions;
    timing?: EmulatorTiming;
    resilience?: Partial<ResilienceOptions>;
    env?: Record<string, string>;
    logger?: Logger;
  } = {},
): Promise<TestServer> {
  return startTestServer({
    env: { LIVE_AUDIO_TRANSCRIBE_WAIT_MS: '0', ...NO_RATE_LIMITS, ...opts.env },
    emulator: { ...opts.emulator, ...(opts.timing ? { timing: opts.timing } : {}), ...(opts.faults ? { faults: opts.faults } : {}) },
    overrides: { ...(opts.resilience ? { resilience: opts.resilience } : {}), ...(opts.logger ? { logger: opts.logger } : {}) },
  });
}

/**
 * 16 kHz mono s16le "speech" the emulator's energy VAD turns into turns (tone, then silence, repeated), with a
 * sample counter mixed into every sample so that a lost, doubled or reordered stretch shows up in a byte compare.
 * Silence carries the counter at low level (RMS ~74, far below the VAD threshold of 500).
 */
export function patternPcm(totalMs: number, opts: { toneMs?: number; silenceMs?: number; startSample?: number } = {}): Buffer {
  const { toneMs = 800, silenceMs = 700, startSample = 0 } = opts;
  const n = (totalMs * 16000) / 1000;
  const period = ((toneMs + silenceMs) * 16000) / 1000;
  const toneN = (toneMs * 16000) / 1000;
  const out = Buffer.alloc(n * 2);
  for (let k = 0; k < n; k++) {
    const i = startSample + k;
    const marker = (i % 256) - 128;
    const tone = i % period < toneN ? Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)) : 0;
    out.writeInt16LE(tone + marker, k * 2);
  }
  return out;
}

/** Where two PCM streams first differ, in ms of 16 kHz audio (or null when identical). */
export function firstDifferenceMs(a: Buffer, b: Buffer): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return Math.round(i / 32);
  return a.length === b.length ? null : Math.round(n / 32);
}

/** Asserts the emulator received exactly `sent` (every sample once, in order), explaining a mismatch. */
export async function expectExactlyOnce(emu: GeminiLiveEmulator, sent: Buffer, waitMs = 5000): Promise<void> {
  await emu.waitFor(() => emu.receivedPcm().length >= sent.length, waitMs).catch(() => undefined);
  await sleep(150); // anything doubled would arrive now
  const got = emu.receivedPcm();
  const diff = firstDifferenceMs(got, sent);
  if (diff !== null) {
    throw new Error(
      `emulator received ${got.length / 32} ms, sent ${sent.length / 32} ms; first difference at ${diff} ms ` +
        `(connections: ${emu.connections.map((c) => `${c.id}:${c.audioBytes / 32}ms`).join(', ')})`,
    );
  }
}

export interface RestSession {
  id: string;
  headers: Record<string, string>;
  /** POSTs one PCM chunk (16 kHz mono) to /transcribe; returns the response. */
  send(pcm: Buffer): Promise<request.Response>;
  status(): Promise<any>;
}

export async function startRestSession(t: TestServer, body: Record<string, unknown> = {}): Promise<RestSession> {
  const headers = { 'X-API-Key': t.keys.alice, 'Content-Type': 'application/json' };
  const id = frontendSessionId();
  const r = await request(t.url).post(`${API}/session/start`).set(headers).send({ session_id: id, ...body });
  if (r.status !== 200) throw new Error(`session start failed: ${r.status} ${JSON.stringify(r.body)}`);
  return {
    id,
    headers,
    send: (pcm) =>
      request(t.url)
        .post(`${API}/transcribe`)
        .set(headers)
        .send({ session_id: id, audio_data: pcm.toString('base64'), format: 'pcm', sample_rate: 16000, channels: 1 }),
    status: async () => (await request(t.url).get(`${API}/session/${id}/status`).set(headers)).body.data,
  };
}

/**
 * Streams `pcm` in `chunkMs` chunks, one POST after the other, `gapMs` apart (faster than real time when
 * gapMs < chunkMs; turn detection runs on audio time, so turns are the same). Calls `at(ms)` hooks when the
 * audio time reaches them (e.g. to inject a fault mid-stream). Returns every response.
 */
export async function streamPcm(
  s: RestSession,
  pcm: Buffer,
  opts: { chunkMs?: number; gapMs?: number; at?: Record<number, () => void | Promise<void>> } = {},
): Promise<request.Response[]> {
  const { chunkMs = 100, gapMs = 25, at = {} } = opts;
  const size = chunkMs * 32;
  const hooks = Object.entries(at)
    .map(([k, fn]) => ({ ms: Number(k), fn }))
    .sort((a, b) => a.ms - b.ms);
  const out: request.Response[] = [];
  for (let off = 0; off < pcm.length; off += size) {
    const audioMs = off / 32;
    while (hooks.length > 0 && hooks[0].ms <= audioMs) await hooks.shift()!.fn();
    const r = await s.send(pcm.subarray(off, Math.min(off + size, pcm.length)));
    out.push(r);
    if (gapMs > 0) await sleep(gapMs);
  }
  for (const h of hooks) await h.fn();
  return out;
}

/** Polls the session status until `pred` holds. */
export async function waitForStatus(s: RestSession, pred: (st: any) => boolean, timeoutMs = 5000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await s.status();
    if (pred(st)) return st;
    if (Date.now() > deadline) throw new Error(`status condition not met within ${timeoutMs} ms: ${JSON.stringify(st)}`);
    await sleep(20);
  }
}

/**
 * Decoders run below the server's CPU priority (LIVE_AUDIO_DECODER_NICE, issue 13): the server's one event loop
 * relays every session, each ffmpeg one; at equal priority a contended CPU made the loop wait behind the decoders
 * it had just woken. Real ffmpeg processes (pooled and not) and a real spawned server; the nice value is read from
 * /proc (the setting is relative to the server's own nice value). The attacker's test: one key holder's recordings (every decoder he makes the server start) all run below
 * the server, so his decoding cannot take the CPU from the loop that serves everyone else.
 */
import fs from 'node:fs';
import os from 'node:os';
import request from 'supertest';
import { createFfmpegDecoderFactory, type FfmpegDecoderFactory } from '../../src/services/audio/ffmpeg-session-decoder';
import { collect, decoderPids, similarity, spawnedForAttack, waitFor } from './helpers';
import { ffmpegBinary, referenceDecode } from '../helpers/ffmpeg';
import { HELLO, loadChunks } from '../helpers/fixtures';

const hello = loadChunks(HELLO);
const refHello = referenceDecode(Buffer.concat(hello));

/** The nice value of a process (field 19 of /proc/<pid>/stat), undefined when it is gone. */
function niceOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return undefined;
  }
}

const ownNice = os.getPriority();

describe('decoder priority (in-process factory)', () => {
  const factories: FfmpegDecoderFactory[] = [];
  afterEach(async () => {
    await Promise.all(factories.splice(0).map((f) => f.close()));
    await waitFor(() => decoderPids().length === 0, 5000);
  });

  it.each([
    ['7 below the server with 7', 7],
    ['the server’s own with 0', 0],
  ])('pooled and session decoders run at %s', async (_name, decoderNice) => {
    if (ownNice + decoderNice > 19) throw new Error(`this test runs at nice ${ownNice}: cannot check ${decoderNice} below it`);
    const f = createFfmpegDecoderFactory({ ffmpegPath: ffmpegBinary(), webmDecoder: 'ffmpeg', poolSize: 1, decoderNice });
    factories.push(f);
    const d = f.create('s1');
    const out = collect(d);
    await waitFor(() => f.pool!.stats().ready === 1, 10_000);
    await d.write(hello[0], { format: 'webm' });
    const pids = decoderPids();
    expect(pids.length).toBeGreaterThanOrEqual(1);
    const expected = ownNice + decoderNice;
    for (const pid of pids) expect({ pid, nice: niceOf(pid) }).toEqual({ pid, nice: expected });
    for (const c of hello.slice(1)) await d.write(c, { format: 'webm' });
    await d.close();
    // Priority changes when the audio is decoded, never what: the output is still exact.
    expect(out.errors).toEqual([]);
    expect(out.pcm().length).toBe(refHello.length);
    expect(similarity(out.pcm(), refHello).snrDb).toBeGreaterThan(60);
  }, 30_000);
});

describe('decoder priority on a spawned server (attacker: one key holder starting recording after recording)', () => {
  const server = spawnedForAttack({ LIVE_AUDIO_WEBM_DECODER: 'ffmpeg', LIVE_AUDIO_DECODER_NICE: '9', LIVE_AUDIO_DECODER_POOL_SIZE: '1' });

  it('every decoder he makes the server start (warm or its own, three sessions at once) runs below the server', async () => {
    const s = server();
    const API = '/api/v1/live-audio';
    const h = { 'X-API-Key': s.keys.alice };
    const serverNice = niceOf(s.pid)!;
    expect(serverNice).toBe(ownNice);
    // (Read once they are up: between the fork and the server's setpriority a process is briefly at the server's.)
    const seen = new Set<number>();
    const look = () => {
      for (const pid of decoderPids(s.pid)) seen.add(pid);
    };
    const ids = ['prio_a', 'prio_b', 'prio_c'];
    for (const id of ids) expect((await request(s.url).post(`${API}/session/start`).set(h).send({ session_id: id })).status).toBe(200);
    for (const chunk of hello.slice(0, 3)) {
      const rs = await Promise.all(
        ids.map((id) => request(s.url).post(`${API}/transcribe`).set(h).send({ session_id: id, format: 'webm', audio_data: chunk.toString('base64') })),
      );
      for (const r of rs) expect(r.status).toBe(200);
      look();
    }
    // The pool refills (its starts are paced): its new process too.
    await waitFor(() => (look(), seen.size >= ids.length + 1), 10_000);
    await new Promise((r) => setTimeout(r, 200));
    const alive = [...seen].map((pid) => ({ pid, nice: niceOf(pid) })).filter((p) => p.nice !== undefined);
    expect(alive.length).toBeGreaterThanOrEqual(ids.length); // the sessions' decoders at least
    for (const p of alive) expect(p).toEqual({ pid: p.pid, nice: Math.min(19, serverNice + 9) });
    expect(niceOf(s.pid)).toBe(serverNice); // the server itself is untouched
    expect((await request(s.url).get('/health')).status).toBe(200);
    for (const id of ids) expect((await request(s.url).post(`${API}/session/end`).set(h).send({ session_id: id })).status).toBe(200);
  }, 60_000);
});

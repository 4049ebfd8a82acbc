/**
 * `npx tsx bench/decode-bomb.ts [--minutes 15]`: issue 11 row 4 with the default settings (audio budget 120 s a
 * minute, LIVE_AUDIO_MAX_REALTIME_FACTOR 2, 5 s burst) on a real spawned server: one POST of a WebM holding
 * `minutes` of Opus, then what reached the upstream (the emulator in this process), how fast, the server's RSS and
 * /health latency (probed every 50 ms on a fresh connection) until the stream is cut and 5 s after.
 */
import { startGeminiLiveEmulator } from '../src/emulator';
import { probeHealth, spawnServer } from '../test/helpers/spawned-server';
import { childProcesses } from '../test/ops/helpers';
import { opusWebmBomb } from '../test/security/audio-bombs';

const minutesArg = process.argv.indexOf('--minutes');
const minutes = minutesArg > 0 ? Number(process.argv[minutesArg + 1]) : 15;
const MB = 1024 * 1024;

async function main(): Promise<void> {
  const bomb = opusWebmBomb(minutes);
  const emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'] });
  const server = await spawnServer({ geminiBaseUrl: emu.baseUrl });
  const api = `${server.url}/api/v1/live-audio`;
  const headers = { 'X-API-Key': server.keys.alice, 'Content-Type': 'application/json' };
  try {
    await fetch(`${api}/session/start`, { method: 'POST', headers, body: JSON.stringify({ session_id: 'bomb' }) });
    const body = JSON.stringify({ session_id: 'bomb', audio_data: bomb.toString('base64') });
    await new Promise((r) => setTimeout(r, 500));
    const rssBefore = server.rss();
    const health = probeHealth(server.url);
    const t0 = performance.now();
    const samples: Array<{ t: number; audioS: number; rss: number; ffmpeg: number }> = [];
    let cutAt = 0;
    const post = await fetch(`${api}/transcribe`, { method: 'POST', headers, body });
    console.log(`POST of ${Math.round(bomb.length / 1024)} KB (${minutes} min of Opus): ${post.status} after ${(performance.now() - t0).toFixed(0)} ms`);
    while (performance.now() - t0 < 180_000) {
      const t = (performance.now() - t0) / 1000;
      samples.push({ t, audioS: emu.totalAudioBytes() / 32000, rss: server.rss(), ffmpeg: childProcesses(server.pid, 'ffmpeg').length });
      if (!cutAt) {
        const st = (await (await fetch(`${api}/session/bomb/status`, { headers })).json()) as { data: { audio: { budgetCuts: number } } };
        if (st.data.audio.budgetCuts > 0) cutAt = t;
      } else if (t > cutAt + 5) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const h = await health.stop();
    const rssMax = Math.max(...samples.map((s) => s.rss));
    const rate = samples.filter((s) => s.t > 6 && (!cutAt || s.t < cutAt - 0.5));
    const slope = rate.length > 1 ? (rate[rate.length - 1]!.audioS - rate[0]!.audioS) / (rate[rate.length - 1]!.t - rate[0]!.t) : NaN;
    const next = await fetch(`${api}/transcribe`, { method: 'POST', headers, body: JSON.stringify({ session_id: 'bomb', audio_data: bomb.subarray(0, 4096).toString('base64') }) });
    console.log(
      [
        `upstream audio: ${(emu.totalAudioBytes() / 32000).toFixed(2)} s (budget 120 s per minute)`,
        `cut after ${cutAt.toFixed(1)} s wall; pace after the burst ${slope.toFixed(2)}x real time`,
        `server RSS ${(rssBefore / MB).toFixed(1)} MB before, max +${((rssMax - rssBefore) / MB).toFixed(1)} MB, 5 s after the cut +${((server.rss() - rssBefore) / MB).toFixed(1)} MB`,
        `ffmpeg children at most ${Math.max(...samples.map((s) => s.ffmpeg))}, after the cut ${childProcesses(server.pid, 'ffmpeg').length}`,
        `/health: ${h.samples.length} probes, p99 ${h.p99Ms.toFixed(1)} ms, max ${h.maxMs.toFixed(1)} ms, failures ${h.failures}`,
        `next POST: ${next.status} ${JSON.stringify(await next.json()).slice(0, 120)} Retry-After ${next.headers.get('retry-after')}`,
      ].join('\n'),
    );
  } finally {
    await server.stop();
    await emu.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

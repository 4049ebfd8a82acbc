/**
 * `npx tsx bench/diagnose/thread-memory.ts [sessions=3000] [young_mb=default] [concurrency=50] [hold_s=0] [gap_ms=5]`:
 * what a decoding thread keeps of the soak's work, seen from inside the thread. In one process, one decoding thread
 * (`DecodeThreads`), `sessions` streams, `concurrency` at a time, each as a soak session: open, the recording's first
 * two chunks `gap_ms` apart, finish `gap_ms` later (a soak session lives ~0.2-2 s). Every 500 sessions: the thread's
 * own heap, external memory and array buffers, its collections (scavenges / full), and this process's RSS; at the
 * end the most array buffers seen (sampled every 100 ms). `young_mb`: the thread's young generation (default: the
 * server's; 48 scavenges as rarely as V8's own default did). Prints the load average. `hold_s`: the process waits
 * that long at the end, its thread still running, for probes from outside (gdb's malloc_info: bench/memory-probe.ts).
 */
import os from 'node:os';
import { loadChunks, LONG } from '../../test/helpers/fixtures';
import { DecodeThreads } from '../../src/services/audio/threads/decode-threads';
import { ThreadedPcmStream } from '../../src/services/audio/threads/threaded-pcm-stream';
import { readRssKb } from '../proc';
import { silentLogger } from '../../src/util/logger';

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

async function oneSession(threads: DecodeThreads, chunks: Buffer[], gapMs: number): Promise<number> {
  let bytes = 0;
  const s = ThreadedPcmStream.open(threads, 'webm-opus', { primed: false }, { logger: silentLogger, onPcm: (b) => (bytes += b.length), onFailure: (e) => { throw e; } }); // prettier-ignore
  if (!s) throw new Error('no decoding thread');
  await s.write(chunks[0]!);
  await new Promise((r) => setTimeout(r, gapMs));
  await s.write(chunks[1]!);
  await new Promise((r) => setTimeout(r, gapMs));
  await s.end(5000);
  return bytes;
}

async function main(): Promise<void> {
  const sessions = Number(process.argv[2] ?? 3000);
  const young = process.argv[3] && process.argv[3] !== 'default' ? Number(process.argv[3]) : undefined;
  const concurrency = Number(process.argv[4] ?? 50);
  const gapMs = Number(process.argv[6] ?? 5);
  const chunks = loadChunks(LONG);
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${sessions} sessions, ${concurrency} at a time, ${gapMs} ms apart, young generation ${young ?? "the server's default"} MB`);
  const threads = new DecodeThreads({ threads: 1, logger: silentLogger, ...(young !== undefined ? { maxYoungGenerationSizeMb: young } : {}) });
  threads.prestart();
  const report = async (n: number) => {
    const [m] = await threads.memory();
    if (!m) return console.log(`${n}: no answer`);
    console.log(`${String(n).padStart(6)} sessions: thread heap ${mb(m.heapUsed)}/${mb(m.heapTotal)}, external ${mb(m.external)}, arrayBuffers ${mb(m.arrayBuffers)}, scavenges ${m.scavenges}, full GCs ${m.fullGcs}; process RSS ${mb((readRssKb(process.pid) ?? NaN) * 1024)}`);
  };
  await new Promise((r) => setTimeout(r, 500));
  await report(0);
  // The thread's array buffers (live and dead not yet collected), sampled every 100 ms: the most seen.
  let peak = 0;
  const sampler = setInterval(() => void threads.memory().then(([m]) => (peak = Math.max(peak, m?.arrayBuffers ?? 0))), 100);
  const cpu0 = process.cpuUsage();
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < sessions) {
      next++;
      await oneSession(threads, chunks, gapMs);
      if (++done % 500 === 0) await report(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  console.log(`the thread's array buffers: at most ${mb(peak)} MB seen (sampled every 100 ms)`);
  console.log(`process CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms for ${sessions} sessions`);
  const holdS = Number(process.argv[5] ?? 0);
  if (holdS > 0) {
    console.log(`holding ${holdS} s (pid ${process.pid})`);
    await new Promise((r) => setTimeout(r, holdS * 1000));
  }
  await threads.close();
}

void main();

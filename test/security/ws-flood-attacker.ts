/**
 * The attacker of test/security/ws-preauth.test.ts, run as its own process (so that its busy write loops do not
 * delay the test's /health probes): keeps `concurrency` WebSockets without credentials flooding for `durationMs`
 * (seeded start jitter): each never reads a reply and writes `mode` frames until the server drops it, then the
 * attacker opens the next one. Prints one JSON line: `{ results: [{ upgraded, framesSent, endedAfterMs }] }`
 * (one entry per socket).
 *
 *   node --import tsx test/security/ws-flood-attacker.ts <http url> <tiny|nested> <concurrency> <durationMs> <seed>
 */
import { prng } from '../ops/helpers';
import { clientFrame, rawWsConnect, type RawWs } from '../helpers/raw-ws';

export interface FloodResult {
  /** The upgrade was accepted. */
  upgraded: boolean;
  /** Frames the kernel took from the attacker before the server closed the connection. */
  framesSent: number;
  /** When the TCP connection ended, ms after the flood began (null: still open at the deadline). */
  endedAfterMs: number | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One socket: upgrade without credentials, stop reading, write `batch` as fast as it is taken. */
async function floodUnread(url: string, batch: Buffer, framesPerBatch: number, maxMs: number): Promise<FloodResult> {
  let c: RawWs;
  try {
    c = await rawWsConnect(url, '/ws/live-audio');
  } catch {
    return { upgraded: false, framesSent: 0, endedAfterMs: null };
  }
  c.socket.pause();
  c.socket.on('error', () => undefined);
  const t0 = Date.now();
  let endedAt: number | null = null;
  void c.ended.then(() => (endedAt = Date.now()));
  while (endedAt === null && Date.now() - t0 < maxMs && !c.socket.destroyed) {
    if (!c.socket.write(batch)) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise((r) => (timer = setTimeout(r, Math.max(1, maxMs - (Date.now() - t0)))));
      await Promise.race([new Promise((r) => c.socket.once('drain', r)), c.ended, deadline]);
      clearTimeout(timer);
    } else {
      await new Promise((r) => setImmediate(r));
    }
  }
  const inKernel = Math.max(0, c.socket.bytesWritten - c.socket.writableLength);
  c.destroy();
  await c.ended;
  return { upgraded: true, framesSent: Math.floor((inKernel / batch.length) * framesPerBatch), endedAfterMs: endedAt === null ? null : endedAt - t0 };
}

async function main(): Promise<void> {
  const [url, mode, concurrencyArg, durationArg, seedArg] = process.argv.slice(2);
  const rand = prng(Number(seedArg));
  let batch: Buffer;
  let framesPerBatch: number;
  if (mode === 'tiny') {
    // 8192 frames of `{}` (8 bytes each on the wire) per write.
    const frames = Array.from({ length: 8192 }, () => clientFrame('{}'));
    batch = Buffer.concat(frames);
    framesPerBatch = frames.length;
  } else {
    // Two 2 MiB frames of `[[[[…]]]]` (just under the 2 MiB maxPayload, so they reach the server's own check).
    const n = (2 * 1024 * 1024 - 64) / 2;
    const nested = clientFrame('['.repeat(n) + ']'.repeat(n));
    batch = Buffer.concat([nested, nested]);
    framesPerBatch = 2;
  }
  const until = Date.now() + Number(durationArg);
  const results: FloodResult[] = [];
  await Promise.all(
    Array.from({ length: Number(concurrencyArg) }, async () => {
      await sleep(Math.floor(rand() * 200));
      while (Date.now() < until) results.push(await floodUnread(url, batch, framesPerBatch, 8_000));
    }),
  );
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}

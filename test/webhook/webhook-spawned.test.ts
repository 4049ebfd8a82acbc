import { spawn } from 'node:child_process';
import path from 'node:path';
import { startReceiver } from './receiver';

const ROOT = path.resolve(__dirname, '../..');

describe('attacker on a spawned process: a webhook receiver that hangs while sessions keep ending', () => {
  it('2,000 deliveries of 200 KB: enqueue never blocks, memory stays within the queue bound, the secret never printed', async () => {
    const rx = await startReceiver('host-secret-value', () => undefined); // accepts, reads, never answers
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/webhook/webhook-host.ts', rx.url, '2000', String(200 * 1024)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, number | string>);
      expect(code).toBe(0);
      const start = lines.find((l) => l.phase === 'start')!;
      const enqueued = lines.find((l) => l.phase === 'enqueued')!;
      const peakRss = Math.max(...lines.filter((l) => typeof l.rss === 'number').map((l) => l.rss as number));
      const end = lines.find((l) => l.phase === 'end')!;
      console.log(
        `webhook host: 2,000 × 200 KiB to a hanging receiver: enqueued in ${Number(enqueued.ms).toFixed(0)} ms, RSS +${((peakRss - (start.rss as number)) / 1048576).toFixed(1)} MiB at peak, ` +
          `waiting ${end.waiting} (${((end.waitingBytes as number) / 1048576).toFixed(1)} MiB), dropped ${end.dropped}`,
      );
      // 2,000 × 200 KB = 400 MB offered; the queue holds at most 16 MiB of bodies.
      expect(peakRss - (start.rss as number)).toBeLessThan(128 * 1024 * 1024);
      expect(end.waitingBytes as number).toBeLessThanOrEqual(16 * 1024 * 1024 + 2 * 2 * 205 * 1024);
      expect(end.dropped as number).toBeGreaterThan(1900);
      expect(enqueued.ms as number).toBeLessThan(10_000);
      expect(rx.received.length).toBeGreaterThan(0);
      expect(rx.received.every((r) => r.verified)).toBe(true);
      expect(out).not.toContain('host-secret-value');
    } finally {
      await rx.stop();
    }
  }, 60_000);
});

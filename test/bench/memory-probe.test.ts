import { spawn } from 'node:child_process';
import { readRssKb } from '../../bench/proc';
import { hasGdb, mallocTrim, readMallocInfo, readSmapsKinds } from '../../bench/memory-probe';

/**
 * The soak's memory probes read a real process: its smaps add up to its RSS, and glibc's view (through gdb) sees
 * memory a process freed but glibc kept, which malloc_trim gives back.
 */
describe('bench memory probes', () => {
  it("smaps by kind add up to the process's RSS", () => {
    const k = readSmapsKinds(process.pid)!;
    const rss = readRssKb(process.pid)!;
    expect(k.brkHeapKb + k.anonKb + k.codeKb + k.otherKb).toBe(k.totalKb);
    // Read a moment apart: within 5 %.
    expect(Math.abs(k.totalKb - rss)).toBeLessThan(rss * 0.05);
    expect(k.codeKb).toBeGreaterThan(0);
    expect(k.anonKb).toBeGreaterThan(0);
  });

  it("glibc's view of a process that freed 30 MB of small blocks: held, mostly free, and malloc_trim returns it", async () => {
    expect(hasGdb()).toBe(true);
    // 30 MB of 16 KB blocks (under the mmap threshold: from the main arena), one in every 64 kept so the arena
    // cannot shrink from its top, the rest freed.
    const script = `
      const keep = [];
      let blocks = Array.from({ length: 1920 }, () => Buffer.allocUnsafeSlow(16384).fill(1));
      blocks.forEach((b, i) => { if (i % 64 === 63) keep.push(b); });
      blocks = null;
      globalThis.gc();
      console.log('ready');
      setInterval(() => keep.length, 1000);
    `;
    const child = spawn(process.execPath, ['--expose-gc', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '', MALLOC_ARENA_MAX: '2' } });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
      });
      const info = (await readMallocInfo(child.pid!))!;
      expect(info.mainSystemBytes).toBeGreaterThan(25 * 1024 * 1024);
      expect(info.mainFreeBytes).toBeGreaterThan(20 * 1024 * 1024);
      expect(info.systemBytes).toBeGreaterThanOrEqual(info.mainSystemBytes);
      const before = readRssKb(child.pid!)!;
      expect(await mallocTrim(child.pid!)).toBe(true);
      expect(readRssKb(child.pid!)!).toBeLessThan(before - 15 * 1024);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});

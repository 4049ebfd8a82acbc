import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processAlive, prng } from '../ops/helpers';
import { rssOf } from '../helpers/spawned-server';

const ROOT = path.resolve(__dirname, '../..');

interface Answer {
  name: string;
  found: boolean;
  voice: string | null;
  profiles: number;
  lastError: string | null;
}

/** The host process: one request at a time, one JSON line per answer. */
class Host {
  private buf = '';
  private waiting: ((line: string) => void)[] = [];
  stderr = '';
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.waiting.shift()?.(line);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }
  next(timeoutMs = 20_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`host silent for ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`)), timeoutMs);
      this.waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  }
  async get(name: string): Promise<Answer> {
    const p = this.next();
    this.child.stdin!.write(`get ${name}\n`);
    return JSON.parse(await p) as Answer;
  }
}

describe('attacker on a spawned process: the profiles file replaced by garbage mid-run', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps answering with the last good profiles through 300 hostile rewrites; memory stays bounded', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'profiles-host-'));
    const file = path.join(dir, 'profiles.yaml');
    const good = (voice: string) => `profiles:\n  coach:\n    voice: ${voice}\n    greeting: Say hello.\n`;
    fs.writeFileSync(file, good('Kore'));
    child = spawn(process.execPath, ['--import', 'tsx', 'test/profiles/profile-host.ts', file], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const host = new Host(child);
    expect(await host.next(30_000)).toBe('ready');
    expect(await host.get('coach')).toMatchObject({ found: true, voice: 'Kore', lastError: null });

    const seed = Number(process.env.PROFILES_SEED ?? Date.now() % 1_000_000);
    const rand = prng(seed);
    const garbage: (() => string)[] = [
      () => Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rand() * 256))).toString('latin1'),
      () => `profiles:\n  x: ${'['.repeat(50_000)}`,
      () => `profiles:\n  coach:\n    description: ${'z'.repeat(300 * 1024)}\n`,
      () => '{"profiles": {"coach": {"voice": "Kore"',
      () => `profiles:\n  coach:\n    voice: NotAVoice\n`,
      () => `${Array.from({ length: 10 }, (_, i) => `a${i}: &a${i} [${i ? Array(10).fill(`*a${i - 1}`).join(',') : 'x,x,x,x,x,x,x,x,x,x'}]`).join('\n')}\nprofiles:\n  coach:\n    custom_vocabulary: *a9\n`,
    ];
    const voices = ['Puck', 'Charon', 'Kore', 'Leda'];
    let lastGood = 'Kore';
    const rss0 = rssOf(child.pid!);
    let peak = rss0;
    for (let i = 0; i < 300; i++) {
      const tmp = `${file}.tmp`;
      const isGood = rand() < 0.25;
      const voice = voices[Math.floor(rand() * voices.length)];
      fs.writeFileSync(tmp, isGood ? good(voice) : garbage[Math.floor(rand() * garbage.length)]());
      fs.renameSync(tmp, file);
      const a = await host.get('coach');
      if (isGood) lastGood = voice;
      if (a.voice !== lastGood || !a.found || a.profiles < 4) {
        throw new Error(`seed ${seed} step ${i}: expected coach=${lastGood}, got ${JSON.stringify(a)}`);
      }
      if (!isGood && a.lastError === null) throw new Error(`seed ${seed} step ${i}: a bad file was not reported`);
      peak = Math.max(peak, rssOf(child.pid!));
    }
    console.log(`profiles host: 300 rewrites (seed ${seed}), RSS before ${(rss0 / 1048576).toFixed(1)} MiB, peak +${((peak - rss0) / 1048576).toFixed(1)} MiB`);
    expect(processAlive(child.pid!)).toBe(true);
    // A stat-refused 300 KiB file is never read; nothing accumulates across rewrites.
    expect(peak - rss0).toBeLessThan(64 * 1024 * 1024);
    // Warnings name the problem, never dump the file.
    expect(host.stderr.length).toBeLessThan(300 * 600);
    expect(host.stderr).toContain('keeping the previous profiles');
  }, 120_000);
});

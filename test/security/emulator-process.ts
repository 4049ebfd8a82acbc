/**
 * The Gemini Live emulator in a process of its own (`src/emulator/emulator-cli.ts`), for the attack tests: its
 * reply synthesis (100-170 ms of CPU per turn) must run neither in the server under attack nor in the test process
 * that probes /health.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

export interface EmulatorProcess {
  baseUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function spawnEmulator(apiKey = 'test-gemini-key'): Promise<EmulatorProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/emulator/emulator-cli.ts', '--port', '0', '--api-key', apiKey, '--log-level', 'warn'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  let baseUrl = '';
  while (!baseUrl && Date.now() < deadline && child.exitCode === null) {
    const m = /^(http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(out);
    if (m) baseUrl = m[1]!;
    else await new Promise((r) => setTimeout(r, 50));
  }
  if (!baseUrl) {
    child.kill('SIGKILL');
    throw new Error(`emulator did not start:\n${out.slice(-2000)}`);
  }
  return {
    baseUrl,
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

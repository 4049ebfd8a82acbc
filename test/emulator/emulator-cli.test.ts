import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { EmulatorCliUsageError, parseEmulatorCliArgs } from '../../src/emulator/emulator-cli';
import { connectLive } from '../helpers/live-probe';

const ROOT = path.join(__dirname, '..', '..');

describe('emulator CLI', () => {
  it('parses its options', () => {
    const args = parseEmulatorCliArgs(
      ['--port', '0', '--frames', 'text', '--api-key', 'a', '--api-key', 'b'].concat(
        ['--scenario', 'short', '--fault', 'slow', '--fault', 'split'],
      ),
    );
    expect(args).toMatchObject({
      port: 0,
      host: '127.0.0.1',
      frames: 'text',
      apiKeys: ['a', 'b'],
      faults: { replyDelayMs: 2000, splitReplyParts: 4 },
    });
    expect(args.scenario?.name).toBe('short');
    expect(parseEmulatorCliArgs([]).port).toBe(9999);
    expect(() => parseEmulatorCliArgs(['--port', 'x'])).toThrow(EmulatorCliUsageError);
    expect(() => parseEmulatorCliArgs(['--fault', 'nope'])).toThrow('unknown fault nope');
    expect(() => parseEmulatorCliArgs(['--port'])).toThrow('--port needs a value');
    // Like a busy production server unless told otherwise.
    expect(parseEmulatorCliArgs([]).timing).toBe('eager');
    expect(parseEmulatorCliArgs(['--timing', 'spaced']).timing).toBe('spaced');
    expect(() => parseEmulatorCliArgs(['--timing', 'soon'])).toThrow('--timing must be spaced or eager');
  });

  it('prints its base URL, serves the SDK, and exits 0 on SIGTERM', async () => {
    const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
    const child = spawn(tsx, ['src/emulator/emulator-cli.ts', '--port', '0', '--log-level', 'silent'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const baseUrl = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.on('exit', (code) => reject(new Error(`CLI exited early with ${code}`)));
      });
      expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const probe = await connectLive({ baseUrl });
      probe.requireSession().sendRealtimeInput({ text: 'hello' });
      await probe.waitForTurnComplete();
      expect(probe.outputTranscript()).toContain('offline demo');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(await probe.waitForClose()).toMatchObject({ code: 1001 });
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    }
  });
});

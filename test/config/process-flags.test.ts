import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { START_ENV, START_NODE_FLAGS } from '../../src/config/process-flags';

const ROOT = path.join(__dirname, '..', '..');

/** `npm start`, the Docker image and the bench start the server alike (src/config/process-flags.ts). */
describe('process flags of the start script and the image', () => {
  it('npm start sets the allocator environment and passes the node flags', () => {
    const start = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
    const launch = start.split('&&').map((s) => s.trim()).find((s) => /\bnode\b/.test(s))!;
    const words = launch.split(/\s+/);
    const node = words.indexOf('node');
    const env = Object.fromEntries(words.slice(0, node).map((w) => w.split('=') as [string, string]));
    expect(env).toEqual(START_ENV);
    const flags = words.slice(node + 1, -1).filter((f) => f !== '--enable-source-maps');
    expect(flags).toEqual(START_NODE_FLAGS);
    expect(words.at(-1)).toBe('dist/backend-server.js');
  });

  it('the Docker image sets the same environment and runs node with the same flags', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
    for (const [k, v] of Object.entries(START_ENV)) expect(dockerfile).toMatch(new RegExp(`^ENV ${k}=${v}$`, 'm'));
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]) as string[];
    expect(cmd[0]).toBe('node');
    expect(cmd.slice(1, -1).filter((f) => f !== '--enable-source-maps')).toEqual(START_NODE_FLAGS);
    expect(cmd.at(-1)).toBe('dist/backend-server.js');
  });

  it('node accepts the flags (a misspelt one stops node: "bad option")', () => {
    const out = execFileSync(process.execPath, [...START_NODE_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
    expect(out).toBe('ok');
  });
});

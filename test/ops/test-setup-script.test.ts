/**
 * scripts/test-setup.sh (issue 12 item 8): a no-op when the suite's system tools are there; otherwise it says what
 * it will install and why and installs it with apt-get, as root directly or through passwordless sudo, and fails
 * with the command to run when it can do neither. Runs the real script with bash; `apt-get`, `sudo` and `id` are
 * stand-ins on a PATH of their own that record how they were called (and "install" by creating the command).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SCRIPT = path.resolve(__dirname, '../../scripts/test-setup.sh');
const BASH = '/bin/bash';

let dir: string;
let bin: string;
let calls: string;

function tool(name: string, body: string): void {
  fs.writeFileSync(path.join(bin, name), `#!${BASH}\n${body}\n`);
  fs.chmodSync(path.join(bin, name), 0o755);
}

/** A fake apt-get: logs its arguments; `install` creates each package's command in the fake bin. */
function fakeAptGet(exitCode = 0): void {
  tool(
    'apt-get',
    `echo "apt-get $*" >> ${calls}
if [ "${exitCode}" -ne 0 ]; then echo "E: Unable to locate package" >&2; exit ${exitCode}; fi
if [ "$1" = install ] || printf '%s\\n' "$@" | grep -qx install; then
  for a in "$@"; do case "$a" in chromium|ffmpeg|redis-server|nginx|gdb) printf '#!${BASH}\\nexit 0\\n' > ${bin}/$a; chmod +x ${bin}/$a;; esac; done
fi`,
  );
}

function run(env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  // No sbin folders: the machine's own redis-server/nginx must not count as installed in the fake PATH.
  const r = spawnSync(BASH, [SCRIPT], { env: { PATH: bin, TMPDIR: dir, TEST_SETUP_SBIN_DIRS: '', ...env }, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const recorded = () => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n') : []);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'test-setup-'));
  bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  calls = path.join(dir, 'calls.log');
  // The real tools the script (env, tail, rm) and the fake apt-get (grep, chmod) use.
  for (const t of ['env', 'tail', 'rm', 'grep', 'chmod']) fs.symlinkSync(spawnSync('/bin/sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim(), path.join(bin, t));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('on this machine (Chromium, ffmpeg, redis-server, nginx and gdb installed) it installs nothing', () => {
  fakeAptGet();
  const r = spawnSync(BASH, [SCRIPT], { env: { PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/nothing to install \(found chromium \(\/usr\/bin\/chromium\) ffmpeg \(\/usr\/bin\/ffmpeg\) redis-server \(\/usr\/bin\/redis-server\) nginx \(\/usr\/sbin\/nginx\) gdb \(\/usr\/bin\/gdb\)\)/);
  expect(recorded()).toEqual([]);
});

it('as root: says what it will install and why, installs the missing packages, then is a no-op', () => {
  fakeAptGet();
  tool('id', 'echo 0');
  const r = run();
  expect(r.code).toBe(0);
  expect(r.out).toContain('missing chromium ffmpeg redis-server nginx gdb; will install with apt-get:');
  expect(r.out).toMatch(/- chromium: the browser tests/);
  expect(r.out).toMatch(/- ffmpeg: the audio decoder/);
  expect(r.out).toMatch(/- redis-server: the cluster tests/);
  expect(r.out).toMatch(/- nginx: the cluster tests/);
  expect(r.out).toMatch(/- gdb: the soak's memory probes/);
  expect(r.out).toContain('installed chromium ffmpeg redis-server nginx gdb');
  expect(recorded()).toEqual(['apt-get update -qq', expect.stringMatching(/^apt-get install -y -qq --no-install-recommends .* chromium ffmpeg redis-server nginx gdb$/)]);
  const again = run();
  expect(again.code).toBe(0);
  expect(again.out).toContain('nothing to install');
  expect(recorded()).toHaveLength(2);
});

it('as a user with passwordless sudo: installs through `sudo -n`', () => {
  fakeAptGet();
  for (const present of ['ffmpeg', 'redis-server', 'nginx', 'gdb']) fs.writeFileSync(path.join(bin, present), `#!${BASH}\nexit 0\n`, { mode: 0o755 });
  tool('id', 'echo 1000');
  tool('sudo', `echo "sudo $*" >> ${calls}\n[ "$1" = -n ] || exit 1\nshift\n"$@"`);
  const r = run();
  expect(r.code).toBe(0);
  expect(r.out).toContain('missing chromium;');
  expect(recorded()).toEqual([
    'sudo -n true',
    'sudo -n apt-get update -qq',
    'apt-get update -qq',
    expect.stringMatching(/^sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install .* chromium$/),
    expect.stringMatching(/^apt-get install .* chromium$/),
  ]);
});

it('as a user without sudo: installs nothing and says what to run', () => {
  fakeAptGet();
  tool('id', 'echo 1000');
  const r = run();
  expect(r.code).toBe(1);
  expect(r.err).toContain('not root and no passwordless sudo');
  expect(r.err).toContain('sudo apt-get install -y --no-install-recommends chromium ffmpeg redis-server nginx gdb');
  expect(recorded()).toEqual([]);
});

it('a failing apt-get fails the setup with its output', () => {
  fakeAptGet(100);
  tool('id', 'echo 0');
  const r = run();
  expect(r.code).toBe(1);
  expect(r.err).toContain('E: Unable to locate package');
  expect(r.err).toContain('apt-get failed');
});

it('without apt-get (not Debian) it says what to install', () => {
  tool('id', 'echo 0');
  const r = run();
  expect(r.code).toBe(1);
  expect(r.err).toContain('install chromium ffmpeg redis-server nginx gdb yourself');
});

it('finds a daemon in an sbin folder that is not on PATH (nginx in /usr/sbin for a non-root user)', () => {
  fakeAptGet();
  tool('id', 'echo 1000');
  for (const present of ['chromium', 'ffmpeg', 'redis-server', 'gdb']) fs.writeFileSync(path.join(bin, present), `#!${BASH}\nexit 0\n`, { mode: 0o755 });
  const sbin = path.join(dir, 'sbin');
  fs.mkdirSync(sbin);
  fs.writeFileSync(path.join(sbin, 'nginx'), `#!${BASH}\nexit 0\n`, { mode: 0o755 });
  const r = run({ TEST_SETUP_SBIN_DIRS: sbin });
  expect(r.code).toBe(0);
  expect(r.out).toContain(`nginx (${sbin}/nginx)`);
  expect(recorded()).toEqual([]);
});

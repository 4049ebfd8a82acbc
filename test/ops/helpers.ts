import fs from 'node:fs';

/**
 * Child processes of `pid` whose command name is `name` (Linux /proc). The server's ffmpeg launcher (a Node child
 * running `launcher-entry`, LIVE_AUDIO_DECODER_LAUNCHER) is part of the server: its children (the ffmpeg decoders
 * it started) count as the server's, the launcher itself does not.
 */
export function childProcesses(pid: number, name?: string): number[] {
  const out: number[] = [];
  for (const child of directChildren(pid)) {
    if (child.comm === 'node' && isFfmpegLauncher(child.pid)) {
      for (const grandchild of directChildren(child.pid)) if (!name || grandchild.comm === name) out.push(grandchild.pid);
    } else if (!name || child.comm === name) {
      out.push(child.pid);
    }
  }
  return out;
}

/** The ffmpeg launcher of a server (see `childProcesses`), if it runs. */
export function ffmpegLauncherOf(pid: number): number | undefined {
  return directChildren(pid).find((c) => c.comm === 'node' && isFfmpegLauncher(c.pid))?.pid;
}

function isFfmpegLauncher(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('launcher-entry');
  } catch {
    return false;
  }
}

function directChildren(pid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...
      const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
      if (!m || Number(m[3]) !== pid || m[2] === 'Z') continue;
      out.push({ pid: Number(entry), comm: m[1]! });
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

/** True while `/proc/<pid>` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}



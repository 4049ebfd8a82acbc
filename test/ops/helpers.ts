import fs from 'node:fs';
import os from 'node:os';

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
  // Each thread's own children (Linux /proc/<pid>/task/<tid>/children): a few small reads instead of a stat of every
  // process on the machine. The attack tests call this every few ms, in the prioritised test process, while the
  // server they measure shares the CPU with it.
  const out: Array<{ pid: number; comm: string }> = [];
  for (const child of childPids(pid)) {
    try {
      const stat = fs.readFileSync(`/proc/${child}/stat`, 'utf8');
      // pid (comm) state ...
      const m = /^\d+ \((.*)\) (\S)/.exec(stat);
      if (!m || m[2] === 'Z') continue;
      out.push({ pid: child, comm: m[1]! });
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}

/** pids of the children of `pid` (every thread's), [] when it is gone. */
function childPids(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out = new Set<number>();
  for (const tid of tasks) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim()) out.add(Number(c));
    } catch {
      // the thread ended
    }
  }
  return [...out];
}

/**
 * Sets the nice value of a process as a whole: every thread of it and of its descendants running now (a server's
 * ffmpeg launcher and the decoders it runs). On Linux the nice value belongs to a thread, and `os.setPriority(pid)`
 * changes only the thread whose id is `pid` (the main thread): the process's other threads (libuv's pool, V8's
 * workers) keep theirs, and so does a child started before it (the launcher, started at boot, and every ffmpeg it
 * forks later). A child forked later inherits its forking thread's value, so the decoders a server or its launcher
 * starts afterwards get it too. Throws when it may not (raising a priority needs CAP_SYS_NICE).
 */
export function setProcessTreePriority(pid: number, nice: number): void {
  let tasks: string[] = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // gone
  }
  for (const tid of tasks) {
    try {
      os.setPriority(Number(tid), nice);
    } catch (err) {
      if ((err as { info?: { code?: string } }).info?.code !== 'ESRCH') throw err; // ended meanwhile: nothing to do
    }
  }
  for (const child of childPids(pid)) setProcessTreePriority(child, nice);
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

/** A random text of 0..maxLength-1 pieces drawn from `alphabet` (fuzzing scanners with their structural characters). */
export function randomText(rnd: () => number, alphabet: readonly string[], maxLength: number): Buffer {
  return Buffer.from(Array.from({ length: Math.floor(rnd() * maxLength) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join(''));
}



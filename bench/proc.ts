/**
 * Linux /proc readers: CPU time, RSS and PSS of a process and of its child processes (ffmpeg), open file
 * descriptors. Everything is read from outside the measured process, so the server needs no extra code.
 */
import fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux build we know of). */
const CLK_TCK = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime of the process itself, ms. */
  cpuMs: number;
  /** cutime + cstime: CPU of children that exited and were reaped, ms. */
  reapedChildrenCpuMs: number;
  /** Resident set, kB. */
  rssKb: number;
}

/** Parses /proc/<pid>/stat; undefined when the process is gone. */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  // Fields after "(comm)": index 0 is field 3 (state).
  const f = text.slice(close + 2).split(' ');
  const n = (field: number) => Number(f[field - 3]);
  return {
    pid,
    ppid: n(4),
    comm,
    cpuMs: ((n(14) + n(15)) * 1000) / CLK_TCK,
    reapedChildrenCpuMs: ((n(16) + n(17)) * 1000) / CLK_TCK,
    rssKb: (n(24) * 4096) / 1024,
  };
}

/** VmRSS from /proc/<pid>/status, kB. */
export function readRssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Proportional set size (shared pages divided among the processes mapping them), kB. */
export function readPssKb(pid: number): number | undefined {
  try {
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Direct children of `pid` (scans /proc). */
export function childrenOf(pid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s && s.ppid === pid) out.push(s);
  }
  return out;
}

/**
 * Children and grandchildren of `pid`, in one scan of /proc: the server's ffmpeg decoders are its grandchildren when
 * its ffmpeg launcher (LIVE_AUDIO_DECODER_LAUNCHER) starts them.
 */
export function childrenAndGrandchildrenOf(pid: number): ProcStat[] {
  const all: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) all.push(s);
  }
  const children = all.filter((s) => s.ppid === pid);
  const childPids = new Set(children.map((c) => c.pid));
  return [...children, ...all.filter((s) => childPids.has(s.ppid))];
}

export interface TreeSample {
  at: number;
  self: ProcStat;
  children: (ProcStat & { pssKb?: number })[];
}

/** One sample of a process, its children and grandchildren (see `childrenAndGrandchildrenOf`); undefined when the process is gone. */
export function sampleTree(pid: number, opts: { pss?: boolean } = {}): TreeSample | undefined {
  const self = readStat(pid);
  if (!self) return undefined;
  const rss = readRssKb(pid);
  if (rss !== undefined) self.rssKb = rss;
  const children = childrenAndGrandchildrenOf(pid).map((c) => {
    const rssKb = readRssKb(c.pid) ?? c.rssKb;
    return opts.pss ? { ...c, rssKb, pssKb: readPssKb(c.pid) } : { ...c, rssKb };
  });
  return { at: performance.now(), self, children };
}

export interface CpuWindow {
  /** The process itself, % of one core. */
  selfPct: number;
  /** Its children (live ones plus those that exited during the window), % of one core. */
  childrenPct: number;
  selfMs: number;
  childrenMs: number;
  wallMs: number;
}

/**
 * CPU used between two samples. Children: reaped CPU (cutime+cstime) grew by what exited children used over their
 * whole life; the live sums at both ends remove what was used before the window. A child's own reaped CPU counts
 * too (the ffmpeg launcher's exited ffmpegs), its live children are in the sample.
 */
export function cpuBetween(a: TreeSample, b: TreeSample): CpuWindow {
  const wallMs = b.at - a.at;
  const selfMs = b.self.cpuMs - a.self.cpuMs;
  const live = (s: TreeSample) => s.children.reduce((t, c) => t + c.cpuMs + (c.ppid === s.self.pid ? c.reapedChildrenCpuMs : 0), 0);
  const childrenMs = b.self.reapedChildrenCpuMs - a.self.reapedChildrenCpuMs + live(b) - live(a);
  return { selfPct: (100 * selfMs) / wallMs, childrenPct: (100 * childrenMs) / wallMs, selfMs, childrenMs, wallMs };
}

export interface FdCounts {
  total: number;
  socket: number;
  pipe: number;
  anon: number;
  file: number;
  other: number;
}

/** Open file descriptors of `pid`, by kind (what Node's handles hold at the OS level). */
export function countFds(pid: number): FdCounts | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  const c: FdCounts = { total: 0, socket: 0, pipe: 0, anon: 0, file: 0, other: 0 };
  for (const n of names) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${n}`);
    } catch {
      continue; // closed meanwhile
    }
    c.total++;
    if (target.startsWith('socket:')) c.socket++;
    else if (target.startsWith('pipe:')) c.pipe++;
    else if (target.startsWith('anon_inode:')) c.anon++;
    else if (target.startsWith('/')) c.file++;
    else c.other++;
  }
  return c;
}

/** Number of threads of `pid`. */
export function threadCount(pid: number): number | undefined {
  try {
    const m = /^Threads:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The machine, for reports. */
export function machineDescription(): { cpuModel: string; cores: number; memTotalGb: number; kernel: string } {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return { cpuModel, cores, memTotalGb: Math.round((memKb / 1024 / 1024) * 10) / 10, kernel };
}

/** 1-minute load average. */
export function loadAverage1(): number {
  return Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** The 1, 5 and 15-minute load averages, as /proc/loadavg gives them ("0.38 0.41 0.97"). */
export function loadAverages(): string {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/**
 * Busy and total CPU time of the whole machine so far (/proc/stat, all cores), ms; `stealMs` is the part of busy
 * that the hypervisor gave to other guests while ours wanted to run (a virtual machine's noisy neighbours).
 */
export function machineCpuMs(): { busyMs: number; totalMs: number; stealMs: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3] + v[4];
  return { busyMs: ((total - idle) * 1000) / CLK_TCK, totalMs: (total * 1000) / CLK_TCK, stealMs: ((v[7] ?? 0) * 1000) / CLK_TCK };
}

/**
 * Where a process's resident memory is, read from outside (soak checkpoints):
 * - `/proc/<pid>/smaps`, each mapping's resident kB grouped by kind: `[heap]` (glibc's brk arena, the main thread's
 *   mallocs), anonymous mappings (V8's heap pages, glibc's other arenas and its large mmapped blocks, thread stacks),
 *   the node binary and shared libraries (code), other files;
 * - glibc's own view (`malloc_info`: bytes each arena holds from the system and how much of it is free), asked
 *   through gdb when it is installed (the process stops for a moment while gdb is attached);
 * - `mallocTrim`: glibc's `malloc_trim(0)` called in the process (an experiment: how much of the RSS is freed memory
 *   glibc keeps);
 * - V8's view (process.memoryUsage, heap statistics and spaces), evaluated through the inspector.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { InspectorSession } from './inspector-gc';
import { readRssKb } from './proc';

const mb = (bytes: number) => bytes / 1024 / 1024;

export interface SmapsKinds {
  /** glibc's main arena (brk). */
  brkHeapKb: number;
  /** Anonymous mappings (no file): V8 pages, glibc's mmapped arenas and blocks, stacks of other threads. */
  anonKb: number;
  /** The node binary's and shared libraries' pages. */
  codeKb: number;
  /** Everything else (the main stack, vdso, other files). */
  otherKb: number;
  totalKb: number;
  /** Anonymous mappings' resident kB by their size class ("64M", "256K", ...), to tell arenas from V8 pages. */
  anonBySize: Record<string, number>;
}

/** Parses /proc/<pid>/smaps; undefined when the process is gone. */
export function readSmapsKinds(pid: number): SmapsKinds | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const out: SmapsKinds = { brkHeapKb: 0, anonKb: 0, codeKb: 0, otherKb: 0, totalKb: 0, anonBySize: {} };
  let name = '';
  let sizeKb = 0;
  const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/;
  for (const line of text.split('\n')) {
    const h = header.exec(line);
    if (h) {
      name = h[3];
      sizeKb = (parseInt(h[2], 16) - parseInt(h[1], 16)) / 1024;
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (!r) continue;
    const kb = Number(r[1]);
    out.totalKb += kb;
    if (name === '[heap]') out.brkHeapKb += kb;
    else if (name === '') {
      out.anonKb += kb;
      const cls = sizeClass(sizeKb);
      out.anonBySize[cls] = (out.anonBySize[cls] ?? 0) + kb;
    } else if (name === process.execPath || /\.so(\.|$)/.test(name) || name.endsWith('/node')) out.codeKb += kb;
    else out.otherKb += kb;
  }
  return out;
}

function sizeClass(kb: number): string {
  if (kb <= 256) return '≤256K';
  if (kb <= 1024) return '≤1M';
  if (kb <= 8 * 1024) return '≤8M';
  if (kb <= 64 * 1024) return '≤64M';
  return '>64M';
}

export interface MallocView {
  /** Bytes glibc's arenas hold from the system (main arena + others + mmapped blocks). */
  systemBytes: number;
  /** Of those, free chunks glibc keeps (fastbins and the rest). */
  freeBytes: number;
  /** Bytes in blocks mmapped on their own (above the mmap threshold). */
  mmapBytes: number;
  arenas: number;
  /** The main (brk) arena alone: held from the system, and free in it. */
  mainSystemBytes: number;
  mainFreeBytes: number;
}

function gdbBatch(pid: number, commands: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('gdb', ['-p', String(pid), '-batch', '-nx', ...commands.flatMap((c) => ['-ex', c])], { timeout: 60_000 }, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

/** Whether gdb is on the PATH. */
export function hasGdb(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, 'gdb')));
}

/** glibc's `malloc_info` of the process (gdb attaches for a moment); undefined without gdb or on failure. */
export async function readMallocInfo(pid: number): Promise<MallocView | undefined> {
  if (!hasGdb()) return undefined;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'malloc-info-')), 'info.xml');
  try {
    await gdbBatch(pid, [
      `set $f = (void *) fopen("${file}", "w")`,
      'call (int) malloc_info(0, $f)',
      'call (int) fclose($f)',
    ]);
    return parseMallocInfo(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

/** The totals of a `malloc_info` XML document (the last, process-wide `<total>`/`<system>` elements). */
export function parseMallocInfo(xml: string): MallocView {
  const tail = xml.slice(xml.lastIndexOf('</heap>'));
  const main = xml.slice(xml.indexOf('<heap nr="0">'), xml.indexOf('</heap>'));
  const num = (re: RegExp, text = tail) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    mainSystemBytes: num(/<system type="current" size="(\d+)"/, main),
    mainFreeBytes: num(/<total type="fast" count="\d+" size="(\d+)"/, main) + num(/<total type="rest" count="\d+" size="(\d+)"/, main),
    systemBytes: num(/<system type="current" size="(\d+)"/),
    freeBytes: num(/<total type="fast" count="\d+" size="(\d+)"/) + num(/<total type="rest" count="\d+" size="(\d+)"/),
    mmapBytes: num(/<total type="mmap" count="\d+" size="(\d+)"/),
    arenas: (xml.match(/<heap nr=/g) ?? []).length,
  };
}

/** Calls glibc's `malloc_trim(0)` in the process (gdb); false without gdb or on failure. */
export async function mallocTrim(pid: number): Promise<boolean> {
  if (!hasGdb()) return false;
  try {
    await gdbBatch(pid, ['call (int) malloc_trim(0)']);
    return true;
  } catch {
    return false;
  }
}

/** The server's own view of its memory (process.memoryUsage, V8's heap statistics and spaces), bytes. */
export interface V8View {
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap pages resident (all spaces). */
  physical: number;
  /** V8's own malloc'd memory (outside its heap). */
  malloced: number;
  spaces: Record<string, { size: number; used: number; physical: number }>;
}

const V8_VIEW_EXPR = `(() => {
  const v8 = process.getBuiltinModule('v8');
  const m = process.memoryUsage();
  const h = v8.getHeapStatistics();
  const spaces = {};
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size };
  return { heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers,
    physical: h.total_physical_size, malloced: h.malloced_memory, spaces };
})()`;

/** Where the memory is after a full GC (MB): smaps by kind, V8's and glibc's views, and RSS after malloc_trim. */
export interface MemoryDetail {
  smaps: SmapsKinds | undefined;
  v8: V8View | undefined;
  malloc: MallocView | undefined;
  rssAfterTrimMb: number | undefined;
}

export function fmtMemoryDetail(d: MemoryDetail): string {
  const parts: string[] = [];
  if (d.smaps) {
    const k = d.smaps;
    parts.push(`smaps: [heap] ${(k.brkHeapKb / 1024).toFixed(1)}, anon ${(k.anonKb / 1024).toFixed(1)} (${Object.entries(k.anonBySize).map(([c, kb]) => `${c} ${(kb / 1024).toFixed(1)}`).join(', ')}), code ${(k.codeKb / 1024).toFixed(1)}, other ${(k.otherKb / 1024).toFixed(1)}`);
  }
  if (d.v8) {
    const v = d.v8;
    const sp = Object.entries(v.spaces).map(([n, x]) => `${n.replace('_space', '')} ${mb(x.used).toFixed(1)}/${mb(x.physical).toFixed(1)}`).join(', ');
    parts.push(`V8: physical ${mb(v.physical).toFixed(1)}, malloced ${mb(v.malloced).toFixed(2)}, external ${mb(v.external).toFixed(2)} (arrayBuffers ${mb(v.arrayBuffers).toFixed(2)}); spaces used/resident: ${sp}`);
  }
  if (d.malloc) {
    const m = d.malloc;
    parts.push(`glibc: ${m.arenas} arenas hold ${mb(m.systemBytes).toFixed(1)} (${mb(m.freeBytes).toFixed(1)} free), main arena ${mb(m.mainSystemBytes).toFixed(1)} (${mb(m.mainFreeBytes).toFixed(1)} free), mmapped blocks ${mb(m.mmapBytes).toFixed(1)}`);
  }
  if (d.rssAfterTrimMb !== undefined) parts.push(`RSS after malloc_trim(0) ${d.rssAfterTrimMb.toFixed(1)}`);
  return parts.map((p) => `    ${p}`).join('\n');
}

/** Everything above, read after a full GC; `trim`: then malloc_trim(0) and RSS again (changes what follows). */
export async function readMemoryDetail(pid: number, inspector: InspectorSession, opts: { trim: boolean }): Promise<MemoryDetail> {
  const detail: MemoryDetail = {
    smaps: readSmapsKinds(pid),
    v8: await inspector.evaluate<V8View>(V8_VIEW_EXPR).catch(() => undefined),
    malloc: await readMallocInfo(pid),
    rssAfterTrimMb: undefined,
  };
  if (opts.trim && (await mallocTrim(pid))) detail.rssAfterTrimMb = (readRssKb(pid) ?? NaN) / 1024;
  return detail;
}

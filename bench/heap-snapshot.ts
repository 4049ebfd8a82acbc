/**
 * A heap snapshot of the server, taken from outside: the server runs with `--heapsnapshot-signal=SIGUSR2`, the bench
 * sends the signal. Writing a snapshot runs a full garbage collection first, so memory read right after it is what
 * is really retained; the snapshot itself tells which objects are alive, by constructor.
 */
import fs from 'node:fs';
import path from 'node:path';
import { delay } from './stack';

export const HEAP_SNAPSHOT_SIGNAL = 'SIGUSR2';

/** Object counts by constructor name. */
export type ObjectCounts = Map<string, number>;

/** Nodes of a snapshot grouped by kind (an object's constructor, a closure's name, strings, V8's internals): count and bytes. */
export type NodeSizes = Map<string, { count: number; bytes: number }>;

/** Signals `pid`, waits for the snapshot file in `dir` and the server to answer again, returns the counts. */
export async function takeHeapSnapshot(pid: number, dir: string, answered: () => Promise<unknown>, timeoutMs = 120_000): Promise<ObjectCounts> {
  return (await takeHeapSnapshotSummary(pid, dir, answered, timeoutMs)).counts;
}

/** `takeHeapSnapshot`, with the self sizes of every kind of node too (to diff two snapshots). */
export async function takeHeapSnapshotSummary(
  pid: number,
  dir: string,
  answered: () => Promise<unknown>,
  timeoutMs = 120_000,
): Promise<{ counts: ObjectCounts; sizes: NodeSizes }> {
  const before = new Set(fs.readdirSync(dir));
  process.kill(pid, HEAP_SNAPSHOT_SIGNAL);
  const deadline = Date.now() + timeoutMs;
  let file: string | undefined;
  while (!file) {
    if (Date.now() > deadline) throw new Error('no heap snapshot written');
    await delay(200);
    file = fs.readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
  }
  // The snapshot is written on the server's main thread: once it answers a request, the file is complete (on a
  // loaded machine writing it takes longer than one request's timeout: asked again until the deadline).
  for (;;) {
    try {
      await answered();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
  const full = path.join(dir, file);
  try {
    const snap = JSON.parse(fs.readFileSync(full, 'utf8')) as Snapshot;
    return { counts: countObjects(snap), sizes: nodeSizes(snap) };
  } finally {
    fs.rmSync(full, { force: true });
  }
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function countObjects(s: Snapshot): ObjectCounts {
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const objectType = s.snapshot.meta.node_types[0].indexOf('object');
  const counts: ObjectCounts = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    if (s.nodes[i + typeAt] !== objectType) continue;
    const name = s.strings[s.nodes[i + nameAt]];
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string']);

export function nodeSizes(s: Snapshot): NodeSizes {
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = s.snapshot.meta.node_types[0];
  const out: NodeSizes = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]];
    const name = s.strings[s.nodes[i + nameAt]];
    let key: string;
    if (type === 'object') key = name;
    else if (STRING_TYPES.has(type)) key = '(strings)';
    else if (type === 'closure') key = `(closure) ${name.slice(0, 40)}`;
    else key = `(${type}) ${name.slice(0, 40)}`;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + sizeAt];
    out.set(key, e);
  }
  return out;
}

/** What grew from `a` to `b`, biggest first. */
export function diffSizes(a: NodeSizes, b: NodeSizes, top = 20): { key: string; count: number; bytes: number }[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys]
    .map((key) => ({ key, count: (b.get(key)?.count ?? 0) - (a.get(key)?.count ?? 0), bytes: (b.get(key)?.bytes ?? 0) - (a.get(key)?.bytes ?? 0) }))
    .sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes))
    .slice(0, top);
}

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

/** Signals `pid`, waits for the snapshot file in `dir` and the server to answer again, returns the counts. */
export async function takeHeapSnapshot(pid: number, dir: string, answered: () => Promise<unknown>, timeoutMs = 120_000): Promise<ObjectCounts> {
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
    return countObjects(JSON.parse(fs.readFileSync(full, 'utf8')));
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

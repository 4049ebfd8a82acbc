/**
 * Shares equal plain-JSON values between the records that keep them for a long time (the setup echo of every
 * ended session's tombstone and stored transcript): thousands of sessions of one deployment run with a handful of
 * setups, and one frozen copy per distinct setup costs far less than one copy per session.
 *
 * Bounded: at most `maxValues` distinct values are remembered (least recently used first out). A caller who makes
 * every value distinct gets an unshared frozen copy per record (what it cost without the interner), never an
 * unbounded table.
 */
export class ValueInterner<T extends object> {
  private readonly values = new Map<string, T>();

  constructor(private readonly maxValues = 64) {}

  /** The shared, deeply frozen copy of a value equal to `value` (JSON equality), or a frozen copy of it. */
  intern(value: T): T {
    const key = JSON.stringify(value);
    const held = this.values.get(key);
    if (held) {
      this.values.delete(key); // re-insert: Map order is recency
      this.values.set(key, held);
      return held;
    }
    const copy = deepFreeze(JSON.parse(key) as T);
    this.values.set(key, copy);
    while (this.values.size > this.maxValues) this.values.delete(this.values.keys().next().value as string);
    return copy;
  }

  /** Distinct values held (tests). */
  get size(): number {
    return this.values.size;
  }
}

function deepFreeze<V>(v: V): V {
  if (v !== null && typeof v === 'object') {
    for (const inner of Object.values(v)) deepFreeze(inner);
    Object.freeze(v);
  }
  return v;
}

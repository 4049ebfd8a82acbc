import { FairRetention, type EvictionCounts, type EvictionReason } from '../../src/util/fair-retention';
import { IndexedHeap } from '../../src/util/indexed-heap';
import { suiteSeed } from '../helpers/seed';
import { prng } from '../ops/helpers';

const SEED = suiteSeed();

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

interface ModelEntry {
  key: string;
  owner: string;
  weight: number;
  expiresAt: number;
  seq: number;
}

/**
 * The rule written the slow, obvious way (arrays, filters, sorts): what the fair store must do, record by record.
 * Over a bound, among the owners with a record other than the one being stored, the one holding the most (records
 * or weight) gives its soonest-expiring record; ties go to the owner whose soonest-expiring record is older.
 */
class ReferenceModel {
  entries: ModelEntry[] = [];
  evicted: EvictionCounts = { records: 0, bytes: 0, per_key: 0 };
  private seq = 0;

  constructor(
    private readonly o: { maxRecords: number; maxWeight: number; maxPerOwner: number },
    private readonly now: () => number,
  ) {}

  get weight(): number {
    return this.entries.reduce((s, e) => s + e.weight, 0);
  }

  count(owner: string): number {
    return this.entries.filter((e) => e.owner === owner).length;
  }

  expire(): void {
    const t = this.now();
    this.entries = this.entries.filter((e) => e.expiresAt > t);
  }

  get(key: string): ModelEntry | undefined {
    const e = this.entries.find((x) => x.key === key);
    if (e && e.expiresAt <= this.now()) {
      this.entries = this.entries.filter((x) => x !== e);
      return undefined;
    }
    return e;
  }

  delete(key: string): void {
    this.entries = this.entries.filter((x) => x.key !== key);
  }

  set(key: string, owner: string, weight: number, expiresAt: number): void {
    this.expire();
    this.delete(key);
    if (expiresAt <= this.now()) return;
    const keep: ModelEntry = { key, owner, weight, expiresAt, seq: this.seq++ };
    this.entries.push(keep);
    const soon = (a: ModelEntry, b: ModelEntry) => a.expiresAt - b.expiresAt || a.seq - b.seq;
    const evictable = (who: string) => this.entries.filter((e) => e.owner === who && e !== keep).sort(soon);
    const evict = (e: ModelEntry, why: EvictionReason) => {
      this.entries = this.entries.filter((x) => x !== e);
      this.evicted[why]++;
    };
    const pick = (load: (who: string) => number): ModelEntry | undefined => {
      const owners = [...new Set(this.entries.map((e) => e.owner))].filter((w) => evictable(w).length > 0);
      owners.sort((a, b) => load(b) - load(a) || soon(evictable(a)[0], evictable(b)[0]));
      return owners.length ? evictable(owners[0])[0] : undefined;
    };
    while (this.count(owner) > this.o.maxPerOwner && evictable(owner).length) evict(evictable(owner)[0], 'per_key');
    for (let v = pick((w) => this.count(w)); v && this.entries.length > this.o.maxRecords; v = pick((w) => this.count(w))) evict(v, 'records');
    const weightOf = (w: string) => this.entries.filter((e) => e.owner === w).reduce((s, e) => s + e.weight, 0);
    for (let v = pick(weightOf); v && this.weight > this.o.maxWeight; v = pick(weightOf)) evict(v, 'bytes');
  }
}

describe(`IndexedHeap (seed ${SEED})`, () => {
  it('pops in order after random pushes, deletes and key changes (against a sorted array)', () => {
    const rand = prng(SEED);
    const heap = new IndexedHeap<{ k: number; at: number }>(
      (a, b) => a.k < b.k,
      { get: (x) => x.at, set: (x, i) => (x.at = i) },
    );
    let held: Array<{ k: number; at: number }> = [];
    for (let step = 0; step < 5_000; step++) {
      const r = rand();
      if (r < 0.5 || held.length === 0) {
        const item = { k: Math.floor(rand() * 1_000), at: -1 };
        heap.push(item);
        held.push(item);
      } else if (r < 0.7) {
        const item = held[Math.floor(rand() * held.length)];
        expect(heap.delete(item)).toBe(true);
        held = held.filter((x) => x !== item);
      } else if (r < 0.85) {
        const item = held[Math.floor(rand() * held.length)];
        item.k = Math.floor(rand() * 1_000);
        heap.update(item);
      } else {
        const min = Math.min(...held.map((x) => x.k));
        const top = heap.pop()!;
        expect(top.k).toBe(min);
        held = held.filter((x) => x !== top);
      }
      expect(heap.size).toBe(held.length);
    }
    const out: number[] = [];
    for (let x = heap.pop(); x; x = heap.pop()) out.push(x.k);
    expect(out).toEqual(held.map((x) => x.k).sort((a, b) => a - b));
    expect(heap.delete({ k: 1, at: -1 })).toBe(false);
    // A stale slot (an item never pushed claiming index 0) is not taken for a held item.
    const held0 = { k: 5, at: -1 };
    heap.push(held0);
    expect(heap.delete({ k: 5, at: 0 })).toBe(false);
    expect(heap.pop()).toBe(held0);
  });
});

describe(`FairRetention (seed ${SEED})`, () => {
  it('one owner alone fills the whole cap, oldest first out (as before the fairness)', () => {
    const c = clock();
    const store = new FairRetention<number>({ maxRecords: 50, now: c.now });
    for (let i = 0; i < 200; i++) {
      store.set(`k${i}`, 'alone', i, { expiresAt: c.now() + 1_000_000 });
      c.advance(1);
    }
    expect(store.size).toBe(50);
    expect(store.countOf('alone')).toBe(50);
    expect(store.get('k149')).toBeUndefined();
    for (let i = 150; i < 200; i++) expect(store.get(`k${i}`)).toBe(i);
    expect(store.evictions()).toEqual({ records: 150, bytes: 0, per_key: 0 });
  });

  it("a flooding owner evicts its own records: another owner's older ones stay", () => {
    const c = clock();
    const store = new FairRetention<string>({ maxRecords: 100, now: c.now });
    for (let i = 0; i < 5; i++) store.set(`b${i}`, 'bob', 'b', { expiresAt: c.now() + 1_000_000 });
    for (let i = 0; i < 3_000; i++) {
      c.advance(1);
      store.set(`a${i}`, 'alice', 'a', { expiresAt: c.now() + 1_000_000 });
      if (i === 1_500) store.set('b_during', 'bob', 'b', { expiresAt: c.now() + 1_000_000 });
    }
    expect(store.size).toBe(100);
    for (const k of ['b0', 'b1', 'b2', 'b3', 'b4', 'b_during']) expect(store.get(k)).toBe('b');
    expect(store.countOf('alice')).toBe(94);
    expect(store.get('a2999')).toBe('a');
    expect(store.get('a2905')).toBeUndefined();
  });

  it('the bytes bound takes from the owner holding the most bytes; the record being stored is never its own victim', () => {
    const c = clock();
    const store = new FairRetention<string>({ maxRecords: 1_000, maxWeight: 1_000, now: c.now });
    for (let i = 0; i < 10; i++) store.set(`small${i}`, 'small', 's', { expiresAt: 1e9, weight: 10 });
    for (let i = 0; i < 20; i++) store.set(`big${i}`, 'big', 'b', { expiresAt: 1e9, weight: 100 });
    expect(store.weight).toBeLessThanOrEqual(1_000);
    expect(store.countOf('small')).toBe(10);
    expect(store.countOf('big')).toBe(9);
    expect(store.evictions()).toEqual({ records: 0, bytes: 11, per_key: 0 });
    // One record over the whole bound, its owner's only one: the others give, the bound holds as far as it can.
    store.set('huge', 'huge', 'h', { expiresAt: 1e9, weight: 5_000 });
    expect(store.get('huge')).toBe('h');
    expect(store.size).toBe(1);
    // An owner alone keeps its one record even over the bound.
    const alone = new FairRetention<string>({ maxRecords: 10, maxWeight: 100, now: c.now });
    alone.set('x', 'o', 'x', { expiresAt: 1e9, weight: 500 });
    expect(alone.get('x')).toBe('x');
  });

  it('a per-owner cap takes that owner’s soonest-expiring record first (as Redis caps transcripts per key)', () => {
    const c = clock();
    const store = new FairRetention<number>({ maxRecords: 100, maxPerOwner: 3, now: c.now });
    store.set('live', 'a', 0, { expiresAt: Infinity });
    for (let i = 1; i <= 5; i++) store.set(`e${i}`, 'a', i, { expiresAt: c.now() + 10_000 + i });
    store.set('other', 'b', 9, { expiresAt: c.now() + 1 });
    expect(store.countOf('a')).toBe(3);
    expect([store.get('live'), store.get('e4'), store.get('e5'), store.get('e3')]).toEqual([0, 4, 5, undefined]);
    expect(store.get('other')).toBe(9);
    expect(store.evictions()).toEqual({ records: 0, bytes: 0, per_key: 3 });
  });

  it('expired records go at their time, without an eviction counted; a record that expires at once is not stored', () => {
    const c = clock();
    const store = new FairRetention<number>({ maxRecords: 10, now: c.now });
    store.set('a', 'o', 1, { expiresAt: c.now() + 100 });
    store.set('b', 'o', 2, { expiresAt: c.now() + 200 });
    c.advance(100);
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b')).toBe(2);
    c.advance(100);
    expect(store.expire()).toBe(1);
    expect(store.size).toBe(0);
    expect(store.set('c', 'o', 3, { expiresAt: c.now() })).toBe(false);
    expect(store.size).toBe(0);
    expect(store.evictions()).toEqual({ records: 0, bytes: 0, per_key: 0 });
  });

  const configs = [
    { maxRecords: 12, maxWeight: Infinity, maxPerOwner: Infinity },
    { maxRecords: 30, maxWeight: 600, maxPerOwner: Infinity },
    { maxRecords: 25, maxWeight: Infinity, maxPerOwner: 8 },
    { maxRecords: 40, maxWeight: 900, maxPerOwner: 15 },
  ];
  it.each(configs)('random inserts, reads, deletes and expiries from several owners match the reference model (%o)', (bounds) => {
    const rand = prng(SEED + bounds.maxRecords);
    const c = clock();
    const store = new FairRetention<string>({ ...bounds, now: c.now });
    const model = new ReferenceModel(bounds, c.now);
    const owners = ['flood', 'b', 'c', 'd'];
    for (let step = 0; step < 3_000; step++) {
      const owner = rand() < 0.6 ? owners[0] : owners[1 + Math.floor(rand() * 3)];
      const key = `${owner}:${Math.floor(rand() * 60)}`;
      const r = rand();
      if (r < 0.7) {
        const kind = rand();
        // Mostly ended now (same retention), some live (never expire), some ended earlier (a shorter time left).
        const expiresAt = kind < 0.1 ? Infinity : c.now() + (kind < 0.25 ? Math.floor(rand() * 2_000) : 5_000);
        const weight = 1 + Math.floor(rand() * 60);
        const stored = store.set(key, owner, key, { expiresAt, weight });
        model.set(key, owner, weight, expiresAt);
        expect(stored).toBe(expiresAt > c.now());
      } else if (r < 0.85) {
        expect(store.get(key)).toBe(model.get(key)?.key);
      } else if (r < 0.9) {
        store.delete(key);
        model.delete(key);
      } else {
        c.advance(Math.floor(rand() * 300));
      }
      store.expire();
      model.expire();
      expect([store.size, store.weight]).toEqual([model.entries.length, model.weight]);
      for (const o of owners) expect(store.countOf(o)).toBe(model.count(o));
    }
    for (const e of model.entries) expect(store.get(e.key)).toBe(e.key);
    expect(store.evictions()).toEqual(model.evicted);
    expect(model.evicted.records + model.evicted.bytes + model.evicted.per_key).toBeGreaterThan(0);
  });

  it('property: an owner with ≤ cap/owners records never loses one while another holds more (seeded floods)', () => {
    const rand = prng(SEED ^ 0x5eed);
    for (let round = 0; round < 20; round++) {
      const owners = Array.from({ length: 2 + Math.floor(rand() * 5) }, (_, i) => `key${i}`);
      const cap = owners.length * (2 + Math.floor(rand() * 20));
      const share = cap / owners.length;
      const c = clock();
      const store = new FairRetention<string>({ maxRecords: cap, now: c.now });
      // Skewed: owner 0 floods, the others come now and then.
      const weights = owners.map((_, i) => (i === 0 ? 20 : 1 + rand() * 3));
      const total = weights.reduce((a, b) => a + b, 0);
      const held = new Set<string>();
      let losses = 0;
      for (let i = 0; i < 20 * cap; i++) {
        let x = rand() * total;
        let o = 0;
        while (x >= weights[o]) x -= weights[o++];
        const key = `${owners[o]}:${i}`;
        c.advance(1);
        const before = new Map(owners.map((w) => [w, store.countOf(w)]));
        before.set(owners[o], before.get(owners[o])! + 1);
        store.set(key, owners[o], key, { expiresAt: c.now() + 1e9 });
        held.add(key);
        for (const k of [...held]) {
          if (store.get(k) !== undefined) continue;
          held.delete(k);
          losses++;
          const loser = k.split(':')[0];
          const mine = before.get(loser)!;
          const most = Math.max(...before.values());
          // The loser held the most; in particular, within its share it loses nothing while another holds more.
          expect({ round, step: i, loser, mine, most }).toEqual({ round, step: i, loser, mine: most, most });
          if (mine <= share) expect([...before.values()].every((n) => n <= mine)).toBe(true);
        }
        expect(store.size).toBeLessThanOrEqual(cap);
      }
      expect(losses).toBeGreaterThan(0);
    }
  });
});

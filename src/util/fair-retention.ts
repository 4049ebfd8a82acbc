import { IndexedHeap, type HeapSlot } from './indexed-heap';

/** Why a record went before its time: over the record cap, over the byte cap, over its owner's own cap. */
export type EvictionReason = 'records' | 'bytes' | 'per_key';
export type EvictionCounts = Record<EvictionReason, number>;

export interface FairRetentionOptions {
  /** Records held at most (all owners together). */
  maxRecords: number;
  /** Total weight (approximate bytes) held at most; default: no bound. */
  maxWeight?: number;
  /** Records one owner may hold at most; default: no bound of its own (an owner alone may fill `maxRecords`). */
  maxPerOwner?: number;
  now?: () => number;
}

interface Entry<V> {
  key: string;
  owner: Owner<V>;
  value: V;
  weight: number;
  expiresAt: number;
  /** Insertion order: breaks ties between equal expiries (the older goes first). */
  seq: number;
  /** Its places in the expiry heap and in its owner's heap. */
  atExpiry: number;
  atOwner: number;
}

interface Owner<V> {
  id: string;
  count: number;
  weight: number;
  /** Its records that may be evicted, soonest to expire first (the record being stored is not among them yet). */
  evictable: IndexedHeap<Entry<V>>;
  /** Its places in the owner heaps by count and by weight. */
  atCount: number;
  atWeight: number;
}

type Slotted<K extends string> = Record<K, number>;

function slot<T extends Slotted<K>, K extends string>(field: K): HeapSlot<T> {
  return {
    get: (item) => item[field],
    set: (item, index) => {
      (item as Slotted<K>)[field] = index;
    },
  };
}

function sooner<V>(a: Entry<V>, b: Entry<V>): boolean {
  return a.expiresAt < b.expiresAt || (a.expiresAt === b.expiresAt && a.seq < b.seq);
}

/** Between equally loaded owners, the one whose oldest record is older gives first (one owner: plain oldest-first). */
function olderFront<V>(a: Owner<V>, b: Owner<V>): boolean {
  const fa = a.evictable.peek();
  const fb = b.evictable.peek();
  if (!fa) return false;
  if (!fb) return true;
  return sooner(fa, fb);
}

/**
 * Records kept for a while after the thing they describe ended (tombstones, transcripts), each with an owner (the
 * API key or user), an expiry and a weight, bounded in count and weight and fair between owners: when a bound is
 * passed, the record that goes is the soonest-expiring one of the owner holding the most records (over the record
 * cap) or the most weight (over the weight cap), never the one being stored. So one key holder who ends thousands
 * of sessions pushes out its own records, not another key's, while an owner alone may still use the whole cap; an
 * owner with at most cap/owners records never loses one while another holds more.
 *
 * Data structures (every operation O(log n), no scan): a map by key; a min-heap of every record by expiry (the
 * expired ones are taken from its top); per owner, a min-heap of its records by expiry; and max-heaps of the owners
 * by record count and by weight (ties: the owner with the older oldest record).
 */
export class FairRetention<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly owners = new Map<string, Owner<V>>();
  private readonly byExpiry = new IndexedHeap<Entry<V>>(sooner, slot('atExpiry'));
  private readonly byCount = new IndexedHeap<Owner<V>>((a, b) => a.count > b.count || (a.count === b.count && olderFront(a, b)), slot('atCount'));
  private readonly byWeight = new IndexedHeap<Owner<V>>((a, b) => a.weight > b.weight || (a.weight === b.weight && olderFront(a, b)), slot('atWeight'));
  private readonly maxRecords: number;
  private readonly maxWeight: number;
  private readonly maxPerOwner: number;
  private readonly now: () => number;
  private totalWeight = 0;
  private seq = 0;
  private readonly evicted: EvictionCounts = { records: 0, bytes: 0, per_key: 0 };

  constructor(o: FairRetentionOptions) {
    this.maxRecords = Math.max(1, o.maxRecords);
    this.maxWeight = o.maxWeight ?? Infinity;
    this.maxPerOwner = Math.max(1, o.maxPerOwner ?? Infinity);
    this.now = o.now ?? Date.now;
  }

  /** Records held (expired ones not taken out yet included: see `expire`). */
  get size(): number {
    return this.entries.size;
  }

  get weight(): number {
    return this.totalWeight;
  }

  /** Records evicted before their time, by reason (expiry is not an eviction). */
  evictions(): EvictionCounts {
    return { ...this.evicted };
  }

  /** Records `owner` holds. */
  countOf(owner: string): number {
    return this.owners.get(owner)?.count ?? 0;
  }

  /** The record under `key`, unless it expired. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.remove(e);
      return undefined;
    }
    return e.value;
  }

  /**
   * Stores (or replaces) the record under `key`, then evicts what the bounds require (see the class). False when it
   * expires at once (not stored). The record itself is never evicted by its own store: an owner whose only record
   * is this one gives nothing, the next owner in line gives instead.
   */
  set(key: string, owner: string, value: V, o: { expiresAt: number; weight?: number }): boolean {
    this.expire();
    this.delete(key);
    if (o.expiresAt <= this.now()) return false;
    let who = this.owners.get(owner);
    if (!who) {
      who = { id: owner, count: 0, weight: 0, evictable: new IndexedHeap<Entry<V>>(sooner, slot('atOwner')), atCount: -1, atWeight: -1 };
      this.owners.set(owner, who);
    }
    const weight = o.weight ?? 0;
    const entry: Entry<V> = { key, owner: who, value, weight, expiresAt: o.expiresAt, seq: this.seq++, atExpiry: -1, atOwner: -1 };
    this.entries.set(key, entry);
    this.byExpiry.push(entry);
    who.count++;
    who.weight += weight;
    this.totalWeight += weight;
    this.touch(who);
    for (let v = who.evictable.peek(); v && who.count > this.maxPerOwner; v = who.evictable.peek()) this.evict(v, 'per_key');
    for (let v = this.victim(this.byCount); v && this.entries.size > this.maxRecords; v = this.victim(this.byCount)) this.evict(v, 'records');
    if (Number.isFinite(this.maxWeight)) {
      for (let v = this.victim(this.byWeight); v && this.totalWeight > this.maxWeight; v = this.victim(this.byWeight)) this.evict(v, 'bytes');
    }
    who.evictable.push(entry);
    this.touch(who);
    return true;
  }

  delete(key: string): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    this.remove(e);
    return true;
  }

  /** Takes out every expired record (from the top of the expiry heap: O(log n) each); returns how many. */
  expire(): number {
    const now = this.now();
    let n = 0;
    for (let e = this.byExpiry.peek(); e && e.expiresAt <= now; e = this.byExpiry.peek()) {
      this.remove(e);
      n++;
    }
    return n;
  }

  /** The soonest-expiring evictable record of the owner first in `owners`' order (skipping the one with nothing evictable). */
  private victim(owners: IndexedHeap<Owner<V>>): Entry<V> | undefined {
    const top = owners.peek();
    if (!top) return undefined;
    const v = top.evictable.peek();
    if (v) return v;
    // Only the owner of the record being stored can hold nothing evictable: the next owner in line gives.
    owners.pop();
    const next = owners.peek();
    owners.push(top);
    return next?.evictable.peek();
  }

  private evict(e: Entry<V>, reason: EvictionReason): void {
    this.remove(e);
    this.evicted[reason]++;
  }

  private remove(e: Entry<V>): void {
    const who = e.owner;
    this.entries.delete(e.key);
    this.byExpiry.delete(e);
    who.evictable.delete(e);
    who.count--;
    who.weight -= e.weight;
    this.totalWeight -= e.weight;
    this.touch(who);
  }

  /** Re-sorts an owner after its records changed; forgets it when it holds none. */
  private touch(who: Owner<V>): void {
    if (who.count === 0) {
      this.owners.delete(who.id);
      this.byCount.delete(who);
      this.byWeight.delete(who);
      return;
    }
    this.byCount.push(who);
    if (Number.isFinite(this.maxWeight)) this.byWeight.push(who);
  }
}

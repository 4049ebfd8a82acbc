/** Where an item sits in one heap: read and written by the heap only (-1: not held). */
export interface HeapSlot<T> {
  get(item: T): number;
  set(item: T, index: number): void;
}

/**
 * A binary heap that knows where each of its items sits, so an item can be removed or moved after its key changed
 * in O(log n) (the plain heap can only pop its top). Items are distinct objects; `before(a, b)` is true when `a`
 * must come out before `b`. Each item keeps its own index in a field of its own (`slot`, one per heap it is in):
 * no table beside the items (the retained records are many, each byte counts).
 */
export class IndexedHeap<T> {
  private readonly items: T[] = [];

  constructor(
    private readonly before: (a: T, b: T) => boolean,
    private readonly slot: HeapSlot<T>,
  ) {}

  get size(): number {
    return this.items.length;
  }

  has(item: T): boolean {
    return this.indexOf(item) >= 0;
  }

  /** The item that comes out first, left in place. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Adds `item`, or moves it if it is held already (its key changed). */
  push(item: T): void {
    if (this.has(item)) {
      this.update(item);
      return;
    }
    this.items.push(item);
    this.slot.set(item, this.items.length - 1);
    this.up(this.items.length - 1);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.delete(top);
    return top;
  }

  /** Removes `item`; false when it was not held. */
  delete(item: T): boolean {
    const i = this.indexOf(item);
    if (i < 0) return false;
    const last = this.items.pop() as T;
    this.slot.set(item, -1);
    if (i < this.items.length) {
      this.items[i] = last;
      this.slot.set(last, i);
      this.update(last);
    }
    return true;
  }

  /** Restores the order after `item`'s key changed (no-op when it is not held). */
  update(item: T): void {
    const i = this.indexOf(item);
    if (i < 0) return;
    this.down(this.up(i));
  }

  /** The item's index here, or -1 (its slot may hold a stale index only if it was never pushed: checked). */
  private indexOf(item: T): number {
    const i = this.slot.get(item);
    return i >= 0 && this.items[i] === item ? i : -1;
  }

  private up(i: number): number {
    const items = this.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      this.swap(i, parent);
      i = parent;
    }
    return i;
  }

  private down(i: number): void {
    const items = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let first = i;
      if (l < items.length && this.before(items[l], items[first])) first = l;
      if (r < items.length && this.before(items[r], items[first])) first = r;
      if (first === i) return;
      this.swap(i, first);
      i = first;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.items[i];
    const b = this.items[j];
    this.items[i] = b;
    this.items[j] = a;
    this.slot.set(b, i);
    this.slot.set(a, j);
  }
}

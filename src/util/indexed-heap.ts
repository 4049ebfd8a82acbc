/**
 * A binary heap that knows where each of its items sits, so an item can be removed or moved after its key changed
 * in O(log n) (the plain heap can only pop its top). Items are distinct objects; `before(a, b)` is true when `a`
 * must come out before `b`.
 */
export class IndexedHeap<T> {
  private readonly items: T[] = [];
  private readonly at = new Map<T, number>();

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  has(item: T): boolean {
    return this.at.has(item);
  }

  /** The item that comes out first, left in place. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Adds `item`, or moves it if it is held already (its key changed). */
  push(item: T): void {
    if (this.at.has(item)) {
      this.update(item);
      return;
    }
    this.items.push(item);
    this.at.set(item, this.items.length - 1);
    this.up(this.items.length - 1);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.delete(top);
    return top;
  }

  /** Removes `item`; false when it was not held. */
  delete(item: T): boolean {
    const i = this.at.get(item);
    if (i === undefined) return false;
    const last = this.items.pop() as T;
    this.at.delete(item);
    if (i < this.items.length) {
      this.items[i] = last;
      this.at.set(last, i);
      this.update(last);
    }
    return true;
  }

  /** Restores the order after `item`'s key changed (no-op when it is not held). */
  update(item: T): void {
    const i = this.at.get(item);
    if (i === undefined) return;
    this.down(this.up(i));
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
    this.at.set(b, i);
    this.at.set(a, j);
  }
}

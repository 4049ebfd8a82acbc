import { ValueInterner } from '../../src/util/value-interner';

describe('ValueInterner', () => {
  it('hands out one frozen copy for equal values, not the caller’s object', () => {
    const interner = new ValueInterner<{ a: number; nested: { b: string[] } }>();
    const v1 = { a: 1, nested: { b: ['x'] } };
    const v2 = { a: 1, nested: { b: ['x'] } };
    const s1 = interner.intern(v1);
    const s2 = interner.intern(v2);
    expect(s1).toBe(s2);
    expect(s1).not.toBe(v1);
    expect(s1).toEqual(v1);
    expect(Object.isFrozen(s1) && Object.isFrozen(s1.nested) && Object.isFrozen(s1.nested.b)).toBe(true);
    // The caller's object stays its own (mutable, unchanged).
    v1.nested.b.push('y');
    expect(s1.nested.b).toEqual(['x']);
    expect(interner.intern({ a: 2, nested: { b: [] } })).not.toBe(s1);
  });

  it('holds at most maxValues distinct values, least recently used out first', () => {
    const interner = new ValueInterner<{ n: number }>(3);
    const zero = interner.intern({ n: 0 });
    for (let n = 1; n <= 1_000; n++) {
      interner.intern({ n });
      interner.intern({ n: 0 }); // kept in use
      expect(interner.size).toBeLessThanOrEqual(3);
    }
    expect(interner.intern({ n: 0 })).toBe(zero);
    const early = interner.intern({ n: 1 }); // forgotten long ago: a fresh (equal) copy
    expect(early).toEqual({ n: 1 });
  });
});

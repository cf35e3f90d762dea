import { describe, expect, it } from 'vitest';
import { RelaisError } from './errors.js';
import { compileTagFilter } from './tag_filter.js';

describe('compileTagFilter', () => {
  it('compares tags as Centrifugo filters do', () => {
    const orders = compileTagFilter({ key: 'amount', cmp: 'gt', val: '100' });
    const cases: (Record<string, string> | undefined)[] = [{ amount: '150' }, { amount: '100' }, { amount: 'lots' }, {}, undefined];
    expect(cases.map((tags) => orders(tags))).toEqual([true, false, false, false, false]);
    const eu = compileTagFilter({ op: 'and', nodes: [{ key: 'region', cmp: 'in', vals: ['fr', 'de'] }, { op: 'not', nodes: [{ key: 'test', cmp: 'ex' }] }] });
    expect(eu({ region: 'fr' })).toBe(true);
    expect(eu({ region: 'fr', test: '1' })).toBe(false);
    expect(eu({ region: 'us' })).toBe(false);
    const any = compileTagFilter({ op: 'or', nodes: [{ key: 'a', cmp: 'sw', val: 'x' }, { key: 'a', cmp: 'ew', val: 'z' }, { key: 'a', cmp: 'ct', val: 'm' }] });
    expect(['xa', 'az', 'ama', 'b'].map((a) => any({ a }))).toEqual([true, true, true, false]);
    expect(compileTagFilter({ key: 'a', cmp: 'neq', val: 'x' })({})).toBe(true);
    expect(compileTagFilter({ key: 'a', cmp: 'nin', vals: ['x'] })({ a: 'y' })).toBe(true);
    expect(compileTagFilter({ key: 'a', cmp: 'lte', val: '2.5' })({ a: '2.5' })).toBe(true);
  });

  it('refuses malformed filters with BAD_REQUEST naming the fault', () => {
    const bad = [
      { op: 'xor', nodes: [{ key: 'a', cmp: 'ex' }] },
      { op: 'and' },
      { op: 'not', nodes: [{ key: 'a', cmp: 'ex' }, { key: 'b', cmp: 'ex' }] },
      { cmp: 'eq', val: 'x' },
      { key: 'a', cmp: 'like', val: 'x' },
      { key: 'a', cmp: 'gt', val: 'ten' },
      { key: 'a', cmp: 'in' },
      { key: 'a', cmp: 'eq', nodes: [{ key: 'b', cmp: 'ex' }] },
      { op: 'or', nodes: Array.from({ length: 70 }, () => ({ key: 'a', cmp: 'ex' })) },
    ];
    for (const node of bad) {
      expect(() => compileTagFilter(node), JSON.stringify(node)).toThrow(RelaisError);
    }
  });
});

import { describe, expect, it } from 'vitest';
import type { JsonText } from './json.js';
import type { Publication } from './publication.js';
import { RecentPublications } from './recent.js';

const pub = (offset: number, time = Date.now(), epoch = 'e'): Publication => ({ offset, epoch, data: '0' as JsonText, time });
const top = (offset: number, epoch = 'e') => ({ offset, epoch });

describe('RecentPublications', () => {
  it('serves what it holds after a position, and nothing it does not hold', () => {
    const recent = new RecentPublications(5, 60_000);
    for (let o = 1; o <= 8; o++) recent.push(pub(o), o > 1);
    expect(recent.since({ offset: 6, epoch: 'e' }, top(8), 100)?.map((p) => p.offset)).toEqual([7, 8]);
    expect(recent.since({ offset: 8, epoch: 'e' }, top(8), 100)).toEqual([]);
    expect(recent.since({ offset: 9, epoch: 'e' }, top(8), 100)).toBeUndefined();
    expect(recent.since({ offset: 6, epoch: 'other' }, top(8), 100)).toBeUndefined();
    expect(recent.since({ offset: 6, epoch: '' }, top(8), 100)?.length).toBe(2);
    expect(recent.since({ offset: 6, epoch: 'e' }, top(8), 1)).toBeUndefined();
  });

  it('keeps at most twice its size, and starts over after a break', () => {
    const recent = new RecentPublications(3, 60_000);
    for (let o = 1; o <= 10; o++) recent.push(pub(o), o > 1);
    expect(recent.since({ offset: 2, epoch: 'e' }, top(10), 100)).toBeUndefined();
    expect(recent.since({ offset: 7, epoch: 'e' }, top(10), 100)?.map((p) => p.offset)).toEqual([8, 9, 10]);
    recent.push(pub(15), false);
    expect(recent.since({ offset: 10, epoch: 'e' }, top(15), 100)).toBeUndefined();
    expect(recent.since({ offset: 14, epoch: 'e' }, top(15), 100)?.map((p) => p.offset)).toEqual([15]);
  });

  it('does not serve publications past the history TTL', () => {
    const recent = new RecentPublications(5, 1000);
    recent.push(pub(1, Date.now() - 5000), false);
    recent.push(pub(2), true);
    expect(recent.since({ offset: 0, epoch: 'e' }, top(2), 100)).toBeUndefined();
    expect(recent.since({ offset: 1, epoch: 'e' }, top(2), 100)?.map((p) => p.offset)).toEqual([2]);
  });
});

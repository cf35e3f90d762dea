import { describe, expect, it } from 'vitest';
import { MemberCache } from './member_cache.js';

function cache(ttlMs = 1000, maxEntries = 100): { cache: MemberCache; clock: { now: number } } {
  const clock = { now: 0 };
  return { cache: new MemberCache({ ttlMs, maxEntries, now: () => clock.now }), clock };
}

describe('MemberCache', () => {
  it('keeps positive and negative answers until their TTL', () => {
    const { cache: c, clock } = cache(1000);
    c.set('room:a', 'alice', true, c.generation);
    c.set('room:a', 'mallory', false, c.generation);
    expect([c.get('room:a', 'alice'), c.get('room:a', 'mallory'), c.get('room:a', 'bob')]).toEqual([true, false, undefined]);
    clock.now = 999;
    expect(c.get('room:a', 'alice')).toBe(true);
    clock.now = 1000;
    expect([c.get('room:a', 'alice'), c.get('room:a', 'mallory')]).toEqual([undefined, undefined]);
    expect(c.size).toBe(0);
  });

  it('forgets one member, or a whole room, and not the other rooms', () => {
    const { cache: c } = cache();
    for (const [room, user] of [['room:a', 'alice'], ['room:a', 'bob'], ['room:ab', 'alice'], ['room:b', 'alice']] as const) c.set(room, user, true, c.generation);
    c.invalidate('room:a', 'alice');
    expect([c.get('room:a', 'alice'), c.get('room:a', 'bob')]).toEqual([undefined, true]);
    c.invalidateRoom('room:a');
    expect([c.get('room:a', 'bob'), c.get('room:ab', 'alice'), c.get('room:b', 'alice')]).toEqual([undefined, true, true]);
  });

  it('does not keep an answer read before an invalidation that came while it was read', () => {
    const { cache: c } = cache();
    const generation = c.generation;
    c.invalidate('room:a', 'alice'); // the member was removed while the store answered "member"
    c.set('room:a', 'alice', true, generation);
    expect(c.get('room:a', 'alice')).toBeUndefined();
    c.set('room:a', 'alice', false, c.generation);
    expect(c.get('room:a', 'alice')).toBe(false);
  });

  it('holds at most maxEntries, dropping the oldest; keeps nothing with a TTL or size of 0', () => {
    const { cache: c } = cache(1000, 2);
    c.set('r', 'a', true, c.generation);
    c.set('r', 'b', true, c.generation);
    c.set('r', 'c', true, c.generation);
    expect([c.size, c.get('r', 'a'), c.get('r', 'b'), c.get('r', 'c')]).toEqual([2, undefined, true, true]);
    for (const off of [cache(0, 10).cache, cache(1000, 0).cache]) {
      off.set('r', 'a', true, off.generation);
      expect(off.get('r', 'a')).toBeUndefined();
    }
  });
});

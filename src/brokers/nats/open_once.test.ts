import { describe, expect, it } from 'vitest';
import { OpenOnce } from './open_once.js';

describe('OpenOnce', () => {
  it('opens once for concurrent and later calls', async () => {
    let opened = 0;
    const once = new OpenOnce(() => Promise.resolve(++opened));
    expect(await Promise.all([once.get(), once.get(), once.get()])).toEqual([1, 1, 1]);
    expect(await once.get()).toBe(1);
    expect(opened).toBe(1);
  });

  it('forgets a failed opening, so that the next call opens again', async () => {
    let attempt = 0;
    const once = new OpenOnce(() => (++attempt === 1 ? Promise.reject(new Error('down')) : Promise.resolve(attempt)));
    await expect(once.get()).rejects.toThrow('down');
    await Promise.resolve();
    expect(await once.get()).toBe(2);
  });

  it('forgets an opening the caller found broken, and only that one', async () => {
    let opened = 0;
    const once = new OpenOnce(() => Promise.resolve(++opened));
    const first = once.get();
    await first;
    once.forget(first);
    const second = once.get();
    expect(await second).toBe(2);
    once.forget(first); // a stale forget leaves the current opening alone
    expect(once.current).toBe(second);
    expect(await once.get()).toBe(2);
  });
});

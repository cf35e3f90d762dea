import { afterEach, describe, expect, it, vi } from 'vitest';
import type { JsonText } from './json.js';
import type { Publication } from './publication.js';
import { OrderedDelivery } from './ordered_delivery.js';

const pub = (offset: number, epoch = 'e1'): Publication => ({ offset, epoch, data: JSON.stringify(offset) as JsonText, time: 0 });

function harness(history: Publication[] = [], holdMs = 50) {
  const delivered: Publication[] = [];
  const losses: [number, number][] = [];
  const fetches: [number, number][] = [];
  const order = new OrderedDelivery({
    holdMs,
    maxHeld: 5,
    deliver: (_channel, p) => delivered.push(p),
    fetch: (_channel, epoch, from, to) => {
      fetches.push([from, to]);
      return Promise.resolve(history.filter((p) => p.epoch === epoch && p.offset >= from && p.offset <= to));
    },
    onLoss: (_channel, from, to) => losses.push([from, to]),
  });
  return { order, delivered, losses, fetches, offsets: () => delivered.map((p) => p.offset) };
}

describe('OrderedDelivery', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('passes an in-order stream straight through, and unpositioned publications untouched', () => {
    const h = harness();
    h.order.track('c');
    h.order.start('c', { offset: 0, epoch: 'e1' });
    for (const o of [1, 2, 3]) h.order.push('c', pub(o));
    h.order.push('c', { ...pub(0), epoch: '' });
    expect(h.offsets()).toEqual([1, 2, 3, 0]);
  });

  it('holds a publication until its late predecessor arrives, without fetching', () => {
    vi.useFakeTimers();
    const h = harness();
    h.order.track('c');
    h.order.start('c', { offset: 4, epoch: 'e1' });
    h.order.push('c', pub(6));
    h.order.push('c', pub(7));
    expect(h.offsets()).toEqual([]);
    h.order.push('c', pub(5));
    expect(h.offsets()).toEqual([5, 6, 7]);
    vi.advanceTimersByTime(1000);
    expect(h.fetches).toEqual([]);
  });

  it('drops duplicates and what precedes the starting position', () => {
    const h = harness();
    h.order.track('c');
    h.order.push('c', pub(3));
    h.order.push('c', pub(4));
    h.order.start('c', { offset: 3, epoch: 'e1' });
    h.order.push('c', pub(4));
    h.order.push('c', pub(5));
    expect(h.offsets()).toEqual([4, 5]);
  });

  it('fetches a missing predecessor from history after the hold time', async () => {
    vi.useFakeTimers();
    const h = harness([pub(2)]);
    h.order.track('c');
    h.order.start('c', { offset: 1, epoch: 'e1' });
    h.order.push('c', pub(3));
    await vi.advanceTimersByTimeAsync(60);
    expect(h.fetches).toEqual([[2, 2]]);
    expect(h.offsets()).toEqual([2, 3]);
    expect(h.losses).toEqual([]);
  });

  it('skips what history no longer has, reporting the loss', async () => {
    vi.useFakeTimers();
    const h = harness([pub(3)]);
    h.order.track('c');
    h.order.start('c', { offset: 1, epoch: 'e1' });
    h.order.push('c', pub(4));
    await vi.advanceTimersByTimeAsync(60);
    expect(h.offsets()).toEqual([3, 4]);
    expect(h.losses).toEqual([[2, 2]]);
  });

  it('fetches at once when too many publications are held', async () => {
    const h = harness([pub(2)], 60_000);
    h.order.track('c');
    h.order.start('c', { offset: 1, epoch: 'e1' });
    for (let o = 3; o <= 7; o++) h.order.push('c', pub(o));
    await vi.waitFor(() => expect(h.offsets()).toEqual([2, 3, 4, 5, 6, 7]), { timeout: 1000 });
  });

  it('restarts at 1 on a new epoch and ignores late arrivals of the old one', () => {
    const h = harness();
    h.order.track('c');
    h.order.start('c', { offset: 7, epoch: 'e1' });
    h.order.push('c', pub(8));
    h.order.push('c', pub(1, 'e2'));
    h.order.push('c', pub(9));
    h.order.push('c', pub(2, 'e2'));
    expect(h.delivered.map((p) => `${p.epoch}:${p.offset}`)).toEqual(['e1:8', 'e2:1', 'e2:2']);
  });

  it('adopts the first arrival when the starting position could not be read', () => {
    const h = harness();
    h.order.track('c');
    h.order.startAtFirstArrival('c');
    h.order.push('c', pub(12));
    h.order.push('c', pub(13));
    expect(h.offsets()).toEqual([12, 13]);
  });

  it('stops delivering an untracked channel and forgets its timers', async () => {
    vi.useFakeTimers();
    const h = harness([pub(2)]);
    h.order.track('c');
    h.order.start('c', { offset: 1, epoch: 'e1' });
    h.order.push('c', pub(3));
    h.order.untrack('c');
    await vi.advanceTimersByTimeAsync(100);
    h.order.push('c', pub(2));
    expect(h.offsets()).toEqual([]);
    expect(h.fetches).toEqual([]);
  });

  it('starts a channel met mid-stream at the lowest arrival within the hold', () => {
    vi.useFakeTimers();
    const h = harness([], 50);
    h.order.trackFromArrivals('c');
    h.order.push('c', pub(7));
    h.order.push('c', pub(6)); // its fan-out crossed 7's
    expect(h.offsets()).toEqual([]);
    vi.advanceTimersByTime(50);
    expect(h.offsets()).toEqual([6, 7]);
    h.order.push('c', pub(6));
    h.order.push('c', pub(8));
    expect(h.offsets()).toEqual([6, 7, 8]);
    h.order.trackFromArrivals('c'); // already tracked: no restart
    h.order.push('c', pub(9));
    expect(h.offsets()).toEqual([6, 7, 8, 9]);
  });

  it('starts a channel met mid-stream at once from offset 1', () => {
    vi.useFakeTimers();
    const h = harness([], 50);
    h.order.trackFromArrivals('c');
    h.order.push('c', pub(1));
    h.order.push('c', pub(2));
    expect(h.offsets()).toEqual([1, 2]);
  });

  it('keeps arrivals below the starting position when asked to', () => {
    const h = harness();
    h.order.track('c');
    h.order.push('c', pub(3));
    h.order.push('c', pub(4));
    h.order.start('c', { offset: 4, epoch: 'e1' }, true);
    h.order.push('c', pub(5));
    expect(h.offsets()).toEqual([3, 4, 5]);
  });
});

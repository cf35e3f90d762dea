import { describe, expect, it } from 'vitest';
import { Hub, Subscribers, type ChannelSubscriber } from './hub.js';
import type { JsonText } from './json.js';
import type { Publication } from './publication.js';

/** A subscriber that records the offsets it receives and its gaps, and may act while it receives. */
function recorder(name: string, log: string[], onPublication?: () => void): ChannelSubscriber {
  return {
    onPublication: (frames) => {
      log.push(`${name}:${frames.event.offset}`);
      onPublication?.();
    },
    onJoin: () => undefined,
    onLeave: () => undefined,
    onGap: (channel) => log.push(`${name}:gap:${channel}`),
  };
}

const pub = (offset: number): Publication => ({ offset, epoch: 'e', data: '1' as JsonText, time: 0 });

describe('Subscribers', () => {
  it('holds one subscriber without a Set, and two or more in one, in the order added', () => {
    const log: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((n) => recorder(n, log)) as [ChannelSubscriber, ChannelSubscriber, ChannelSubscriber];
    const set = new Subscribers();
    expect(set.size).toBe(0);
    expect(set.delete(a)).toBe(false);
    set.add(a);
    set.add(a);
    expect([set.size, set.has(a), set.has(b)]).toEqual([1, true, false]);
    set.add(b);
    set.add(c);
    set.add(b);
    expect(set.size).toBe(3);
    expect(set.list()).toEqual([a, b, c]);
    expect(set.delete(b)).toBe(true);
    expect(set.delete(b)).toBe(false);
    expect(set.list()).toEqual([a, c]);
    expect(set.delete(a) && set.delete(c)).toBe(true);
    expect([set.size, set.list()]).toEqual([0, []]);
    set.add(b);
    expect([set.size, set.has(b), set.list()]).toEqual([1, true, [b]]);
  });

  it('does not call a subscriber removed during the visit, with one subscriber or several', () => {
    const log: string[] = [];
    const set = new Subscribers();
    const b = recorder('b', log);
    const a = recorder('a', log, () => set.delete(b));
    set.add(a);
    set.add(b);
    set.each((s) => s.onPublication({ event: pub(1) } as never));
    expect(log).toEqual(['a:1']);
    const single = new Subscribers();
    const self: ChannelSubscriber = recorder('self', log, () => single.delete(self));
    single.add(self);
    single.each((s) => s.onPublication({ event: pub(2) } as never));
    single.each((s) => s.onPublication({ event: pub(3) } as never));
    expect(log).toEqual(['a:1', 'self:2']);
  });
});

describe('Hub', () => {
  it('delivers to the one subscriber of a channel, then to each of several, and keeps counts', () => {
    const hub = new Hub();
    const log: string[] = [];
    const a = recorder('a', log);
    const b = recorder('b', log);
    expect(hub.add('c', a)).toBe(true);
    expect(hub.add('c', a)).toBe(false);
    hub.handlePublication('c', pub(1));
    expect(hub.add('c', b)).toBe(false);
    expect([hub.subscriberCount('c'), hub.subscriptionCount, hub.channelCount]).toEqual([2, 2, 1]);
    hub.handlePublication('c', pub(2));
    expect(hub.remove('c', a)).toBe(false);
    expect(hub.remove('c', a)).toBe(false);
    hub.handlePublication('c', pub(3));
    expect(hub.remove('c', b)).toBe(true);
    hub.handlePublication('c', pub(4));
    expect(log).toEqual(['a:1', 'a:2', 'b:2', 'b:3']);
    expect([hub.subscriberCount('c'), hub.subscriptionCount, hub.channelCount, hub.hasSubscribers('c')]).toEqual([0, 0, 0, false]);
    expect(hub.drop('c')).toBe(true);
  });

  it('sends every subscriber of a channel and of a matching pattern through recovery on a gap', () => {
    const hub = new Hub();
    const log: string[] = [];
    hub.add('c', recorder('a', log));
    hub.add('c', recorder('b', log));
    hub.add('d', recorder('d', log));
    hub.addPattern('c*', (channel) => channel.startsWith('c'), recorder('p', log));
    hub.handlePublication('c', pub(1));
    hub.handlePublication('c', pub(3));
    hub.handlePublication('d', pub(1));
    hub.handlePublication('d', pub(5));
    expect(log).toEqual(['a:1', 'b:1', 'p:1', 'a:gap:c', 'b:gap:c', 'p:gap:c', 'd:1', 'd:gap:d']);
  });
});

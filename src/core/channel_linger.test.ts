/**
 * A node keeps following a channel for `client.channel_linger` after its last subscriber
 * left: clients that drop together and come back recover from the node's memory, without
 * a history read on the bus; after the linger the node lets the channel go.
 */
import { describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import type { HistoryQuery, HistoryResult } from '../brokers/broker.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import type { Node } from './node.js';

/** A memory broker that records the calls the node makes on it. */
class CountingBroker extends MemoryBroker {
  readonly historyReads: string[] = [];
  readonly unsubscribed: string[] = [];

  override history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    this.historyReads.push(channel);
    return super.history(channel, query);
  }

  override unsubscribe(channels: readonly string[]): Promise<void> {
    this.unsubscribed.push(...channels);
    return super.unsubscribe(channels);
  }
}

function recoveredOffsets(messages: Record<string, unknown>[], id: number): { recovered: unknown; offsets: number[] } | undefined {
  const reply = messages.find((m) => m['id'] === id)?.['subscribe'] as { recovered?: boolean; publications?: { offset: number }[] } | undefined;
  return reply && { recovered: reply.recovered, offsets: (reply.publications ?? []).map((p) => p.offset) };
}

async function subscribedThenGone(node: Node, broker: CountingBroker): Promise<string> {
  const first = await inProcessClient(node, 'first');
  first.client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:linger' } }));
  await first.client.idle();
  const channel = node.channels.resolve('feed:linger');
  for (let i = 1; i <= 5; i++) await node.publish(channel, `${i}` as never);
  const { epoch } = (await node.history(channel, { limit: 0 })).position;
  first.client.handleClose();
  broker.historyReads.length = 0;
  return epoch;
}

describe('channel linger', () => {
  it('recovers a client that comes back within the linger from memory, publications made meanwhile included', async () => {
    const broker = new CountingBroker();
    const node = await inProcessNode(broker, { client: { channel_linger: '30s' } });
    const epoch = await subscribedThenGone(node, broker);
    expect(node.hub.hasSubscribers('feed:linger')).toBe(false);
    expect(node.hub.channelCount).toBe(0);
    // Published while nobody on this node listens: the node still follows the channel.
    await node.publish(node.channels.resolve('feed:linger'), '6' as never);

    const back = await inProcessClient(node, 'first');
    back.client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:linger', recover: true, offset: 2, epoch } }));
    await back.client.idle();
    expect(recoveredOffsets(back.transport.messages(), 2)).toEqual({ recovered: true, offsets: [3, 4, 5, 6] });
    expect(broker.historyReads).toEqual([]);
    expect(broker.unsubscribed).toEqual([]);
    await node.shutdown({ code: 3001, reason: 'shutdown' });
  });

  it('lets the channel go once the linger is over, and then reads history from the bus', async () => {
    const broker = new CountingBroker();
    const node = await inProcessNode(broker, { client: { channel_linger: '100ms' } });
    const epoch = await subscribedThenGone(node, broker);
    // The node sweeps lingering channels once a second.
    await expect.poll(() => broker.unsubscribed, { timeout: 5000, interval: 50 }).toEqual(['feed:linger']);

    const back = await inProcessClient(node, 'first');
    back.client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:linger', recover: true, offset: 2, epoch } }));
    await back.client.idle();
    expect(recoveredOffsets(back.transport.messages(), 2)).toEqual({ recovered: true, offsets: [3, 4, 5] });
    expect(broker.historyReads).toEqual(['feed:linger']);
    await node.shutdown({ code: 3001, reason: 'shutdown' });
  });

  it('with channel_linger 0 stops following the channel as soon as its last subscriber leaves', async () => {
    const broker = new CountingBroker();
    const node = await inProcessNode(broker, { client: { channel_linger: 0 } });
    await subscribedThenGone(node, broker);
    await expect.poll(() => broker.unsubscribed, { timeout: 1000, interval: 10 }).toEqual(['feed:linger']);
    await node.shutdown({ code: 3001, reason: 'shutdown' });
  });
});

/**
 * The last guard before the wire: a subscription never hands its client an offset that is
 * not the next one, nor one of another epoch. Whatever the hub let through, the subscriber
 * goes back through recovery instead (unsubscribe push 2500), and the metric counts it.
 */
import { describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import { FrameCache } from './hub.js';
import type { JsonText } from './json.js';
import type { Publication } from './publication.js';

const pub = (offset: number, epoch: string): Publication => ({ offset, epoch, data: `{"n":${offset}}` as JsonText, time: Date.now() });

async function subscribed(channel: string) {
  const node = await inProcessNode(new MemoryBroker(), { namespaces: { feed: { history_size: 100, history_ttl: '1h', force_recovery: true } } });
  const { client, transport } = await inProcessClient(node, 'watcher');
  client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel } }));
  await client.idle();
  const sub = client.subscriptions.get(channel);
  if (!sub) throw new Error('not subscribed');
  const epoch = (transport.messages().find((m) => m['id'] === 2)?.['subscribe'] as { epoch: string }).epoch;
  transport.written.splice(0);
  const deliver = (p: Publication): void => sub.onPublication(new FrameCache(channel, p));
  const pushes = (): { pub?: { offset: number }; unsubscribe?: { code: number } }[] =>
    transport.messages().map((m) => (m['push'] ?? {}) as { pub?: { offset: number }; unsubscribe?: { code: number } });
  return { node, client, epoch, deliver, pushes };
}

describe('subscription sequence guard', () => {
  it('delivers the next offset, drops one already sent, and sends the subscriber through recovery on a skipped offset', async () => {
    const { node, client, epoch, deliver, pushes } = await subscribed('feed:guard');
    deliver(pub(1, epoch));
    deliver(pub(2, epoch));
    deliver(pub(2, epoch));
    deliver(pub(4, epoch));
    expect(pushes().map((p) => p.pub?.offset ?? `unsubscribe ${p.unsubscribe?.code}`)).toEqual([1, 2, 'unsubscribe 2500']);
    expect(client.subscriptions.has('feed:guard')).toBe(false);
    expect(node.stats.outOfSequence.get('subscriber')).toBe(1);
    await node.shutdown({ code: 3001, reason: 'test' });
  });

  it('sends the subscriber through recovery when a publication of another epoch arrives', async () => {
    const { node, epoch, deliver, pushes } = await subscribed('feed:epoch');
    deliver(pub(1, epoch));
    deliver(pub(2, `${epoch}-other`));
    expect(pushes().map((p) => p.pub?.offset ?? `unsubscribe ${p.unsubscribe?.code}`)).toEqual([1, 'unsubscribe 2500']);
    expect(node.stats.outOfSequence.get('subscriber')).toBe(1);
    await node.shutdown({ code: 3001, reason: 'test' });
  });
});

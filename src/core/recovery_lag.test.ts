/**
 * On a bus, history can be ahead of a node's live stream: a publication is in history as
 * soon as it is accepted, and reaches the node's hub a moment later. A subscriber that
 * recovers in that moment gets it in its subscribe reply, and must not get it again live.
 */
import { describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import type { BrokerEventHandler } from '../brokers/broker.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import type { Publication } from './publication.js';

/** A memory broker whose fan-out lags: publications reach the node only on `release()`. */
class LaggingBroker extends MemoryBroker {
  private readonly inFlight: [string, Publication][] = [];
  lagging = false;
  private target: BrokerEventHandler | undefined;

  override start(handler: BrokerEventHandler): Promise<void> {
    this.target = handler;
    return super.start({
      handlePublication: (channel, pub) => {
        if (this.lagging) this.inFlight.push([channel, pub]);
        else handler.handlePublication(channel, pub);
      },
      handleJoin: (c, i) => handler.handleJoin(c, i),
      handleLeave: (c, i) => handler.handleLeave(c, i),
      handleControl: (m) => handler.handleControl(m),
      handleResync: () => handler.handleResync(),
    });
  }

  release(): void {
    this.lagging = false;
    for (const [channel, pub] of this.inFlight.splice(0)) this.target?.handlePublication(channel, pub);
  }
}

function offsetsOf(messages: Record<string, unknown>[], channel: string): number[] {
  const out: number[] = [];
  for (const m of messages) {
    const reply = m['subscribe'] as { publications?: { offset: number }[] } | undefined;
    if (reply?.publications) out.push(...reply.publications.map((p) => p.offset));
    const push = m['push'] as { channel?: string; pub?: { offset: number } } | undefined;
    if (push?.pub && push.channel === channel) out.push(push.pub.offset);
  }
  return out;
}

describe('recovery while the live stream lags behind history', () => {
  it('delivers each publication once: from the reply, or live, never both', async () => {
    const broker = new LaggingBroker();
    const node = await inProcessNode(broker);
    const watcher = await inProcessClient(node, 'watcher');
    watcher.client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:lag' } }));
    await watcher.client.idle();
    const channel = node.channels.resolve('feed:lag');
    for (let i = 1; i <= 3; i++) await node.publish(channel, `${i}` as never);

    // Publications 4 and 5 are accepted (in history) but still on their way to this node.
    broker.lagging = true;
    await node.publish(channel, '4' as never);
    await node.publish(channel, '5' as never);

    const late = await inProcessClient(node, 'late');
    const epoch = (await node.history(channel, { limit: 0 })).position.epoch;
    late.client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:lag', recover: true, offset: 2, epoch } }));
    await late.client.idle();
    broker.release();
    await node.publish(channel, '6' as never);

    expect(offsetsOf(late.transport.messages(), 'feed:lag')).toEqual([3, 4, 5, 6]);
    expect(offsetsOf(watcher.transport.messages(), 'feed:lag')).toEqual([1, 2, 3, 4, 5, 6]);
    await node.shutdown({ code: 3001, reason: 'shutdown' });
  });
});

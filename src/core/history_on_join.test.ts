/**
 * history_on_join: a subscriber that does not recover gets the channel's latest publications
 * in its subscribe reply, before the live stream, whether the node reads them from history
 * (persistent store or bus) or answers from memory.
 */
import { describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import type { JsonText } from './json.js';

type Reply = { subscribe?: { publications?: { offset: number; data: { n: number } }[]; offset?: number; recovered?: boolean; was_recovering?: boolean } };

async function subscribeReply(node: Awaited<ReturnType<typeof inProcessNode>>, user: string, channel: string, extra: Record<string, unknown> = {}) {
  const { client, transport } = await inProcessClient(node, user);
  client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel, ...extra } }));
  await client.idle();
  const reply = transport.messages().find((m) => m['id'] === 2) as Reply | undefined;
  return { client, transport, reply: reply?.subscribe };
}

describe('history_on_join', () => {
  for (const [label, options] of [
    ['a persistent channel', { persist: true, history_on_join: 3 }],
    ['a channel with bus history', { history_size: 100, history_ttl: '1h', history_on_join: 3 }],
  ] as const) {
    it(`gives a fresh subscriber of ${label} the last 3 publications, from history then from memory, then the live stream`, async () => {
      const node = await inProcessNode(new MemoryBroker(), { namespaces: { room: { ...options, allow_publish: 'authenticated' } } });
      const channel = node.channels.resolve('room:dev');
      for (let n = 1; n <= 5; n++) await node.publish(channel, JSON.stringify({ n }) as JsonText);

      // Nobody follows the channel yet: read from history.
      const first = await subscribeReply(node, 'first', 'room:dev');
      expect(first.reply?.publications?.map((p) => p.data.n)).toEqual([3, 4, 5]);
      expect(first.reply?.offset).toBe(5);
      expect(first.reply?.was_recovering).toBeUndefined();

      await node.publish(channel, JSON.stringify({ n: 6 }) as JsonText);
      // The node follows it now: from memory.
      const second = await subscribeReply(node, 'second', 'room:dev');
      expect(second.reply?.publications?.map((p) => p.data.n)).toEqual([4, 5, 6]);

      await node.publish(channel, JSON.stringify({ n: 7 }) as JsonText);
      await second.client.idle();
      const live = second.transport.messages().flatMap((m) => ((m['push'] as { pub?: { data: { n: number } } } | undefined)?.pub ? [(m['push'] as { pub: { data: { n: number } } }).pub.data.n] : []));
      expect(live).toEqual([7]);

      // A recovering subscriber gets what it missed, not the latest.
      const again = await subscribeReply(node, 'third', 'room:dev', { recoverable: true, recover: true, offset: 6 });
      expect(again.reply?.publications?.map((p) => p.data.n)).toEqual([7]);
      await node.shutdown({ code: 3001, reason: 'test' });
    });
  }
});

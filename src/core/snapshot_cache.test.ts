/**
 * The snapshot cache behind the server API `latest`: a miss reads the bus once and keeps the
 * channel followed, so that the next reads are answered from memory and stay current with
 * every publication; entries go after their TTL; a channel the node follows for its
 * subscribers is answered from the hub's memory. And cache recovery mode over the client
 * protocol: the latest publication in the subscribe reply, from history then from memory.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import type { JsonText } from './json.js';
import type { Node } from './node.js';

const LATEST_NS = { history_size: 1, history_ttl: '1h', force_recovery: true, force_recovery_mode: 'cache', allow_publish: 'authenticated' } as const;

type SubscribeReply = { publications?: { offset: number; data: { n: number } }[]; offset?: number; epoch?: string; recovered?: boolean; was_recovering?: boolean; recoverable?: boolean };

describe('snapshot cache', () => {
  let node: Node | undefined;
  afterEach(async () => {
    await node?.shutdown({ code: 3001, reason: 'shutdown' });
    node = undefined;
  });

  const value = async (n: Node, name: string): Promise<{ n?: number; cached: boolean }> => {
    const snapshot = await n.latest(n.channels.resolve(name));
    return { ...(snapshot.publication ? (JSON.parse(snapshot.publication.data) as { n: number }) : {}), cached: snapshot.cached };
  };

  it('misses once, then answers from memory, kept current by every publication', async () => {
    node = await inProcessNode(new MemoryBroker(), { namespaces: { live: LATEST_NS } });
    const channel = node.channels.resolve('live:a');
    await node.publish(channel, JSON.stringify({ n: 1 }) as JsonText);
    expect(await value(node, 'live:a')).toEqual({ n: 1, cached: false });
    expect(await value(node, 'live:a')).toEqual({ n: 1, cached: true });
    await node.publish(channel, JSON.stringify({ n: 2 }) as JsonText);
    expect(await value(node, 'live:a')).toEqual({ n: 2, cached: true });
    expect({ hits: node.stats.snapshotHits, misses: node.stats.snapshotMisses }).toEqual({ hits: 2, misses: 1 });
  });

  it('reads the bus again once an entry outlived its TTL without a read', async () => {
    node = await inProcessNode(new MemoryBroker(), { namespaces: { live: LATEST_NS }, latest_cache: { ttl: '100ms' }, client: { channel_linger: 0 } });
    await node.publish(node.channels.resolve('live:b'), JSON.stringify({ n: 1 }) as JsonText);
    expect((await value(node, 'live:b')).cached).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect((await value(node, 'live:b')).cached).toBe(false);
    expect(node.stats.snapshotMisses).toBe(2);
  });

  it('with size 0 never keeps an entry, and a channel with no publication has no latest', async () => {
    node = await inProcessNode(new MemoryBroker(), { namespaces: { live: LATEST_NS }, latest_cache: { size: 0 } });
    expect(await value(node, 'live:empty')).toEqual({ cached: false });
    expect(await value(node, 'live:empty')).toEqual({ cached: false });
    expect(node.stats.snapshotHits).toBe(0);
  });

  it('refuses a channel that keeps no history', async () => {
    node = await inProcessNode(new MemoryBroker());
    await expect(node.latest(node.channels.resolve('plain'))).rejects.toMatchObject({ code: 'NOT_AVAILABLE' });
  });

  it('hands the latest publication in the subscribe reply, as Centrifugo cache mode: from history, then from memory', async () => {
    node = await inProcessNode(new MemoryBroker(), { namespaces: { live: LATEST_NS } });
    const channel = node.channels.resolve('live:c');
    for (let n = 1; n <= 3; n++) await node.publish(channel, JSON.stringify({ n }) as JsonText);
    const reply = async (user: string, extra: Record<string, unknown>): Promise<SubscribeReply | undefined> => {
      const { client, transport } = await inProcessClient(node as Node, user);
      client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'live:c', ...extra } }));
      await client.idle();
      return (transport.messages().find((m) => m['id'] === 2) as { subscribe?: SubscribeReply } | undefined)?.subscribe;
    };
    // Nobody follows the channel: read from history. A recovering client (the SDK's `since: {}`).
    const first = await reply('first', { recover: true });
    expect(first).toMatchObject({ recoverable: true, was_recovering: true, recovered: true, offset: 3 });
    expect(first?.publications?.map((p) => p.data.n)).toEqual([3]);
    // The node follows it now (the first subscriber): from memory; a client resubscribing from offset 1 gets the latest only.
    await node.publish(channel, JSON.stringify({ n: 4 }) as JsonText);
    const second = await reply('second', { recover: true, offset: 1, epoch: first?.epoch });
    expect(second).toMatchObject({ was_recovering: true, recovered: true, offset: 4 });
    expect(second?.publications?.map((p) => p.data.n)).toEqual([4]);
    // A client that does not recover gets the latest too, without was_recovering.
    const third = await reply('third', {});
    expect(third?.was_recovering).toBeUndefined();
    expect(third?.publications?.map((p) => p.data.n)).toEqual([4]);
  });
});

/**
 * A subscribe that meets the bus down waits for it (client.subscribe_bus_wait) instead of
 * refusing at once: a refused SDK client goes into a resubscribe backoff that outlasts the
 * outage.
 */
import { describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import type { HistoryQuery, HistoryResult } from '../brokers/broker.js';

/** The in-memory bus, down (every subscribe and history read fails) until `up()`. */
class FlakyBroker extends MemoryBroker {
  down = false;
  attempts = 0;

  override async subscribe(channels: readonly string[]): Promise<void> {
    this.attempts++;
    if (this.down) throw new Error('bus down');
    return super.subscribe(channels);
  }

  override async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    if (this.down) throw new Error('bus down');
    return super.history(channel, query);
  }
}

async function setup(wait: string) {
  const broker = new FlakyBroker();
  const node = await inProcessNode(broker, { client: { subscribe_bus_wait: wait }, namespaces: { feed: { history_size: 10, history_ttl: '1h', force_recovery: true } } });
  const { client, transport } = await inProcessClient(node, 'watcher');
  const reply = async (id: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = transport.messages().find((m) => m['id'] === id);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no reply ${id}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { broker, node, client, reply };
}

describe('subscribe while the bus is down', () => {
  it('is answered once the bus is back within subscribe_bus_wait, with no error', async () => {
    const { broker, node, client, reply } = await setup('3s');
    broker.down = true;
    const started = Date.now();
    client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:a' } }));
    setTimeout(() => {
      broker.down = false;
    }, 500);
    const answer = await reply(2);
    expect(answer['error']).toBeUndefined();
    expect(answer['subscribe']).toMatchObject({ recoverable: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(broker.attempts).toBeGreaterThan(1);
    expect(client.subscriptions.has('feed:a')).toBe(true);
    await node.shutdown({ code: 3001, reason: 'test' });
  });

  it('is refused with the temporary bus error once subscribe_bus_wait has passed, and at once with 0', async () => {
    for (const [wait, atLeast, below] of [
      ['400ms', 200, 2000],
      ['0s', 0, 150],
    ] as const) {
      const { broker, node, client, reply } = await setup(wait);
      broker.down = true;
      const started = Date.now();
      client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'feed:b' } }));
      const answer = await reply(2);
      const elapsed = Date.now() - started;
      expect(answer['error']).toMatchObject({ code: 100, temporary: true });
      expect(elapsed).toBeGreaterThanOrEqual(atLeast);
      expect(elapsed).toBeLessThan(below);
      expect(client.subscriptions.has('feed:b')).toBe(false);
      // The connection still serves: the next subscribe, with the bus back, succeeds.
      broker.down = false;
      client.handleFrame(JSON.stringify({ id: 3, subscribe: { channel: 'feed:b' } }));
      expect((await reply(3))['error']).toBeUndefined();
      await node.shutdown({ code: 3001, reason: 'test' });
    }
  });
});

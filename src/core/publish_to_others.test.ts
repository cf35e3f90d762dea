/**
 * Publisher excluded on a persistent channel (store, then bus): the exclusion tag goes through
 * the store like any tag, the publisher's stream skips its own publication without a gap, and
 * neither the live pushes nor history show the tag. test/publish_to_others.test.ts covers the
 * buses across instances.
 */
import { describe, expect, it } from 'vitest';
import { inProcessClient, inProcessNode } from '../../test/helpers/in_process.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import { Disconnects } from './errors.js';
import { EXCLUDE_CLIENT_TAG } from './publication.js';

type Push = { push?: { channel?: string; pub?: { data: { n: number }; offset?: number; tags?: Record<string, string> } } };

function pubs(messages: Record<string, unknown>[]): { n: number; offset?: number; tags?: Record<string, string> }[] {
  return (messages as Push[]).flatMap((m) => (m.push?.pub ? [{ n: m.push.pub.data.n, offset: m.push.pub.offset, tags: m.push.pub.tags }] : []));
}

describe('publish to the others on a persistent channel', () => {
  it('leaves the publishing connection out of the live stream, keeps the publication whole in the store', async () => {
    const node = await inProcessNode(new MemoryBroker());
    const alice = await inProcessClient(node, 'alice');
    const bob = await inProcessClient(node, 'bob');
    for (const c of [alice, bob]) {
      c.client.handleFrame(JSON.stringify({ id: 2, subscribe: { channel: 'chat:lobby' } }));
      await c.client.idle();
    }
    alice.client.handleFrame(JSON.stringify({ id: 3, rpc: { method: 'relais.publish_to_others', data: { channel: 'chat:lobby', data: { n: 1 } } } }));
    alice.client.handleFrame(JSON.stringify({ id: 4, publish: { channel: 'chat:lobby', data: { n: 2 } } }));
    await alice.client.idle();
    const deadline = Date.now() + 5000;
    while (pubs(bob.transport.messages()).length < 2 || pubs(alice.transport.messages()).length < 1) {
      if (Date.now() > deadline) throw new Error('publications did not arrive');
      await new Promise((r) => setTimeout(r, 10));
    }
    const reply = alice.transport.messages().find((m) => m['id'] === 3) as { rpc?: { data?: { offset?: number } } } | undefined;
    expect(reply?.rpc?.data?.offset).toBe(1);
    expect(pubs(bob.transport.messages())).toEqual([
      { n: 1, offset: 1, tags: undefined },
      { n: 2, offset: 2, tags: undefined },
    ]);
    expect(pubs(alice.transport.messages())).toEqual([{ n: 2, offset: 2, tags: undefined }]);
    const history = await node.history(node.channels.resolve('chat:lobby'), { limit: 10 });
    expect(history.publications.map((p) => JSON.parse(p.data) as { n: number })).toEqual([{ n: 1 }, { n: 2 }]);
    expect(history.publications.some((p) => p.tags?.[EXCLUDE_CLIENT_TAG] !== undefined)).toBe(false);
    expect(history.publications[0]?.excludeClient).toBe(alice.client.id);
    await node.shutdown(Disconnects.shutdown);
  });
});

/**
 * Publisher excluded (docs/protocol.md#publishing-to-the-others): a client publishes with
 * `rpc relais.publish_to_others` and does not get its publication back live, while every
 * other subscriber does, on its instance and on another one over the bus; the server API
 * does the same with `exclude_client`. The offsets the publisher sees stay contiguous.
 */
import type { Subscription } from 'centrifuge';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { busEnv, deletePrefix, describeWithBus, sharedBusAvailable, SHARED_URL, type BusKind } from './helpers/buses.js';
import { sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const BUSES: readonly BusKind[] = ['redis', 'nats'];
const NAMESPACES = {
  // The SDK sees offsets (force_recovery): the publisher's stream must show no gap where its own publication was left out.
  room: { history_size: 100, history_ttl: '5m', force_recovery: true, allow_publish: 'authenticated', allow_history: true },
  live: { allow_publish: 'authenticated' },
  quiet: {},
};

const available = await Promise.all(BUSES.map(async (kind) => ({ kind, up: await sharedBusAvailable(kind) })));

for (const { kind, up } of available) {
  describeWithBus(`publisher excluded across two instances on ${kind}`, up ? undefined : `${kind} is not running at ${SHARED_URL[kind]}`, () => {
    const prefix = `relais-test-others-${kind}-${process.pid}`;
    let a: RelaisProcess;
    let b: RelaisProcess;
    const clients: SdkClient[] = [];

    beforeAll(async () => {
      const env = busEnv(kind, SHARED_URL[kind], prefix);
      [a, b] = await Promise.all([startRelais({ env, config: { namespaces: NAMESPACES } }), startRelais({ env, config: { namespaces: NAMESPACES } })]);
    });

    afterAll(async () => {
      for (const c of clients) c.close();
      await Promise.all([a?.stop(), b?.stop()]);
      await deletePrefix(kind, prefix).catch(() => undefined);
    });

    function subscription(c: SdkClient, channel: string): Subscription {
      const sub = c.centrifuge.getSubscription(channel);
      if (!sub) throw new Error(`no subscription to ${channel}`);
      return sub;
    }

    async function client(on: RelaisProcess, user: string): Promise<SdkClient> {
      const c = await sdkClient(on, user);
      clients.push(c);
      return c;
    }

    for (const channel of ['room:one', 'live:one']) {
      it(`leaves the publisher out of its own publications in ${channel}, and no one else`, async () => {
        const [alice, aliceTab, bob, carol] = await Promise.all([client(a, 'alice'), client(a, 'alice'), client(a, 'bob'), client(b, 'carol')]);
        await Promise.all([alice, aliceTab, bob, carol].map((c) => c.subscribe(channel).ready(5000)));

        const reply = await alice.centrifuge.rpc('relais.publish_to_others', { channel, data: { n: 1 } });
        await subscription(alice, channel).publish({ n: 2 });
        await alice.centrifuge.rpc('relais.publish_to_others', { channel, data: { n: 3 } });
        await subscription(bob, channel).publish({ n: 4 });

        for (const c of [aliceTab, bob, carol]) await waitFor(() => c.pubs(channel).length >= 4, 5000, `all four at ${channel}`);
        await waitFor(() => alice.pubs(channel).length >= 2, 5000, 'the publisher gets the others');
        await sleep(200);
        // The publisher's own tab (another connection of the same user) still gets it: the connection is left out, not the user.
        for (const c of [aliceTab, bob, carol]) expect(c.pubs(channel).map((p) => (p.data as { n: number }).n)).toEqual([1, 2, 3, 4]);
        expect(alice.pubs(channel).map((p) => (p.data as { n: number }).n)).toEqual([2, 4]);
        if (channel.startsWith('room:')) {
          expect(reply.data).toMatchObject({ offset: 1 });
          expect(alice.pubs(channel).map((p) => p.offset)).toEqual([2, 4]);
          // History keeps the publication whole, with no trace of the exclusion.
          const history = await a.call<{ publications: { data: { n: number }; tags?: unknown }[] }>('history', { channel, limit: 10 });
          expect(history.publications.map((p) => p.data.n)).toEqual([1, 2, 3, 4]);
          expect(history.publications.every((p) => p.tags === undefined)).toBe(true);
        } else {
          expect(reply.data).toEqual({});
        }
        for (const c of [alice, aliceTab, bob, carol]) expect(c.pubs(channel).every((p) => p.tags === undefined)).toBe(true);
      });
    }

    it('leaves out the client named by the server API exclude_client', async () => {
      const [dave, erin] = await Promise.all([client(a, 'dave'), client(b, 'erin')]);
      await Promise.all([dave, erin].map((c) => c.subscribe('room:api').ready(5000)));
      // The connect reply's client id, as the app's frontend hands it to its backend.
      const reconnected = new Promise<string>((resolve) => dave.centrifuge.once('connected', (ctx) => resolve(ctx.client)));
      dave.centrifuge.disconnect();
      dave.centrifuge.connect();
      const daveId = await reconnected;
      await subscription(dave, 'room:api').ready(5000);
      await b.call('publish', { channel: 'room:api', data: { n: 1 }, exclude_client: daveId });
      await b.call('broadcast', { channels: ['room:api'], data: { n: 2 }, exclude_client: daveId });
      await b.call('publish', { channel: 'room:api', data: { n: 3 } });
      await waitFor(() => erin.pubs('room:api').length >= 3 && dave.pubs('room:api').length >= 1, 5000, 'the publications');
      await sleep(200);
      expect(erin.pubs('room:api').map((p) => (p.data as { n: number }).n)).toEqual([1, 2, 3]);
      expect(dave.pubs('room:api').map((p) => (p.data as { n: number }).n)).toEqual([3]);
      const reserved = await b.api('publish', { channel: 'room:api', data: {}, tags: { relais_exclude_client: daveId } });
      expect(reserved.body.error?.code).toBe(107);
    });

    it('refuses a malformed publish_to_others and applies the namespace rule to it', async () => {
      const frank = await client(a, 'frank');
      await expect(frank.centrifuge.rpc('relais.publish_to_others', { data: 1 })).rejects.toMatchObject({ code: 107 });
      await expect(frank.centrifuge.rpc('relais.publish_to_others', { channel: 'quiet:x', data: 1 })).rejects.toMatchObject({ code: 103 });
    });
  });
}

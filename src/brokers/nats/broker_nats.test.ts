/**
 * The NATS broker against the machine's real NATS with JetStream (NATS_TEST_URL, default
 * nats://127.0.0.1:4222), each test on its own prefix whose streams and buckets are deleted
 * afterwards; and against a nats-server child process of its own for the failure tests
 * (the shared server is never stopped).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { JsonText } from '../../core/json.js';
import type { PublishOptions } from '../broker.js';
import { describeBrokerContract, RecordingHandler } from '../broker.contract.js';
import { NatsBroker, type NatsBrokerOptions } from './broker_nats.js';
import { encodeFanOut, encodeStoredEntry } from './codec.js';
import { natsNames } from './names.js';
import { NatsPresenceManager } from './presence_nats.js';
import { deleteNatsPrefix } from './resources.js';
import { freePort, natsWithJetStream, PrivateBus, serverBinaryAvailable } from '../../../test/helpers/buses.js';

const NATS_URL = process.env.NATS_TEST_URL ?? 'nats://127.0.0.1:4222';
const json = (value: unknown): JsonText => JSON.stringify(value) as JsonText;
const withHistory: PublishOptions = { historySize: 10, historyTtlMs: 60_000, historyMetaTtlMs: 3_600_000 };

function newPrefix(): string {
  return `relais_test_${randomBytes(5).toString('hex')}`;
}

const available = await natsWithJetStream(NATS_URL, 2000);

if (!available && process.env.CI === 'true') {
  describe('NATS broker', () => {
    it(`needs NATS with JetStream at ${NATS_URL}`, () => {
      throw new Error(`NATS with JetStream is unreachable at ${NATS_URL}; CI must provide it (nats-server -js)`);
    });
  });
} else if (!available) {
  describe.skip(`NATS broker: skipped, no NATS with JetStream at ${NATS_URL} (start nats-server -js, or set NATS_TEST_URL)`, () => {
    it('runs against a real NATS', () => undefined);
  });
} else {
  /** Prefixes whose streams and buckets are deleted once their test is over. */
  const toDelete = new Set<string>();
  const cleanUp = async (): Promise<void> => {
    for (const prefix of [...toDelete]) {
      toDelete.delete(prefix);
      await deleteNatsPrefix(NATS_URL, prefix);
    }
  };

  let prefix = newPrefix();
  describeBrokerContract('nats', {
    distributed: true,
    fanOutAfterAck: true,
    node: () =>
      Promise.resolve({
        broker: new NatsBroker({ servers: NATS_URL, prefix, nodeId: randomUUID() }),
        presence: new NatsPresenceManager({ servers: NATS_URL, prefix }),
      }),
    reset: () => {
      // Runs after the suite's afterEach has closed the test's nodes.
      toDelete.add(prefix);
      prefix = newPrefix();
    },
  });
  afterEach(cleanUp);
  afterAll(async () => {
    toDelete.add(prefix);
    await cleanUp();
  });

  describe('NatsBroker on the shared NATS', () => {
    const brokers: NatsBroker[] = [];
    afterEach(async () => {
      await Promise.all(brokers.splice(0).map((b) => b.close()));
      await cleanUp();
    });

    async function nodes(count: number, prefixOfTest: string, extra: Partial<NatsBrokerOptions> = {}): Promise<{ broker: NatsBroker; events: RecordingHandler }[]> {
      toDelete.add(prefixOfTest);
      const out = [];
      for (let i = 0; i < count; i++) {
        const broker = new NatsBroker({ servers: NATS_URL, prefix: prefixOfTest, nodeId: `node-${i}`, ...extra });
        brokers.push(broker);
        const events = new RecordingHandler();
        await broker.start(events);
        out.push({ broker, events });
      }
      return out;
    }

    for (let round = 1; round <= 10; round++) {
      it(`delivers concurrent publishes of 3 nodes in offset order on every node (round ${round})`, async () => {
        const all = await nodes(3, newPrefix());
        for (const n of all) await n.broker.subscribe(['chat:x']);
        const total = 90;
        const positions = await Promise.all(
          Array.from({ length: total }, (_, i) => {
            const node = all[i % all.length];
            if (!node) throw new Error('no node');
            return node.broker.publish('chat:x', json(i), withHistory);
          }),
        );
        const seq = Array.from({ length: total }, (_, i) => i + 1);
        expect(positions.map((p) => p.offset).sort((a, b) => a - b)).toEqual(seq);
        for (const n of all) {
          await n.events.until(() => n.events.pubsOf('chat:x').length >= total, 10_000);
          expect(n.events.pubsOf('chat:x').map((p) => p.offset)).toEqual(seq);
        }
        const data = all[0]?.events.pubsOf('chat:x').map((p) => p.data);
        for (const n of all) expect(n.events.pubsOf('chat:x').map((p) => p.data)).toEqual(data);
      });
    }

    it('fetches from history a publication whose fan-out never came', async () => {
      const testPrefix = newPrefix();
      const [a] = await nodes(1, testPrefix, { reorderHoldMs: 100 });
      if (!a) throw new Error('no node');
      await a.broker.subscribe(['chat:lost']);
      const first = await a.broker.publish('chat:lost', json('one'), withHistory);
      // A publisher that died between the JetStream ack and its fan-out: stored, never sent.
      const nc = await connect({ servers: NATS_URL });
      try {
        const names = natsNames(testPrefix);
        const stored = encodeStoredEntry({
          kind: 'pub',
          offset: 2,
          epoch: first.epoch,
          time: Date.now(),
          ttl: 60_000,
          size: 10,
          metaTtl: 3_600_000,
          data: json('two'),
        });
        await jetstream(nc).publish(names.historySubject('chat:lost'), stored);
      } finally {
        await nc.close();
      }
      const third = await a.broker.publish('chat:lost', json('three'), withHistory);
      expect(third.offset).toBe(3);
      await a.events.until(() => a.events.pubsOf('chat:lost').length === 3);
      expect(a.events.pubsOf('chat:lost').map((p) => JSON.parse(p.data) as unknown)).toEqual(['one', 'two', 'three']);
    });

    it('holds a publication back until the late fan-out of its predecessor arrives', async () => {
      const testPrefix = newPrefix();
      const [a] = await nodes(1, testPrefix, { reorderHoldMs: 5000 });
      if (!a) throw new Error('no node');
      await a.broker.subscribe(['chat:late']);
      const first = await a.broker.publish('chat:late', json('one'), withHistory);
      // Another node's publish of offset 2: acked by JetStream, its fan-out delayed.
      const names = natsNames(testPrefix);
      const nc = await connect({ servers: NATS_URL });
      try {
        const entry = { offset: 2, epoch: first.epoch, time: Date.now(), ttl: 60_000, size: 10, metaTtl: 3_600_000 };
        await jetstream(nc).publish(names.historySubject('chat:late'), encodeStoredEntry({ kind: 'pub', ...entry, data: json('two') }));
        expect((await a.broker.publish('chat:late', json('three'), withHistory)).offset).toBe(3);
        await new Promise((r) => setTimeout(r, 100));
        expect(a.events.pubsOf('chat:late').map((p) => p.offset)).toEqual([1]);
        // The fan-out carries a marked copy so the test can tell it from a history fetch.
        const late = { offset: 2, epoch: first.epoch, time: entry.time, data: json('two (fan-out)') };
        nc.publish(names.fanOutSubject('chat:late'), encodeFanOut({ type: 'pub', publication: late }));
        await nc.flush();
      } finally {
        await nc.close();
      }
      await a.events.until(() => a.events.pubsOf('chat:late').length === 3, 2000);
      expect(a.events.pubsOf('chat:late').map((p) => JSON.parse(p.data) as unknown)).toEqual(['one', 'two (fan-out)', 'three']);
    });

    it('orders a channel first received through a pattern, waiting for a crossed predecessor', async () => {
      const testPrefix = newPrefix();
      const [a] = await nodes(1, testPrefix, { reorderHoldMs: 300 });
      if (!a) throw new Error('no node');
      await a.broker.subscribePattern('chat:*');
      const names = natsNames(testPrefix);
      const nc = await connect({ servers: NATS_URL });
      try {
        // Fan-outs of two other nodes' publishes that crossed: 6 arrives before 5.
        const fanOut = (channel: string, offset: number): void =>
          nc.publish(names.fanOutSubject(channel), encodeFanOut({ type: 'pub', publication: { offset, epoch: 'e1', time: Date.now(), data: json(offset) } }));
        fanOut('chat:cross', 6);
        await nc.flush();
        await new Promise((r) => setTimeout(r, 50));
        fanOut('chat:cross', 5);
        fanOut('chat:cross', 7);
        fanOut('news:other', 1); // on the pattern subject too, but matched by no pattern
        await nc.flush();
      } finally {
        await nc.close();
      }
      await a.events.until(() => a.events.pubsOf('chat:cross').length === 3, 3000);
      expect(a.events.pubsOf('chat:cross').map((p) => p.offset)).toEqual([5, 6, 7]);
      expect(a.events.pubsOf('news:other')).toEqual([]);
    });

    it('starts new lineages when the history stream is lost, and recreates it', async () => {
      const testPrefix = newPrefix();
      const [a, b] = await nodes(2, testPrefix);
      if (!a || !b) throw new Error('no nodes');
      await b.broker.subscribe(['chat:gone']);
      const first = await a.broker.publish('chat:gone', json(1), withHistory);
      await a.broker.publish('chat:gone', json(2), withHistory);
      const nc = await connect({ servers: NATS_URL });
      try {
        await (await jetstreamManager(nc)).streams.delete(natsNames(testPrefix).historyStream);
      } finally {
        await nc.close();
      }
      const after = await a.broker.publish('chat:gone', json(3), withHistory);
      expect(after.offset).toBe(1);
      expect(after.epoch).not.toBe(first.epoch);
      const history = await b.broker.history('chat:gone', { limit: 10 });
      expect(history.position).toEqual(after);
      expect(history.publications.map((p) => JSON.parse(p.data) as unknown)).toEqual([3]);
      await b.events.until(() => b.events.pubsOf('chat:gone').length === 3);
      expect(b.events.pubsOf('chat:gone').map((p) => [p.epoch === first.epoch, p.offset])).toEqual([
        [true, 1],
        [true, 2],
        [false, 1],
      ]);
    });

    it('starts a new epoch once a position outlives its meta TTL', async () => {
      const [a] = await nodes(1, newPrefix());
      if (!a) throw new Error('no node');
      const shortMeta = { ...withHistory, historyMetaTtlMs: 500 };
      const old = await a.broker.publish('chat:meta', json('old'), shortMeta);
      await new Promise((r) => setTimeout(r, 700));
      const expired = await a.broker.history('chat:meta', { limit: 10 });
      expect(expired.position.offset).toBe(0);
      expect(expired.position.epoch).not.toBe(old.epoch);
      const fresh = await a.broker.publish('chat:meta', json('new'), shortMeta);
      expect(fresh).toEqual({ offset: 1, epoch: expired.position.epoch });
      const history = await a.broker.history('chat:meta', { limit: 10 });
      expect(history.publications.map((p) => JSON.parse(p.data) as unknown)).toEqual(['new']);
    });

    it('trims each channel subject near its history size', async () => {
      const testPrefix = newPrefix();
      const [a] = await nodes(1, testPrefix);
      if (!a) throw new Error('no node');
      for (let i = 0; i < 60; i++) await a.broker.publish('chat:trim', json(i), withHistory);
      const nc = await connect({ servers: NATS_URL });
      try {
        const jsm = await jetstreamManager(nc);
        const names = natsNames(testPrefix);
        const stored = async (): Promise<number> =>
          (await jsm.streams.info(names.historyStream, { subjects_filter: names.historySubjects })).state.subjects?.[names.historySubject('chat:trim')] ?? 0;
        const deadline = Date.now() + 5000;
        // Trims run in the background after the publish resolves.
        while ((await stored()) > 13 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(await stored()).toBeLessThanOrEqual(13);
      } finally {
        await nc.close();
      }
      const history = await a.broker.history('chat:trim', { limit: 100 });
      expect(history.publications.map((p) => p.offset)).toEqual(Array.from({ length: 10 }, (_, i) => i + 51));
    });

    it('shares the broker connection with the presence manager', async () => {
      const testPrefix = newPrefix();
      const [a] = await nodes(1, testPrefix);
      const connection = a?.broker.connection;
      if (!connection) throw new Error('no connection');
      const presence = new NatsPresenceManager({ connection, prefix: testPrefix });
      await presence.add('chat:shared', { user: 'u1', client: 'c1' }, 60_000);
      expect(await presence.stats('chat:shared')).toEqual({ numClients: 1, numUsers: 1 });
      await presence.close();
      expect(connection.isClosed()).toBe(false);
    });

    it('reads history pages and positions consistently from another node', async () => {
      const [a, b] = await nodes(2, newPrefix());
      if (!a || !b) throw new Error('no nodes');
      for (let i = 1; i <= 25; i++) await a.broker.publish('chat:pages', json(i), { ...withHistory, historySize: 20 });
      const all = await b.broker.history('chat:pages', { limit: 100 });
      expect(all.position.offset).toBe(25);
      expect(all.publications.map((p) => p.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
      const page = await b.broker.history('chat:pages', { limit: 5, reverse: true, since: { offset: 10, epoch: all.position.epoch } });
      expect(page.publications.map((p) => p.offset)).toEqual([9, 8, 7, 6]);
      expect((await b.broker.publish('chat:pages', json(26), withHistory)).offset).toBe(26);
    });
  });
}

// --- failure behaviour, against a nats-server of our own --------------------------------

const nativeServer = await serverBinaryAvailable('nats');

describe.skipIf(!nativeServer && process.env.CI !== 'true')('NatsBroker when NATS goes away', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  it('start rejects promptly with BROKER_UNAVAILABLE when NATS is unreachable', async () => {
    const port = await freePort();
    const broker = new NatsBroker({ servers: `nats://127.0.0.1:${port}`, prefix: 'unreachable', nodeId: 'n1', connectTimeoutMs: 2000 });
    const started = Date.now();
    await expect(broker.start(new RecordingHandler())).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
    expect(Date.now() - started).toBeLessThan(3000);
    await expect(broker.publish('chat:a', json(1), withHistory)).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
  });

  it('rejects publishes while NATS is down, then reconnects, resyncs and continues the offsets', async () => {
    const bus = await PrivateBus.reserve('nats');
    cleanups.push(() => bus.dispose());
    await bus.start();

    const broker = new NatsBroker({
      servers: bus.url,
      prefix: 'failover',
      nodeId: 'n1',
      reconnectTimeWaitMs: 200,
      requestTimeoutMs: 1000,
      publishTimeoutMs: 2000,
    });
    const events = new RecordingHandler();
    await broker.start(events);
    cleanups.push(() => broker.close());
    await broker.subscribe(['chat:f']);
    // chat:f is matched as well as subscribed: still delivered once, before and after.
    await broker.subscribePattern('chat:*');
    const before = [];
    for (let i = 1; i <= 3; i++) before.push(await broker.publish('chat:f', json(i), withHistory));
    expect(before.map((p) => p.offset)).toEqual([1, 2, 3]);
    const epoch = before[0]?.epoch;
    await events.until(() => events.pubsOf('chat:f').length === 3);

    await bus.stop();
    const attempt = Date.now();
    await expect(broker.publish('chat:f', json('lost'), withHistory)).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
    expect(Date.now() - attempt).toBeLessThan(3000);
    await expect(broker.history('chat:f', { limit: 10 })).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });

    await bus.start();
    await events.until(() => events.resyncs >= 1, 15_000);
    const after = await broker.publish('chat:f', json(4), withHistory);
    expect(after).toEqual({ offset: 4, epoch });
    await events.until(() => events.pubsOf('chat:f').some((p) => p.offset === 4));
    // The pattern is back too, for a channel nobody subscribed to.
    const other = await broker.publish('chat:other', json('o'), withHistory);
    await events.until(() => events.pubsOf('chat:other').length === 1);
    expect(events.pubsOf('chat:other')[0]?.offset).toBe(other.offset);
    expect(events.pubsOf('chat:f').map((p) => p.offset)).toEqual([1, 2, 3, 4]);
    const history = await broker.history('chat:f', { limit: 10 });
    expect(history.publications.map((p) => JSON.parse(p.data) as unknown)).toEqual([1, 2, 3, 4]);
    expect(history.position).toEqual({ offset: 4, epoch });
  }, 60_000);
});

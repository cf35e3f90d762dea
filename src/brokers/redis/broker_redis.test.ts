/**
 * The Redis broker against the machine's Redis (127.0.0.1:6379), each test under its own
 * key prefix, cleaned up afterwards; and against a private redis-server this file starts
 * and kills to show the failure behaviour. With CI=true an unreachable Redis fails the run.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import type { PublishOptions } from '../broker.js';
import { describeBrokerContract, RecordingHandler } from '../broker.contract.js';
import { RedisBroker, type RedisBrokerOptions } from './broker_redis.js';
import type { RedisLogger } from './connection.js';
import { RedisKeys } from './keys.js';
import { RedisPresenceManager } from './presence_redis.js';
import { freePort, PrivateBus } from '../../../test/helpers/buses.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const json = (value: unknown): JsonText => JSON.stringify(value) as JsonText;
const withHistory: PublishOptions = { historySize: 10, historyTtlMs: 60_000, historyMetaTtlMs: 3_600_000 };
const noHistory: PublishOptions = { historySize: 0, historyTtlMs: 0, historyMetaTtlMs: 0 };

// The broker's logger type accepts the logger the composition root passes.
const _pinoFits: RedisLogger = pino({ level: 'silent' });

const prefixes: string[] = [];
function newPrefix(): string {
  const prefix = `relais-test-${randomBytes(6).toString('hex')}`;
  prefixes.push(prefix);
  return prefix;
}

async function redisReachable(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** Deletes every key of the given prefixes (and nothing else). */
async function deletePrefixes(url: string, list: readonly string[]): Promise<void> {
  const admin = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    for (const prefix of list) {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}.*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await admin.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    admin.disconnect();
  }
}

async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectUnavailable(promise: Promise<unknown>): Promise<void> {
  const err: unknown = await promise.then(
    () => new Error('resolved instead of rejecting'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RelaisError);
  expect((err as RelaisError).code).toBe('BROKER_UNAVAILABLE');
  expect((err as RelaisError).temporary).toBe(true);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const reachable = await redisReachable(REDIS_URL);

if (!reachable) {
  if (process.env.CI === 'true') {
    describe('Redis broker', () => {
      it('needs Redis at 127.0.0.1:6379 (CI=true: an unreachable Redis is a failure, not a skip)', () => {
        throw new Error(`Redis is not reachable at ${REDIS_URL}`);
      });
    });
  } else {
    console.warn(`Redis broker tests skipped: Redis is not reachable at ${REDIS_URL} (set CI=true to make this a failure)`);
    describe.skip(`Redis broker (skipped: no Redis at ${REDIS_URL})`, () => {
      it('needs Redis', () => undefined);
    });
  }
} else {
  afterAll(async () => {
    await deletePrefixes(REDIS_URL, prefixes);
  });

  for (const sharded of [false, true]) {
    let prefix = newPrefix();
    let nodes = 0;
    describeBrokerContract(sharded ? 'redis (sharded pub/sub)' : 'redis', {
      distributed: true,
      patterns: !sharded,
      node: () => {
        const nodeId = `node-${++nodes}`;
        return Promise.resolve({
          broker: new RedisBroker({ url: REDIS_URL, prefix, nodeId, shardedPubSub: sharded }),
          presence: new RedisPresenceManager({ url: REDIS_URL, prefix, nodeId }),
        });
      },
      reset: () => {
        prefix = newPrefix();
      },
    });
  }

  describe('Redis broker on the shared Redis', () => {
    const open: { close(): Promise<void> }[] = [];
    let admin: Redis;

    beforeAll(() => {
      admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    });
    afterAll(() => {
      admin.disconnect();
    });
    afterEach(async () => {
      for (const o of open.splice(0)) await o.close();
    });

    async function startBroker(options: Partial<RedisBrokerOptions> & { prefix: string }): Promise<{ broker: RedisBroker; events: RecordingHandler }> {
      const broker = new RedisBroker({ url: REDIS_URL, nodeId: `n${open.length}`, ...options });
      const events = new RecordingHandler();
      await broker.start(events);
      open.push(broker);
      return { broker, events };
    }

    it('sends exactly one bus message per publication, whatever the number of nodes, as one JSON document', async () => {
      const prefix = newPrefix();
      const keys = new RedisKeys(prefix);
      const nodes = await Promise.all([0, 1, 2].map(() => startBroker({ prefix })));
      for (const n of nodes) await n.broker.subscribe(['chat:one']);
      const spy = new Redis(REDIS_URL);
      open.push({ close: () => Promise.resolve(spy.disconnect()) });
      const seen: string[] = [];
      spy.on('message', (_channel: string, message: string) => seen.push(message));
      await spy.subscribe(keys.bus('chat:one'));
      for (let i = 0; i < 5; i++) await nodes[i % 3]?.broker.publish('chat:one', json({ i }), withHistory);
      for (const n of nodes) await n.events.until(() => n.events.pubsOf('chat:one').length === 5);
      await sleep(100);
      expect(seen).toHaveLength(5);
      expect(JSON.parse(seen[0] ?? '')).toEqual([{ offset: 1, epoch: expect.any(String) as unknown, time: expect.any(Number) as unknown }, { i: 0 }]);
    });

    it('delivers the data text byte for byte, live and from history', async () => {
      const prefix = newPrefix();
      const { broker, events } = await startBroker({ prefix });
      await broker.subscribe(['chat:bytes']);
      const data = '{ "a" :\n [1, 2.50, "é\\u00e9", "\\n]"] }' as JsonText;
      await broker.publish('chat:bytes', data, withHistory);
      await events.until(() => events.pubsOf('chat:bytes').length === 1);
      expect(events.pubsOf('chat:bytes')[0]?.data).toBe(data);
      expect((await broker.history('chat:bytes', { limit: 1 })).publications[0]?.data).toBe(data);
    });

    it('lays keys out under the channel hash tag with their expiries, stream IDs being offsets', async () => {
      const prefix = newPrefix();
      const keys = new RedisKeys(prefix);
      const { broker } = await startBroker({ prefix });
      await broker.publish('chat:k', json(1), { ...withHistory, historyTtlMs: 30_000, historyMetaTtlMs: 600_000 });
      await broker.publish('chat:k', json(2), { ...withHistory, historyTtlMs: 30_000, historyMetaTtlMs: 600_000, idempotencyKey: 'k1' });
      const streamTtl = await admin.pttl(`${prefix}.{chat:k}.stream`);
      const metaTtl = await admin.pttl(`${prefix}.{chat:k}.meta`);
      const idemTtl = await admin.pttl(`${prefix}.{chat:k}.idem.k1`);
      expect(streamTtl).toBeGreaterThan(25_000);
      expect(streamTtl).toBeLessThanOrEqual(30_000);
      expect(metaTtl).toBeGreaterThan(590_000);
      expect(idemTtl).toBeGreaterThan(290_000);
      expect(idemTtl).toBeLessThanOrEqual(300_000);
      const entries = await admin.xrange(keys.stream('chat:k'), '-', '+');
      expect(entries.map(([id]) => id)).toEqual(['1-0', '2-0']);
      expect(await admin.hgetall(keys.meta('chat:k'))).toMatchObject({ o: '2' });
    });

    it('starts a new epoch when the position is lost, and never serves the old lineage', async () => {
      const prefix = newPrefix();
      const keys = new RedisKeys(prefix);
      const { broker } = await startBroker({ prefix });
      for (let i = 1; i <= 3; i++) await broker.publish('chat:lost', json(i), withHistory);
      const before = await broker.history('chat:lost', { limit: 0 });
      await admin.del(keys.meta('chat:lost')); // as after a flush of that key, its stream surviving
      const first = await broker.publish('chat:lost', json('new'), withHistory);
      expect(first.offset).toBe(1);
      expect(first.epoch).not.toBe(before.position.epoch);
      const history = await broker.history('chat:lost', { limit: 10 });
      expect(history.publications.map((p) => JSON.parse(p.data) as unknown)).toEqual(['new']);
      const stale = await broker.history('chat:lost', { limit: 10, since: { offset: 1, epoch: before.position.epoch } });
      expect(stale.publications).toEqual([]);
      expect(stale.position).toEqual(first);
    });

    it('fills the history limit with live publications, skipping expired ones', async () => {
      const prefix = newPrefix();
      const { broker } = await startBroker({ prefix });
      for (let i = 1; i <= 3; i++) await broker.publish('chat:mix', json(i), { ...withHistory, historyTtlMs: 300 });
      await sleep(400);
      for (let i = 4; i <= 6; i++) await broker.publish('chat:mix', json(i), withHistory);
      const offsets = async (q: Parameters<RedisBroker['history']>[1]): Promise<number[]> =>
        (await broker.history('chat:mix', q)).publications.map((p) => p.offset);
      expect(await offsets({ limit: 2 })).toEqual([4, 5]);
      expect(await offsets({ limit: 2, since: { offset: 1, epoch: '' } })).toEqual([4, 5]);
      expect(await offsets({ limit: 10, reverse: true })).toEqual([6, 5, 4]);
      expect(await offsets({ limit: 10, reverse: true, since: { offset: 6, epoch: '' } })).toEqual([5, 4]);
      expect(await offsets({ limit: 10, reverse: true, since: { offset: 1, epoch: '' } })).toEqual([]);
    });

    it('publishes once per idempotency key without history too', async () => {
      const prefix = newPrefix();
      const { broker, events } = await startBroker({ prefix });
      await broker.subscribe(['live:idem']);
      const options = { ...noHistory, idempotencyKey: 'once' };
      expect(await broker.publish('live:idem', json(1), options)).toEqual({ offset: 0, epoch: '' });
      expect(await broker.publish('live:idem', json(1), options)).toEqual({ offset: 0, epoch: '' });
      await events.until(() => events.pubsOf('live:idem').length === 1);
      await sleep(100);
      expect(events.pubsOf('live:idem')).toHaveLength(1);
    });

    it('lists only its own prefix stream channels, never idempotency keys', async () => {
      const a = await startBroker({ prefix: newPrefix() });
      const b = await startBroker({ prefix: newPrefix() });
      await a.broker.publish('chat:mine', json(1), { ...withHistory, idempotencyKey: 'x}.meta' });
      await b.broker.publish('chat:theirs', json(1), withHistory);
      expect(await a.broker.streamChannels('*')).toEqual(['chat:mine']);
      expect(await a.broker.streamChannels('chat:m?ne')).toEqual(['chat:mine']);
      expect(await a.broker.streamChannels('user:*')).toEqual([]);
    });

    it('delivers control messages in sharded mode after the last channel is unsubscribed', async () => {
      // ioredis leaves subscriber mode when an SUNSUBSCRIBE reply counts 0 shard channels;
      // control being a shard channel too keeps that count above 0.
      const prefix = newPrefix();
      const a = await startBroker({ prefix, shardedPubSub: true });
      const b = await startBroker({ prefix, shardedPubSub: true });
      await b.broker.subscribe(['chat:s1', 'chat:s2']);
      await a.broker.publish('chat:s1', json(1), withHistory);
      await a.broker.publish('chat:s2', json(2), noHistory);
      await b.events.until(() => b.events.pubsOf('chat:s1').length === 1 && b.events.pubsOf('chat:s2').length === 1);
      await b.broker.unsubscribe(['chat:s1', 'chat:s2']);
      await a.broker.publishControl({ type: 'message', user: 'u', data: json('ctl') });
      await b.events.until(() => b.events.controls.length === 1);
      await b.broker.subscribe(['chat:s1']);
      await a.broker.publish('chat:s1', json(3), withHistory);
      await b.events.until(() => b.events.pubsOf('chat:s1').length === 2);
      expect(b.events.pubsOf('chat:s1').map((p) => p.offset)).toEqual([1, 2]);
    });

    it('resubscribes channels and patterns and resyncs when its subscriber connection is killed', async () => {
      const prefix = newPrefix();
      const { broker, events } = await startBroker({ prefix, nodeId: 'victim' });
      const other = await startBroker({ prefix });
      await broker.subscribe(['chat:kill']);
      await broker.subscribePattern('chat:*');
      await broker.subscribePattern('room:*');
      const clients = await admin.client('LIST');
      const id = /id=(\d+) [^\n]* name=([^ ]+)/g;
      const victims = [...String(clients).matchAll(id)].filter((m) => m[2] === `${prefix}:victim:sub`).map((m) => m[1] ?? '');
      expect(victims).toHaveLength(1);
      await admin.client('KILL', 'ID', victims[0] ?? '');
      await events.until(() => events.resyncs === 1, 10_000);
      await other.broker.publish('chat:kill', json('after'), withHistory);
      await other.broker.publish('room:kill', json('after'), withHistory);
      await events.until(() => events.pubsOf('chat:kill').length === 1 && events.pubsOf('room:kill').length === 1);
      await sleep(100);
      expect(events.pubsOf('chat:kill')).toHaveLength(1); // subscribed and matched: once
      expect(events.controls).toEqual([]);
    });

    it('subscribes a pattern with one PSUBSCRIBE whose matches are checked with the glob', async () => {
      const prefix = newPrefix();
      const keys = new RedisKeys(prefix);
      expect(keys.busPattern('chat:a?[x]*')).toBe(`${prefix}.{chat:a*\\[x\\]*}.pub`);
      expect(keys.busPattern('x{%}')).toBe(`${prefix}.{x%7B%25%7D}.pub`);
      expect(keys.channelOfBus(keys.bus('room:{%}'))).toBe('room:{%}');
      expect(keys.channelOfBus(`${prefix}.control`)).toBeUndefined();
      const { broker, events } = await startBroker({ prefix, nodeId: 'pat' });
      const psubCount = async (): Promise<string | undefined> =>
        / psub=(\d+) /.exec(
          String(await admin.client('LIST'))
            .split('\n')
            .find((line) => line.includes(` name=${prefix}:pat:sub `)) ?? '',
        )?.[1];
      await broker.subscribePattern('chat:a?');
      expect(await psubCount()).toBe('1');
      // The PSUBSCRIBE (`chat:a*`) also covers chat:abc; the glob does not.
      await broker.publish('chat:abc', json('wider'), withHistory);
      await broker.publish('chat:ab', json('matched'), withHistory);
      await events.until(() => events.pubsOf('chat:ab').length === 1);
      await broker.subscribePattern('chat:a*'); // the same PSUBSCRIBE
      await broker.unsubscribePattern('chat:a?'); // chat:a* keeps it
      expect(await psubCount()).toBe('1');
      await broker.publish('chat:abc', json('now matched'), withHistory);
      await events.until(() => events.pubsOf('chat:abc').length === 1);
      await sleep(100);
      expect(events.publications.map((p) => p.channel)).toEqual(['chat:ab', 'chat:abc']);
      expect(events.pubsOf('chat:abc')[0]?.offset).toBe(2);
      await broker.unsubscribePattern('chat:a*');
      expect(await psubCount()).toBe('0');
    });

    it('batches concurrent subscribes into few commands and delivers to all of them', async () => {
      const prefix = newPrefix();
      const { broker, events } = await startBroker({ prefix });
      const channels = Array.from({ length: 300 }, (_, i) => `chat:b${i}`);
      await Promise.all(channels.map((c) => broker.subscribe([c])));
      await Promise.all(channels.map((c) => broker.publish(c, json(c), noHistory)));
      await events.until(() => events.publications.length === 300);
      await Promise.all(channels.slice(0, 150).map((c) => broker.unsubscribe([c])));
      await Promise.all(channels.map((c) => broker.publish(c, json(c), noHistory)));
      await events.until(() => events.publications.length === 450);
      await sleep(100);
      expect(events.publications).toHaveLength(450);
    });

    it('expires presence keys with their longest-lived entry', async () => {
      const prefix = newPrefix();
      const keys = new RedisKeys(prefix);
      const presence = new RedisPresenceManager({ client: admin, prefix });
      await presence.add('chat:pk', { user: 'u', client: 'c1' }, 2000);
      await presence.add('chat:pk', { user: 'u', client: 'c2' }, 500);
      expect(await admin.pttl(keys.presence('chat:pk'))).toBeGreaterThan(1500);
      expect(await admin.pttl(keys.presenceExpiry('chat:pk'))).toBeGreaterThan(1500);
      await sleep(600);
      expect(await presence.stats('chat:pk')).toEqual({ numClients: 1, numUsers: 1 });
      await presence.close();
      expect(admin.status).toBe('ready'); // a caller's connection stays open
    });

    it('rejects start within seconds when Redis is unreachable, and calls after close', async () => {
      const port = await freePort();
      const broker = new RedisBroker({ url: `redis://127.0.0.1:${port}`, prefix: newPrefix(), nodeId: 'n', connectTimeoutMs: 1000 });
      const t0 = Date.now();
      await expectUnavailable(broker.start(new RecordingHandler()));
      expect(Date.now() - t0).toBeLessThan(3000);
      const { broker: closed } = await startBroker({ prefix: newPrefix() });
      await closed.close();
      await expectUnavailable(closed.publish('chat:x', json(1), withHistory));
    });
  });

  describe('Redis broker against a Redis that dies and comes back', () => {
    let bus: PrivateBus | undefined;
    const url = (): string => bus?.url ?? '';

    beforeAll(async () => {
      bus = await PrivateBus.reserve('redis');
      await bus.start();
    });
    afterAll(async () => {
      await bus?.dispose();
    });

    it('sends the publishes of one event-loop turn in one round trip, one script call per channel, offsets in call order', async () => {
      const prefix = newPrefix();
      const publisher = new RedisBroker({ url: url(), prefix, nodeId: 'batch-pub' });
      const subscriber = new RedisBroker({ url: url(), prefix, nodeId: 'batch-sub' });
      const events = new RecordingHandler();
      await publisher.start(new RecordingHandler());
      await subscriber.start(events);
      const admin = new Redis(url(), { maxRetriesPerRequest: 1 });
      try {
        await subscriber.subscribe(['chat:batch-a', 'chat:batch-b']);
        // Loads both scripts (one publish, then two in one turn).
        await publisher.publish('chat:batch-a', json('warm-up'), withHistory);
        await Promise.all([publisher.publish('chat:batch-a', json('warm-up'), withHistory), publisher.publish('chat:batch-a', json('warm-up'), withHistory)]);
        await admin.config('RESETSTAT');
        const positions = await Promise.all([
          ...Array.from({ length: 40 }, (_, i) => publisher.publish('chat:batch-a', json(i), withHistory)),
          ...Array.from({ length: 10 }, (_, i) => publisher.publish('chat:batch-b', json(i), withHistory)),
          publisher.publish('chat:batch-a', json('keyed'), { ...withHistory, idempotencyKey: 'k' }),
        ]);
        expect(positions.slice(0, 40).map((p) => p.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i + 4));
        expect(positions.slice(40, 50).map((p) => p.offset)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
        expect(positions[50]?.offset).toBe(44);
        // One call for chat:batch-a's run, one for chat:batch-b's, one for the keyed publish.
        const stats = await admin.info('commandstats');
        expect(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1]).toBe('3');
        await events.until(() => events.pubsOf('chat:batch-a').length === 44 && events.pubsOf('chat:batch-b').length === 10);
        expect(events.pubsOf('chat:batch-a').map((p) => p.offset)).toEqual(Array.from({ length: 44 }, (_, i) => i + 1));
        expect(events.pubsOf('chat:batch-a').slice(3, 43).map((p) => JSON.parse(p.data) as unknown)).toEqual(Array.from({ length: 40 }, (_, i) => i));
        const history = await publisher.history('chat:batch-b', { limit: 100 });
        expect(history.publications.map((p) => JSON.parse(p.data) as unknown)).toEqual(Array.from({ length: 10 }, (_, i) => i));
      } finally {
        admin.disconnect();
        await publisher.close();
        await subscriber.close();
      }
    });

    it('rejects publishes at once while Redis is down, then resubscribes, resyncs and publishes again', async () => {
      const warnings: string[] = [];
      const logger: RedisLogger = { warn: (_obj, msg) => warnings.push(msg), error: (_obj, msg) => warnings.push(msg) };
      const prefix = newPrefix();
      const make = (nodeId: string): RedisBroker =>
        new RedisBroker({ url: url(), prefix, nodeId, logger, commandTimeoutMs: 2000, healthCheckIntervalMs: 1000 });
      const a = make('a');
      const b = make('b');
      const eventsA = new RecordingHandler();
      const eventsB = new RecordingHandler();
      await a.start(eventsA);
      await b.start(eventsB);
      try {
        await a.subscribe(['chat:f']);
        await b.subscribe(['chat:f']);
        const before = await a.publish('chat:f', json('before'), withHistory);
        // Both nodes, not only B: Redis writes the publisher's reply first and the subscribers'
        // copies after it, one socket at a time; killed between two of those writes, it never
        // sends A's copy (lost with the crash, as the resync below tells the node).
        await eventsA.until(() => eventsA.pubsOf('chat:f').length === 1);
        await eventsB.until(() => eventsB.pubsOf('chat:f').length === 1);

        // Publications in flight when Redis dies settle (either way) instead of hanging.
        const inFlight = Promise.allSettled(Array.from({ length: 50 }, (_, i) => a.publish('chat:flight', json(i), withHistory)));
        await bus?.kill();
        await within(3000, inFlight, 'publications in flight');
        for (const options of [withHistory, noHistory, { ...withHistory, idempotencyKey: 'k' }]) {
          const t0 = Date.now();
          await expectUnavailable(a.publish('chat:f', json('while down'), options));
          expect(Date.now() - t0).toBeLessThan(1000);
        }
        await expectUnavailable(a.history('chat:f', { limit: 10 }));
        await expectUnavailable(a.subscribe(['chat:other']));
        await expectUnavailable(new RedisBroker({ url: url(), prefix, nodeId: 'c', connectTimeoutMs: 1000 }).start(new RecordingHandler()));
        await sleep(300); // a few reconnect attempts fail meanwhile

        await bus?.start();
        await eventsA.until(() => eventsA.resyncs === 1, 10_000);
        await eventsB.until(() => eventsB.resyncs === 1, 10_000);
        // Nothing persisted: the stream starts a new lineage, which recovery will tell clients.
        const after = await within(5000, publishWhenReady(a, 'chat:f', json('after')), 'publish after restart');
        expect(after.offset).toBe(1);
        expect(after.epoch).not.toBe(before.epoch);
        await eventsA.until(() => eventsA.pubsOf('chat:f').length === 2);
        await eventsB.until(() => eventsB.pubsOf('chat:f').length === 2);
        for (const events of [eventsA, eventsB]) {
          expect(events.pubsOf('chat:f').map((p) => JSON.parse(p.data) as unknown)).toEqual(['before', 'after']);
        }
        expect(warnings).toContain('redis connection lost; reconnecting');
        expect(warnings).toContain('redis connection restored');
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('rejects publishes within the command timeout while Redis is frozen, and resyncs when it thaws', async () => {
      const prefix = newPrefix();
      const broker = new RedisBroker({ url: url(), prefix, nodeId: 'f', commandTimeoutMs: 500, healthCheckIntervalMs: 200 });
      const events = new RecordingHandler();
      await broker.start(events);
      try {
        await broker.subscribe(['chat:z']);
        const before = await broker.publish('chat:z', json('before'), withHistory);
        bus?.signal('SIGSTOP');
        const t0 = Date.now();
        await expectUnavailable(broker.publish('chat:z', json('while frozen'), withHistory));
        expect(Date.now() - t0).toBeLessThan(1500);
        await sleep(1000); // long enough for the health check to drop the silent connections
        bus?.signal('SIGCONT');
        await events.until(() => events.resyncs >= 1, 10_000);
        const after = await within(5000, publishWhenReady(broker, 'chat:z', json('after')), 'publish after thaw');
        // The frozen publish may still have run once Redis read it: its outcome is unknown.
        expect(after.epoch).toBe(before.epoch);
        expect(after.offset).toBeGreaterThan(before.offset);
        await events.until(() => events.pubsOf('chat:z').some((p) => p.offset === after.offset));
      } finally {
        bus?.signal('SIGCONT');
        await broker.close();
      }
    });
  });
}

/** The command connection may come back a moment after the subscriber one: retry briefly. */
async function publishWhenReady(broker: RedisBroker, channel: string, data: JsonText) {
  for (;;) {
    try {
      return await broker.publish(channel, data, withHistory);
    } catch (err) {
      if (!(err instanceof RelaisError) || err.code !== 'BROKER_UNAVAILABLE') throw err;
      await sleep(100);
    }
  }
}


/**
 * The conformance suite every Broker and PresenceManager runs: memory, redis, nats.
 * A factory gives fresh instances isolated from other tests (own key/subject prefix).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JsonText } from '../core/json.js';
import type { ClientInfo, Publication } from '../core/publication.js';
import { RelaisError } from '../core/errors.js';
import type { Broker, BrokerEventHandler, ControlMessage, PresenceManager, PublishOptions } from './broker.js';

export interface BrokerUnderTest {
  readonly broker: Broker;
  readonly presence: PresenceManager;
}

export interface BrokerContractSetup {
  /** A new node: broker and presence manager sharing one isolated namespace with the other nodes of this test. */
  node(): Promise<BrokerUnderTest>;
  /** Starts a new isolated namespace (a fresh prefix) for the next nodes. */
  reset(): void;
  /** Whether two nodes from `node()` share a bus (false for memory). */
  readonly distributed: boolean;
  /**
   * False for a broker that refuses pattern subscriptions by contract (Redis in sharded
   * pub/sub mode): the suite then checks the refusal instead. Default true.
   */
  readonly patterns?: boolean;
  /**
   * True for a bus whose live fan-out leaves the publisher after the publish is acknowledged
   * (NATS: the message goes out once JetStream has stored it): a node that subscribes right
   * after the acknowledgement may still hear that publication live. Default false.
   */
  readonly fanOutAfterAck?: boolean;
}

/** Collects what a broker delivers to its node. */
export class RecordingHandler implements BrokerEventHandler {
  readonly publications: { channel: string; pub: Publication }[] = [];
  readonly joins: { channel: string; info: ClientInfo }[] = [];
  readonly leaves: { channel: string; info: ClientInfo }[] = [];
  readonly controls: ControlMessage[] = [];
  resyncs = 0;
  private waiters: (() => void)[] = [];

  handlePublication(channel: string, pub: Publication): void {
    this.publications.push({ channel, pub });
    this.wake();
  }
  handleJoin(channel: string, info: ClientInfo): void {
    this.joins.push({ channel, info });
    this.wake();
  }
  handleLeave(channel: string, info: ClientInfo): void {
    this.leaves.push({ channel, info });
    this.wake();
  }
  handleControl(message: ControlMessage): void {
    this.controls.push(message);
    this.wake();
  }
  handleResync(): void {
    this.resyncs++;
    this.wake();
  }

  pubsOf(channel: string): Publication[] {
    return this.publications.filter((p) => p.channel === channel).map((p) => p.pub);
  }

  /** Resolves once `check` holds; rejects after `timeoutMs`. */
  async until(check: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('condition not reached in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** A node whose handler has a bug: it records each event, then throws. */
export class ThrowingHandler extends RecordingHandler {
  override handlePublication(channel: string, pub: Publication): void {
    super.handlePublication(channel, pub);
    throw new Error(`handler bug on a publication of ${channel}`);
  }
  override handleJoin(channel: string, info: ClientInfo): void {
    super.handleJoin(channel, info);
    throw new Error(`handler bug on a join of ${channel}`);
  }
  override handleLeave(channel: string, info: ClientInfo): void {
    super.handleLeave(channel, info);
    throw new Error(`handler bug on a leave of ${channel}`);
  }
  override handleControl(message: ControlMessage): void {
    super.handleControl(message);
    throw new Error(`handler bug on a ${message.type} control message`);
  }
}

const json = (value: unknown): JsonText => JSON.stringify(value) as JsonText;
const withHistory: PublishOptions = { historySize: 10, historyTtlMs: 60_000, historyMetaTtlMs: 3_600_000 };
const noHistory: PublishOptions = { historySize: 0, historyTtlMs: 0, historyMetaTtlMs: 0 };
const alice: ClientInfo = { user: 'alice', client: 'c-alice', connInfo: json({ name: 'Alice' }) };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function describeBrokerContract(name: string, setup: BrokerContractSetup): void {
  describe(`Broker contract: ${name}`, () => {
    const started: BrokerUnderTest[] = [];

    async function startNode(events = new RecordingHandler()): Promise<{ node: BrokerUnderTest; events: RecordingHandler }> {
      const node = await setup.node();
      await node.broker.start(events);
      started.push(node);
      return { node, events };
    }

    afterEach(async () => {
      for (const n of started.splice(0)) {
        await n.broker.close();
        await n.presence.close();
      }
      setup.reset();
    });

    it('assigns contiguous offsets from 1 with one epoch and delivers in offset order', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['chat:a']);
      const positions = [];
      for (let i = 0; i < 5; i++) positions.push(await node.broker.publish('chat:a', json({ i }), withHistory));
      expect(positions.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
      expect(new Set(positions.map((p) => p.epoch)).size).toBe(1);
      await events.until(() => events.pubsOf('chat:a').length === 5);
      const pubs = events.pubsOf('chat:a');
      expect(pubs.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
      expect(pubs.map((p) => JSON.parse(p.data) as unknown)).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
      expect(pubs[0]?.epoch).toBe(positions[0]?.epoch);
    });

    it('keeps offsets contiguous and ordered under concurrent publishes', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['chat:race']);
      const positions = await Promise.all(
        Array.from({ length: 100 }, (_, i) => node.broker.publish('chat:race', json(i), withHistory)),
      );
      expect(positions.map((p) => p.offset).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      await events.until(() => events.pubsOf('chat:race').length === 100);
      expect(events.pubsOf('chat:race').map((p) => p.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    });

    it('carries publisher info and tags', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['chat:info']);
      await node.broker.publish('chat:info', json('hi'), { ...withHistory, info: alice, tags: { kind: 'text' } });
      await events.until(() => events.pubsOf('chat:info').length === 1);
      const pub = events.pubsOf('chat:info')[0];
      expect(pub?.info?.user).toBe('alice');
      expect(pub?.info?.client).toBe('c-alice');
      expect(JSON.parse(pub?.info?.connInfo ?? 'null')).toEqual({ name: 'Alice' });
      expect(pub?.tags).toEqual({ kind: 'text' });
      const history = await node.broker.history('chat:info', { limit: 10 });
      expect(history.publications[0]?.info?.user).toBe('alice');
      expect(history.publications[0]?.tags).toEqual({ kind: 'text' });
    });

    it('publishes without history: offset 0, delivered, nothing kept', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['live:x']);
      const position = await node.broker.publish('live:x', json({ v: 1 }), noHistory);
      expect(position.offset).toBe(0);
      await events.until(() => events.pubsOf('live:x').length === 1);
      expect(events.pubsOf('live:x')[0]?.offset).toBe(0);
    });

    it('fans out a publication positioned upstream as it is: its offset, epoch and time, nothing kept, nothing assigned', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['room:kept']);
      const info = { user: 'alice', client: 'c1' };
      const epoch = 'store "epoch" é';
      // Out of order on purpose: ordering such publications is the receiving node's job.
      for (const offset of [7, 9, 8]) {
        const position = await node.broker.publish('room:kept', json({ offset }), { ...noHistory, info, position: { offset, epoch, time: 1_700_000_000_000 + offset } });
        expect(position).toEqual({ offset, epoch });
      }
      await events.until(() => events.pubsOf('room:kept').length === 3);
      expect(events.pubsOf('room:kept').map((p) => ({ offset: p.offset, epoch: p.epoch, time: p.time, data: JSON.parse(p.data) as unknown, user: p.info?.user }))).toEqual(
        [7, 9, 8].map((offset) => ({ offset, epoch, time: 1_700_000_000_000 + offset, data: { offset }, user: 'alice' })),
      );
      const history = await node.broker.history('room:kept', { limit: 10 });
      expect(history.publications).toEqual([]);
      expect(history.position.offset).toBe(0);
    });

    it('gives an empty stream a position whose epoch the first publish keeps', async () => {
      const { node } = await startNode();
      const empty = await node.broker.history('chat:new', { limit: 0 });
      expect(empty.position.offset).toBe(0);
      expect(empty.position.epoch).not.toBe('');
      const first = await node.broker.publish('chat:new', json(1), withHistory);
      expect(first).toEqual({ offset: 1, epoch: empty.position.epoch });
    });

    it('bounds history by size and reads it with since, limit and reverse', async () => {
      const { node } = await startNode();
      for (let i = 1; i <= 15; i++) await node.broker.publish('chat:h', json(i), withHistory);
      const all = await node.broker.history('chat:h', { limit: 100 });
      expect(all.publications.map((p) => p.offset)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
      expect(all.position.offset).toBe(15);
      const since = await node.broker.history('chat:h', { limit: 3, since: { offset: 9, epoch: all.position.epoch } });
      expect(since.publications.map((p) => p.offset)).toEqual([10, 11, 12]);
      const newest = await node.broker.history('chat:h', { limit: 3, reverse: true });
      expect(newest.publications.map((p) => p.offset)).toEqual([15, 14, 13]);
      const older = await node.broker.history('chat:h', { limit: 3, reverse: true, since: { offset: 13, epoch: all.position.epoch } });
      expect(older.publications.map((p) => p.offset)).toEqual([12, 11, 10]);
      const otherEpoch = await node.broker.history('chat:h', { limit: 10, since: { offset: 9, epoch: 'not-this-one' } });
      expect(otherEpoch.publications).toEqual([]);
      expect(otherEpoch.position).toEqual(all.position);
      const positionOnly = await node.broker.history('chat:h', { limit: 0 });
      expect(positionOnly.publications).toEqual([]);
      expect(positionOnly.position).toEqual(all.position);
    });

    it('drops publications older than the history TTL', async () => {
      const { node } = await startNode();
      const shortTtl = { ...withHistory, historyTtlMs: 1000 };
      await node.broker.publish('chat:ttl', json('old'), shortTtl);
      await new Promise((r) => setTimeout(r, 1300));
      await node.broker.publish('chat:ttl', json('new'), shortTtl);
      const history = await node.broker.history('chat:ttl', { limit: 10 });
      expect(history.publications.map((p) => JSON.parse(p.data) as unknown)).toEqual(['new']);
      expect(history.position.offset).toBe(2);
    });

    it('publishes once per idempotency key', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['chat:idem']);
      const options = { ...withHistory, idempotencyKey: 'order-42', idempotentResultTtlMs: 60_000 };
      const first = await node.broker.publish('chat:idem', json('once'), options);
      const second = await node.broker.publish('chat:idem', json('once'), options);
      expect(second).toEqual(first);
      const third = await node.broker.publish('chat:idem', json('other'), { ...withHistory, idempotencyKey: 'order-43' });
      expect(third.offset).toBe(first.offset + 1);
      await events.until(() => events.pubsOf('chat:idem').length === 2);
      await new Promise((r) => setTimeout(r, 100));
      expect(events.pubsOf('chat:idem').length).toBe(2);
    });

    it('removes history but keeps the position', async () => {
      const { node } = await startNode();
      await node.broker.publish('chat:rm', json(1), withHistory);
      await node.broker.publish('chat:rm', json(2), withHistory);
      await node.broker.removeHistory('chat:rm');
      const history = await node.broker.history('chat:rm', { limit: 10 });
      expect(history.publications).toEqual([]);
      expect(history.position.offset).toBe(2);
      expect((await node.broker.publish('chat:rm', json(3), withHistory)).offset).toBe(3);
    });

    it('contains a handler that throws: the publish resolves with its position and delivery goes on', async () => {
      const faulty = await startNode(new ThrowingHandler());
      // On a bus, a second node with a sound handler; in one process, the one node is all there is.
      const sound = setup.distributed ? await startNode() : undefined;
      await faulty.node.broker.subscribe(['chat:bug']);
      await sound?.node.broker.subscribe(['chat:bug']);
      const first = await faulty.node.broker.publish('chat:bug', json(1), withHistory);
      const second = await faulty.node.broker.publish('chat:bug', json(2), withHistory);
      expect([first.offset, second.offset]).toEqual([1, 2]);
      expect(second.epoch).toBe(first.epoch);
      expect((await faulty.node.broker.publish('chat:bug', json('live'), noHistory)).offset).toBe(0);
      await faulty.node.broker.publishJoin('chat:bug', alice);
      await faulty.node.broker.publishLeave('chat:bug', alice);
      await faulty.node.broker.publishControl({ type: 'message', user: 'alice', data: json('hello') });
      for (const events of [faulty.events, sound?.events]) {
        if (!events) continue;
        await events.until(
          () =>
            events.pubsOf('chat:bug').length === 3 &&
            events.joins.length === 1 &&
            events.leaves.length === 1 &&
            events.controls.some((c) => c.type === 'message'),
        );
        expect(events.pubsOf('chat:bug').map((p) => p.offset)).toEqual([1, 2, 0]);
      }
      // The broker is still sound: history holds both, and the next publish continues the lineage.
      const history = await faulty.node.broker.history('chat:bug', { limit: 10 });
      expect(history.publications.map((p) => p.offset)).toEqual([1, 2]);
      expect(await faulty.node.broker.publish('chat:bug', json(3), withHistory)).toEqual({ offset: 3, epoch: first.epoch });
    });

    it('delivers join, leave and control messages', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['chat:jl']);
      await node.broker.publishJoin('chat:jl', alice);
      await node.broker.publishLeave('chat:jl', alice);
      await node.broker.publishControl({ type: 'disconnect', user: 'bob', code: 3503, reason: 'bye' });
      await events.until(() => events.joins.length === 1 && events.leaves.length === 1 && events.controls.some((c) => c.type === 'disconnect'));
      expect(events.joins[0]).toMatchObject({ channel: 'chat:jl', info: { user: 'alice', client: 'c-alice' } });
      expect(events.leaves[0]).toMatchObject({ channel: 'chat:jl', info: { user: 'alice' } });
    });

    it('subscribes idempotently: a channel subscribed twice is delivered once', async () => {
      const { node, events } = await startNode();
      await node.broker.subscribe(['chat:twice', 'chat:twice']);
      await node.broker.subscribe(['chat:twice']);
      await node.broker.publish('chat:twice', json(1), withHistory);
      await node.broker.publish('chat:twice', json(2), noHistory);
      await events.until(() => events.pubsOf('chat:twice').length >= 2);
      await new Promise((r) => setTimeout(r, 100));
      expect(events.pubsOf('chat:twice').map((p) => p.offset)).toEqual([1, 0]);
    });

    it('serves a since position whose epoch is empty from the current epoch', async () => {
      const { node } = await startNode();
      for (let i = 1; i <= 4; i++) await node.broker.publish('chat:anyepoch', json(i), withHistory);
      const forward = await node.broker.history('chat:anyepoch', { limit: 10, since: { offset: 2, epoch: '' } });
      expect(forward.publications.map((p) => p.offset)).toEqual([3, 4]);
      const backward = await node.broker.history('chat:anyepoch', { limit: 10, reverse: true, since: { offset: 3, epoch: '' } });
      expect(backward.publications.map((p) => p.offset)).toEqual([2, 1]);
    });

    it('lists stream channels matching a glob', async () => {
      const { node } = await startNode();
      await node.broker.publish('chat:one', json(1), withHistory);
      await node.broker.publish('chat:two', json(1), withHistory);
      await node.broker.publish('user:alice', json(1), withHistory);
      expect((await node.broker.streamChannels('chat:*')).sort()).toEqual(['chat:one', 'chat:two']);
    });

    it('keeps presence entries with stats, removal and expiry', async () => {
      const { node } = await startNode();
      const p = node.presence;
      await p.add('chat:p', alice, 60_000);
      await p.add('chat:p', { user: 'alice', client: 'c-alice-2' }, 60_000);
      await p.add('chat:p', { user: 'bob', client: 'c-bob' }, 1000);
      const entries = await p.get('chat:p');
      expect(Object.keys(entries).sort()).toEqual(['c-alice', 'c-alice-2', 'c-bob']);
      expect(entries['c-alice']?.user).toBe('alice');
      expect(JSON.parse(entries['c-alice']?.connInfo ?? 'null')).toEqual({ name: 'Alice' });
      expect(await p.stats('chat:p')).toEqual({ numClients: 3, numUsers: 2 });
      await p.remove('chat:p', 'c-alice-2');
      await new Promise((r) => setTimeout(r, 1300));
      expect(Object.keys(await p.get('chat:p'))).toEqual(['c-alice']);
      expect(await p.stats('chat:p')).toEqual({ numClients: 1, numUsers: 1 });
    });

    /** Two nodes of one bus; for memory, one node twice (its one process is the whole bus). */
    async function publisherAndSubscriber(): Promise<{ pub: Broker; sub: BrokerUnderTest; events: RecordingHandler }> {
      const b = await startNode();
      if (!setup.distributed) return { pub: b.node.broker, sub: b.node, events: b.events };
      const a = await startNode();
      return { pub: a.node.broker, sub: b.node, events: b.events };
    }

    if (setup.patterns ?? true) {
      it('delivers publications, joins and leaves of channels matching a pattern once subscribed', async () => {
        const { pub, sub, events } = await publisherAndSubscriber();
        await pub.publish('chat:early', json('before'), withHistory);
        await sub.broker.subscribePattern('chat:*');
        // Literal brackets, braces, `%` and a backslash; `?` over a character of several UTF-8 bytes.
        await sub.broker.subscribePattern('room:[{%\\}]?');
        await pub.publish('chat:early', json('after'), withHistory);
        await pub.publish('chat:a', json(1), withHistory);
        await pub.publish('chat:a', json(2), withHistory);
        await pub.publish('chat:live', json('live'), noHistory);
        await pub.publish('room:[{%\\}]é', json('odd'), withHistory);
        await pub.publishJoin('chat:a', alice);
        await pub.publishLeave('chat:a', alice);
        await events.until(
          () =>
            events.pubsOf('chat:a').length === 2 &&
            events.pubsOf('chat:live').length === 1 &&
            events.pubsOf('room:[{%\\}]é').length === 1 &&
            events.pubsOf('chat:early').some((p) => p.offset === 2) &&
            events.joins.length === 1 &&
            events.leaves.length === 1,
        );
        await sleep(200);
        expect(events.pubsOf('chat:a').map((p) => p.offset)).toEqual([1, 2]);
        expect(events.pubsOf('chat:live').map((p) => p.offset)).toEqual([0]);
        expect(events.pubsOf('room:[{%\\}]é').map((p) => JSON.parse(p.data) as unknown)).toEqual(['odd']);
        // On a bus, a node hears nothing of a channel before it has some interest in it.
        // Where the fan-out of an acknowledged publication may still be on its way, the earlier
        // one may arrive too, but in order and once.
        if (setup.distributed) expect([[2], ...(setup.fanOutAfterAck ? [[1, 2]] : [])]).toContainEqual(events.pubsOf('chat:early').map((p) => p.offset));
        expect(events.joins).toEqual([{ channel: 'chat:a', info: expect.objectContaining({ user: 'alice', client: 'c-alice' }) as unknown }]);
        expect(events.leaves).toEqual([{ channel: 'chat:a', info: expect.objectContaining({ user: 'alice' }) as unknown }]);
      });

      it('delivers a channel matched by a subscription and by patterns once', async () => {
        const { pub, sub, events } = await publisherAndSubscriber();
        await sub.broker.subscribe(['chat:both']);
        await sub.broker.subscribePattern('chat:*');
        await sub.broker.subscribePattern('chat:*'); // idempotent
        await sub.broker.subscribePattern('chat:b?th');
        await sub.broker.subscribePattern('*');
        for (let i = 1; i <= 3; i++) await pub.publish('chat:both', json(i), withHistory);
        await pub.publish('chat:both', json('same'), noHistory);
        await pub.publish('chat:both', json('same'), noHistory);
        // Identical events back to back are two events, not copies of one.
        await pub.publishJoin('chat:both', alice);
        await pub.publishJoin('chat:both', alice);
        await pub.publishLeave('chat:both', alice);
        // Matched by patterns only, several of them.
        await pub.publish('chat:bath', json('b'), withHistory);
        await pub.publishJoin('chat:bath', alice);
        await pub.publishJoin('chat:bath', alice);
        const expected = (): boolean =>
          events.pubsOf('chat:both').length >= 5 && events.pubsOf('chat:bath').length >= 1 && events.joins.length >= 4 && events.leaves.length >= 1;
        await events.until(expected);
        // The exact subscription goes; the patterns still want the channel.
        await sub.broker.unsubscribe(['chat:both']);
        await pub.publish('chat:both', json(4), withHistory);
        await events.until(() => events.pubsOf('chat:both').length >= 6);
        await sleep(300);
        expect(events.pubsOf('chat:both').map((p) => p.offset)).toEqual([1, 2, 3, 0, 0, 4]);
        expect(events.pubsOf('chat:bath').map((p) => p.offset)).toEqual([1]);
        expect(events.joins.map((j) => j.channel)).toEqual(['chat:both', 'chat:both', 'chat:bath', 'chat:bath']);
        expect(events.leaves.map((l) => l.channel)).toEqual(['chat:both']);
      });

      it('delivers each publication once while subscriptions of a pattern-matched channel come and go', async () => {
        const { pub, sub, events } = await publisherAndSubscriber();
        await sub.broker.subscribePattern('chat:*');
        let publishing = true;
        const toggling = (async () => {
          while (publishing) {
            await sub.broker.subscribe(['chat:flip']);
            await sleep(3);
            await sub.broker.unsubscribe(['chat:flip']);
            await sleep(3);
          }
        })();
        try {
          for (let i = 1; i <= 60; i++) {
            await pub.publish('chat:flip', json(i), withHistory);
            if (i % 3 === 0) await pub.publish('chat:flip', json(i), noHistory);
            if (i % 4 === 0) await sleep(5);
          }
        } finally {
          publishing = false;
          await toggling;
        }
        await events.until(() => events.pubsOf('chat:flip').length >= 80);
        await sleep(300);
        const pubs = events.pubsOf('chat:flip');
        expect(pubs.filter((p) => p.offset > 0).map((p) => p.offset)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
        expect(pubs.filter((p) => p.offset === 0)).toHaveLength(20);
      });

      it('stops pattern delivery on unsubscribePattern, keeping subscriptions and other patterns', async () => {
        const { pub, sub, events } = await publisherAndSubscriber();
        await sub.broker.subscribe(['chat:kept']);
        await sub.broker.subscribePattern('chat:*');
        await sub.broker.subscribePattern('chat:*');
        await sub.broker.subscribePattern('news:*');
        await pub.publish('chat:gone', json(1), withHistory);
        await pub.publish('chat:kept', json(1), withHistory);
        await pub.publish('news:on', json(1), withHistory);
        await events.until(() => [events.pubsOf('chat:gone'), events.pubsOf('chat:kept'), events.pubsOf('news:on')].every((p) => p.length === 1));
        // Not reference-counted: one unsubscribePattern ends it.
        await sub.broker.unsubscribePattern('chat:*');
        await sub.broker.unsubscribePattern('never:*');
        await pub.publish('chat:gone', json(2), withHistory);
        await pub.publish('chat:kept', json(2), withHistory);
        await pub.publish('news:on', json(2), withHistory);
        await pub.publishJoin('chat:gone', alice);
        await events.until(() => events.pubsOf('chat:kept').length === 2 && events.pubsOf('news:on').length === 2);
        await sleep(200);
        expect(events.pubsOf('chat:kept').map((p) => p.offset)).toEqual([1, 2]);
        expect(events.pubsOf('news:on').map((p) => p.offset)).toEqual([1, 2]);
        if (setup.distributed) {
          expect(events.pubsOf('chat:gone').map((p) => p.offset)).toEqual([1]);
          expect(events.joins).toEqual([]);
        }
      });
    } else {
      it('refuses pattern subscriptions with NOT_AVAILABLE', async () => {
        const { node } = await startNode();
        const err: unknown = await node.broker.subscribePattern('chat:*').then(
          () => new Error('resolved instead of rejecting'),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RelaisError);
        expect((err as RelaisError).code).toBe('NOT_AVAILABLE');
        expect((err as RelaisError).temporary).toBe(false);
        await node.broker.unsubscribePattern('chat:*');
      });
    }

    if (setup.distributed) {
      it('fans out between nodes with the same offsets, in order', async () => {
        const a = await startNode();
        const b = await startNode();
        await a.node.broker.subscribe(['chat:x']);
        await b.node.broker.subscribe(['chat:x']);
        const positions = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).node.broker.publish('chat:x', json(i), withHistory)),
        );
        expect(positions.map((p) => p.offset).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        await a.events.until(() => a.events.pubsOf('chat:x').length === 50);
        await b.events.until(() => b.events.pubsOf('chat:x').length === 50);
        const seq = Array.from({ length: 50 }, (_, i) => i + 1);
        expect(a.events.pubsOf('chat:x').map((p) => p.offset)).toEqual(seq);
        expect(b.events.pubsOf('chat:x').map((p) => p.offset)).toEqual(seq);
        expect(a.events.pubsOf('chat:x').map((p) => p.data)).toEqual(b.events.pubsOf('chat:x').map((p) => p.data));
      });

      it('does not deliver channels a node did not subscribe to, and stops after unsubscribe', async () => {
        const a = await startNode();
        const b = await startNode();
        await b.node.broker.subscribe(['chat:only']);
        await a.node.broker.publish('chat:other', json(1), withHistory);
        await a.node.broker.publish('chat:only', json(1), withHistory);
        await b.events.until(() => b.events.pubsOf('chat:only').length === 1);
        expect(b.events.pubsOf('chat:other')).toEqual([]);
        await b.node.broker.unsubscribe(['chat:only']);
        await a.node.broker.publish('chat:only', json(2), withHistory);
        await new Promise((r) => setTimeout(r, 200));
        expect(b.events.pubsOf('chat:only').length).toBe(1);
      });

      it('shares presence and control messages between nodes', async () => {
        const a = await startNode();
        const b = await startNode();
        await a.node.presence.add('chat:pp', alice, 60_000);
        expect(Object.keys(await b.node.presence.get('chat:pp'))).toEqual(['c-alice']);
        await a.node.broker.publishControl({ type: 'message', user: 'alice', data: json('hello') });
        await b.events.until(() => b.events.controls.some((c) => c.type === 'message'));
      });
    }
  });
}

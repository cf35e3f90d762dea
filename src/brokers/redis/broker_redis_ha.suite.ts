/**
 * The Redis broker on a Redis deployment of the test's own (a Cluster, a Sentinel group:
 * test/helpers/redis_topologies.ts), started with `redis-server` on spare ports and stopped
 * afterwards: the broker contract suite, then a master failover while publications flow,
 * the master's replica frozen just before the master dies so that writes it never got die
 * with the master. Nothing here touches the shared Redis. Without `redis-server` the suite
 * skips, or fails under CI=true.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import type { PublishOptions } from '../broker.js';
import { describeBrokerContract, RecordingHandler } from '../broker.contract.js';
import { RedisBroker } from './broker_redis.js';
import { RedisPresenceManager } from './presence_redis.js';
import { describeWithBus, serverBinaryAvailable } from '../../../test/helpers/buses.js';
import type { FailoverOptions } from '../../../test/helpers/redis_topologies.js';

const json = (value: unknown): JsonText => JSON.stringify(value) as JsonText;
const withHistory: PublishOptions = { historySize: 10_000, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000 };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const newPrefix = (): string => `relais-ha-${randomBytes(4).toString('hex')}`;

/** The channel of the failover test; its hash tag names the Cluster slot whose master dies. */
export const FAILOVER_CHANNEL = 'ha:failover';

export interface RedisDeployment {
  readonly url: string;
  /** Kills the master serving FAILOVER_CHANNEL; resolves once a replica took over and the killed server is back as a replica. */
  failover(options: FailoverOptions): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisTopology {
  readonly name: string;
  /** Sharded pub/sub (a Cluster): no pattern subscription. */
  readonly sharded: boolean;
  start(): Promise<RedisDeployment>;
}

export async function describeRedisHa(topology: RedisTopology): Promise<void> {
  const binary = await serverBinaryAvailable('redis');
  const missing = binary ? undefined : 'redis-server is not installed';
  describeWithBus(`Redis broker on a ${topology.name}`, missing, () => {
    let deployment: RedisDeployment | undefined;
    const open: { close(): Promise<void> }[] = [];

    beforeAll(async () => {
      deployment = await topology.start();
    }, 60_000);
    afterAll(async () => {
      for (const o of open.splice(0)) await o.close().catch(() => undefined);
      await deployment?.stop();
    }, 30_000);

    const url = (): string => {
      if (!deployment) throw new Error('deployment not started');
      return deployment.url;
    };

    let prefix = newPrefix();
    let nodes = 0;
    describeBrokerContract(topology.name, {
      distributed: true,
      // A Cluster runs sharded pub/sub, which has no pattern subscription.
      patterns: !topology.sharded,
      node: () => {
        const nodeId = `node-${++nodes}`;
        return Promise.resolve({
          broker: new RedisBroker({ url: url(), prefix, nodeId }),
          presence: new RedisPresenceManager({ url: url(), prefix, nodeId }),
        });
      },
      reset: () => {
        prefix = newPrefix();
      },
    });

    it('master killed while publishing, its replica frozen just before: nothing acknowledged is lost (WAIT 1), refusals are temporary and bounded, the subscriber resyncs', async () => {
      const haPrefix = newPrefix();
      const publisher = new RedisBroker({ url: url(), prefix: haPrefix, nodeId: 'pub', replicaAcks: 1, replicaAckTimeoutMs: 200, commandTimeoutMs: 2000 });
      const subscriber = new RedisBroker({ url: url(), prefix: haPrefix, nodeId: 'sub', commandTimeoutMs: 2000 });
      open.push(publisher, subscriber);
      const events = new RecordingHandler();
      await publisher.start(new RecordingHandler());
      await subscriber.start(events);
      const channel = FAILOVER_CHANNEL;
      await subscriber.subscribe([channel]);

      const acknowledged = new Map<number, number>(); // value -> offset
      const refusals: RelaisError[] = [];
      const others: unknown[] = [];
      let failedOver = false;
      const failover = (async () => {
        await sleep(300);
        await deployment?.failover({ replicaFrozenMs: 700 });
        failedOver = true;
      })();
      // Publishes one at a time, bounded in count and time, until 200 were acknowledged after the failover.
      const deadline = Date.now() + 30_000;
      let sinceFailover = 0;
      for (let value = 0; value < 5_000 && Date.now() < deadline && sinceFailover < 200; value++) {
        const started = Date.now();
        try {
          const position = await publisher.publish(channel, json({ value }), withHistory);
          acknowledged.set(value, position.offset);
          if (failedOver) sinceFailover++;
        } catch (err) {
          if (err instanceof RelaisError) refusals.push(err);
          else others.push(err);
          await sleep(50);
        }
        // Never a hang: the command timeout (2 s) bounds every attempt, redirections included.
        expect(Date.now() - started).toBeLessThan(10_000);
      }
      await failover;
      expect(others).toEqual([]);
      expect(sinceFailover).toBe(200);
      for (const err of refusals) {
        expect(err.code).toBe('BROKER_UNAVAILABLE');
        expect(err.temporary).toBe(true);
      }

      // Every acknowledged publication is in history after the failover, at its offset.
      const history = await publisher.history(channel, { limit: 10_000 });
      const byValue = new Map(history.publications.map((p) => [(JSON.parse(p.data) as { value: number }).value, p.offset]));
      const lost = [...acknowledged].filter(([value, offset]) => byValue.get(value) !== offset);
      expect(lost).toEqual([]);
      // Subscribers only ever saw publications the replicas held: each one received live is in
      // history at the offset it came with (none was lost with the master and its offset reused).
      const byOffset = new Map(history.publications.map((p) => [p.offset, p.data]));
      const leaked = events.pubsOf(channel).filter((p) => byOffset.get(p.offset) !== p.data);
      expect(leaked.map((p) => `${p.offset}: ${p.data}`)).toEqual([]);

      // The subscriber was told to resync (its node then recovers from history) and receives live again.
      await events.until(() => events.resyncs > 0, 15_000);
      const before = events.pubsOf(channel).length;
      await publisher.publish(channel, json({ value: -1 }), withHistory);
      await events.until(() => events.pubsOf(channel).length > before, 10_000);
      process.stdout.write(
        `[${topology.name}] failover: ${acknowledged.size} acknowledged, ${refusals.length} refused (temporary), 0 lost; history ${history.publications.length}, resyncs ${events.resyncs}\n`,
      );
    }, 60_000);
  });
}

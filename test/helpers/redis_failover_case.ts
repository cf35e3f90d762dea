/**
 * The failover case of two Relais instances on a Redis deployment of the test's own (a
 * Cluster of 3 masters + 3 replicas, a Sentinel group of a master, a replica and 3
 * sentinels: redis_topologies.ts), started with `redis-server` on spare ports and stopped
 * afterwards, with REDIS_REPLICA_ACKS=1. Publications flow through
 * instance 1 while the master of their channel dies (its replica frozen and cut off just
 * before): the `centrifuge` SDK subscribers of both instances get every acknowledged
 * publication once, in order; every refusal is 503, code 100, temporary; history, presence
 * and recovery answer on the other instance. Nothing here touches the shared Redis.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { describeWithBus, serverBinaryAvailable } from './buses.js';
import { expectClean, report, Resources, until } from './cluster.js';
import { LeanSubscriber } from './lean_subscriber.js';
import { checkDelivery, expectedSequence, PublishLoop, totals } from './ledger.js';
import { RedisClusterFixture, RedisSentinelFixture, type FailoverOptions } from './redis_topologies.js';
import { startRelais, withTimeout, type RelaisProcess } from './relais.js';
import { SdkSubscriber } from './sdk_subscriber.js';

const CHANNEL = 'feed:ha';

const CONFIG = {
  presence_ttl: '4s',
  // The failover refuses publishes for a few seconds: the breaker must not open meanwhile.
  circuit_breaker: { failure_threshold: 1000, open_duration: '1s' },
  namespaces: {
    feed: {
      history_size: 5_000,
      history_ttl: '10m',
      force_recovery: true,
      recovery_max_publications: 5_000,
      presence: true,
      allow_subscribe: 'authenticated',
    },
  },
};

interface Deployment {
  readonly url: string;
  failover(options: FailoverOptions): Promise<void>;
  stop(): Promise<void>;
}

export interface FailoverTopology {
  readonly name: string;
  start(): Promise<Deployment>;
}

export const REDIS_CLUSTER: FailoverTopology = {
  name: 'Redis Cluster',
  start: async () => {
    const cluster = await RedisClusterFixture.start(3);
    return { url: cluster.url, failover: (options) => cluster.failOverMasterOf(`{${CHANNEL}}`, options), stop: () => cluster.stop() };
  },
};

export const REDIS_SENTINEL: FailoverTopology = {
  name: 'Redis Sentinel',
  start: async () => {
    const group = await RedisSentinelFixture.start();
    return {
      url: group.url,
      failover: async (options) => {
        await group.killMaster(options);
      },
      stop: () => group.stop(),
    };
  },
};

export async function describeFailoverCase(topology: FailoverTopology): Promise<void> {
  const binary = await serverBinaryAvailable('redis');
  describeWithBus(`2 instances on a ${topology.name}`, binary ? undefined : 'no redis-server binary', () => {
    const run = new Resources();
    afterEach(async () => {
      await run.release();
    });

    it('master failover while publishing: every acknowledged publication reaches the SDK subscribers of both instances once, in order; history, presence and recovery across instances', async () => {
      const deployment = run.on(await topology.start(), (d) => d.stop());
      const secrets = { RELAIS_TOKEN_SECRET: `ha-${randomBytes(8).toString('hex')}`, RELAIS_API_KEY: `ha-key-${randomBytes(8).toString('hex')}` };
      const env = {
        REDIS_URL: deployment.url,
        RELAIS_BUS_PREFIX: `relais-ha-${randomBytes(4).toString('hex')}`,
        REDIS_REPLICA_ACKS: '1',
        REDIS_REPLICA_ACK_TIMEOUT: '300',
        ...secrets,
      };
      const nodes: RelaisProcess[] = await Promise.all([startRelais({ env, config: CONFIG }), startRelais({ env, config: CONFIG })]);
      run.processes.push(...nodes);
      const [a, b] = nodes as [RelaisProcess, RelaisProcess];

      const sdks: SdkSubscriber[] = [];
      for (const [i, node] of nodes.entries()) {
        for (let k = 0; k < 2; k++) {
          const name = `sdk-${i}-${k}`;
          sdks.push(run.on(await SdkSubscriber.open(name, node.wsUrl, await node.token(name), CHANNEL), (s) => s.close()));
        }
      }
      // Presence is shared: instance 2 lists the clients of both.
      await until(
        async () => Object.keys((await b.call<{ presence: Record<string, unknown> }>('presence', { channel: CHANNEL })).presence).length === sdks.length,
        10_000,
        `${sdks.length} presence entries on instance 2`,
      );

      const loop = new PublishLoop({ channel: CHANNEL, target: () => a, concurrency: 4, paceMs: 5, idempotencyPrefix: 'ha', retryForMs: 20_000 }).start();
      await until(() => loop.acked.length >= 100, 20_000, '100 publications acknowledged before the failover');
      const failoverStarted = Date.now();
      await deployment.failover({ replicaFrozenMs: 500 });
      const failedOverMs = Date.now() - failoverStarted;
      const after = Date.now();
      await until(() => loop.acked.filter((o) => (o.ack?.at ?? 0) > after).length >= 100, 30_000, '100 publications acknowledged after the failover');
      await withTimeout(loop.stop(), 30_000, 'publish loop did not stop');

      // Refusals were temporary (the publisher retried them with their idempotency key).
      const failures = loop.outcomes.flatMap((o) => o.attempts.filter((t) => t.status !== 200));
      const shapes = new Set(failures.map((t) => JSON.stringify({ status: t.status, code: t.error?.code, temporary: t.error?.temporary })));
      expect([...shapes]).toEqual(failures.length > 0 ? [JSON.stringify({ status: 503, code: 100, temporary: true })] : []);
      expect(loop.outcomes.filter((o) => !o.ack).map((o) => o.n), 'every publication acknowledged in the end').toEqual([]);

      const { epoch, expected } = expectedSequence(loop);
      await until(
        () => sdks.every((s) => s.position.offset >= expected.length),
        30_000,
        () => `every SDK subscriber at ${expected.length} (${sdks.map((s) => s.position.offset).join(', ')})`,
      );
      await new Promise((resolve) => setTimeout(resolve, 200)); // anything sent twice would arrive now
      const checks = sdks.map((s) => checkDelivery(s, expected));
      expectClean(`${topology.name} failover`, checks);

      // History on the other instance holds every acknowledged publication.
      const history = await b.call<{ publications: { offset: number; data: { n: number } }[]; epoch: string }>('history', { channel: CHANNEL, limit: -1 });
      expect(history.epoch).toBe(epoch);
      expect(history.publications.map((p) => p.data.n)).toEqual(expected);

      // A client coming back on instance 2 from offset 50 recovers the rest.
      const token = await b.token('returning');
      const returning = run.on(await LeanSubscriber.open({ url: () => b.wsUrl, token, channel: CHANNEL, since: { offset: 50, epoch } }), (s) => s.close());
      await until(() => returning.position.offset >= expected.length, 10_000, 'the returning client recovered');
      expect(returning.subscribedEvents[0]).toMatchObject({ wasRecovering: true, recovered: true });
      expectClean('recovery', [checkDelivery({ name: 'returning', offsets: returning.offsets, values: returning.values }, expected, { from: 50 })]);

      const sum = totals(checks);
      report('redis', `${topology.name} failover`, {
        published: loop.acked.length,
        refusedAttempts: failures.length,
        failedOverMs,
        subscribers: sum.subscribers,
        delivered: sum.delivered,
        duplicated: sum.duplicated,
        lost: sum.lost,
      });
    }, 90_000);
  });
}

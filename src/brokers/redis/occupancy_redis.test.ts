/**
 * RedisOccupancy on the machine's Redis (a prefix per test, deleted afterwards) and on a Redis
 * Cluster of 3 masters started by the test: no script may touch two slots.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { deletePrefix, describeWithBus, serverBinaryAvailable, sharedBusAvailable, SHARED_URL } from '../../../test/helpers/buses.js';
import { RedisClusterFixture } from '../../../test/helpers/redis_topologies.js';
import { describeOccupancyContract } from '../occupancy.contract.js';
import { RedisOccupancy } from './occupancy_redis.js';

import { silentLogger as logger } from './connection.js';
const newPrefix = (): string => `relais-occ-${randomBytes(5).toString('hex')}`;

describeWithBus('RedisOccupancy (one server)', (await sharedBusAvailable('redis')) ? undefined : `no Redis at ${SHARED_URL.redis}`, () => {
  let prefix = newPrefix();
  afterAll(() => deletePrefix('redis', prefix));
  describeOccupancyContract('redis', {
    distributed: true,
    node: (livenessMs) => {
      const counter = new RedisOccupancy({ url: SHARED_URL.redis, prefix, nodeId: randomUUID(), livenessMs, logger });
      return Promise.resolve({ counter, crash: () => counter.close() });
    },
    reset: async () => {
      await deletePrefix('redis', prefix);
      prefix = newPrefix();
    },
  });
});

describeWithBus('RedisOccupancy (Redis Cluster)', (await serverBinaryAvailable('redis')) ? undefined : 'no redis-server binary', () => {
  let cluster: RedisClusterFixture | undefined;
  let prefix = newPrefix();
  beforeAll(async () => {
    cluster = await RedisClusterFixture.start(3);
  }, 60_000);
  afterAll(() => cluster?.stop());
  describeOccupancyContract('redis cluster', {
    distributed: true,
    node: (livenessMs) => {
      if (!cluster) throw new Error('the cluster did not start');
      const counter = new RedisOccupancy({ url: cluster.url, prefix, nodeId: randomUUID(), livenessMs, logger });
      return Promise.resolve({ counter, crash: () => counter.close() });
    },
    reset: () => {
      prefix = newPrefix();
      return Promise.resolve();
    },
  });
});

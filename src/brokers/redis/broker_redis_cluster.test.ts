/** The Redis broker on a Redis Cluster of 3 masters with one replica each, started by the test. */
import { RedisClusterFixture } from '../../../test/helpers/redis_topologies.js';
import { describeRedisHa, FAILOVER_CHANNEL } from './broker_redis_ha.suite.js';

await describeRedisHa({
  name: 'Redis Cluster (3 masters + 3 replicas)',
  sharded: true,
  start: async () => {
    const cluster = await RedisClusterFixture.start(3);
    return {
      url: cluster.url,
      failover: (options) => cluster.failOverMasterOf(`{${FAILOVER_CHANNEL}}`, options),
      stop: () => cluster.stop(),
    };
  },
});

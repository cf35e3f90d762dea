/** The Redis broker through Redis Sentinel (a master, a replica, 3 sentinels), started by the test. */
import { RedisSentinelFixture } from '../../../test/helpers/redis_topologies.js';
import { describeRedisHa } from './broker_redis_ha.suite.js';

await describeRedisHa({
  name: 'Redis Sentinel (master + replica, 3 sentinels)',
  sharded: false,
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
});

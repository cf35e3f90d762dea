/** Two Relais instances on a Redis Cluster of the test's own while a master fails over (helpers/redis_failover_case.ts). */
import { describeFailoverCase, REDIS_CLUSTER } from './helpers/redis_failover_case.js';

await describeFailoverCase(REDIS_CLUSTER);

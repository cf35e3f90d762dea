/** Two Relais instances on a Sentinel group of the test's own while the master fails over (helpers/redis_failover_case.ts). */
import { describeFailoverCase, REDIS_SENTINEL } from './helpers/redis_failover_case.js';

await describeFailoverCase(REDIS_SENTINEL);

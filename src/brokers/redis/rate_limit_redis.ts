import type { RateLimit, UserRateLimiter } from '../../core/rate_limit.js';
import { KeyedBuckets } from '../../core/rate_limit.js';
import { createConnection, type RedisClient, type RedisLogger } from './connection.js';
import { LuaScript } from './scripts.js';

/**
 * A token bucket in one Redis hash, taken atomically on Redis's clock, so that a user's
 * limit holds across every instance of the deployment.
 * KEYS: 1 bucket. ARGV: 1 burst, 2 tokens per second. Returns 1 when a token was taken.
 */
const TAKE = new LuaScript(
  'rate_limit_take',
  `
local clock = redis.call('time')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('hmget', KEYS[1], 't', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('hset', KEYS[1], 't', tostring(tokens), 'at', now)
redis.call('pexpire', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return taken
`,
);

export interface RedisUserRateLimiterOptions {
  readonly url: string;
  readonly prefix: string;
  readonly limit: RateLimit;
  readonly logger: RedisLogger;
}

/**
 * Per-user rate limit shared by every instance on one Redis. When Redis does not answer, it
 * falls back to a bucket of this instance alone (and says so once), rather than refusing
 * every command or letting everything through.
 */
export class RedisUserRateLimiter implements UserRateLimiter {
  private readonly redis: RedisClient;
  private readonly local: KeyedBuckets;
  private degraded = false;

  constructor(private readonly options: RedisUserRateLimiterOptions) {
    this.redis = createConnection(options.url, { name: `${options.prefix}:rate-limit`, commandTimeoutMs: 500, connectTimeoutMs: 2000, offlineQueue: true });
    this.local = new KeyedBuckets(options.limit);
  }

  async take(user: string): Promise<boolean> {
    try {
      const taken = await TAKE.run(this.redis, [`${this.options.prefix}.rl.${user}`], [this.options.limit.burst, this.options.limit.per_second]);
      if (this.degraded) {
        this.degraded = false;
        this.options.logger.warn({}, 'user rate limits are shared through Redis again');
      }
      return taken === 1;
    } catch (err) {
      if (!this.degraded) {
        this.degraded = true;
        this.options.logger.warn({ err }, 'Redis unavailable for user rate limits: limiting per instance until it is back');
      }
      return this.local.take(user);
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
    return Promise.resolve();
  }
}

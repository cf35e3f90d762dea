import type { OccupancyCounter, OccupancyTransition } from '../occupancy.js';
import { closeConnection, createConnection, unavailable, watchConnection, type RedisClient, type RedisLogger } from './connection.js';
import { assertValidPrefix } from './keys.js';
import { LuaScript } from './scripts.js';

/**
 * Sets (or clears) this node's field in the channel's hash and reports whether the channel's
 * field count crossed zero. KEYS: channel hash, node's channel set, node registry, node's
 * liveness key. ARGV: node id, 1 or 0, channel, liveness ms.
 */
const OCCUPANCY_SET = new LuaScript(
  'occupancy_set',
  `
local before = redis.call('HLEN', KEYS[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], '1')
  redis.call('SADD', KEYS[2], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
local after = redis.call('HLEN', KEYS[1])
if before == 0 and after > 0 then return 1 end
if before > 0 and after == 0 then return -1 end
return 0
`,
);

/**
 * Removes the fields of every registered node whose liveness key expired and returns the
 * channels left without a field. KEYS: node registry. ARGV: liveness key prefix, node
 * channel-set prefix, channel hash prefix. Key names are built inside: one Redis, not Cluster.
 */
const OCCUPANCY_SWEEP = new LuaScript(
  'occupancy_sweep',
  `
local vacated = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. node) == 0 then
    local set = ARGV[2] .. node
    for _, channel in ipairs(redis.call('SMEMBERS', set)) do
      local hash = ARGV[3] .. channel
      if redis.call('HDEL', hash, node) == 1 and redis.call('HLEN', hash) == 0 then table.insert(vacated, channel) end
    end
    redis.call('DEL', set)
    redis.call('SREM', KEYS[1], node)
  end
end
return vacated
`,
);

export interface RedisOccupancyOptions {
  readonly url: string;
  /** The bus prefix: nodes of one deployment share it. */
  readonly prefix: string;
  readonly nodeId: string;
  /** How long a node counts as alive after its last change or sweep, ms. */
  readonly livenessMs: number;
  readonly logger: RedisLogger;
}

/**
 * Channel occupancy in one Redis: per channel a hash of the nodes with subscribers, per node
 * the set of its channels and a liveness key, and a registry of nodes. Each change is one
 * Lua script, so one node sees each transition.
 */
export class RedisOccupancy implements OccupancyCounter {
  private readonly redis: RedisClient;
  private readonly base: string;

  constructor(private readonly options: RedisOccupancyOptions) {
    assertValidPrefix(options.prefix);
    this.base = `${options.prefix}.occupancy`;
    this.redis = createConnection(options.url, { name: `${options.prefix}:${options.nodeId}:occupancy`, commandTimeoutMs: 5000, connectTimeoutMs: 5000, offlineQueue: true });
    watchConnection(this.redis, 'occupancy', options.url, options.logger);
  }

  async set(channel: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    const node = this.options.nodeId;
    try {
      const reply = await OCCUPANCY_SET.run(
        this.redis,
        [`${this.base}.channel.${channel}`, `${this.base}.node.${node}`, `${this.base}.nodes`, `${this.base}.alive.${node}`],
        [node, occupied ? '1' : '0', channel, this.options.livenessMs],
      );
      return reply === 1 ? 'occupied' : reply === -1 ? 'vacated' : undefined;
    } catch (err) {
      throw unavailable('occupancy', err);
    }
  }

  async sweep(): Promise<string[]> {
    try {
      await this.redis.set(`${this.base}.alive.${this.options.nodeId}`, '1', 'PX', this.options.livenessMs);
      const reply = await OCCUPANCY_SWEEP.run(this.redis, [`${this.base}.nodes`], [`${this.base}.alive.`, `${this.base}.node.`, `${this.base}.channel.`]);
      return Array.isArray(reply) ? reply.filter((c): c is string => typeof c === 'string') : [];
    } catch (err) {
      throw unavailable('occupancy sweep', err);
    }
  }

  async close(): Promise<void> {
    await closeConnection(this.redis, 2000);
  }
}

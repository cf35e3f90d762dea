import type { OccupancyCounter, OccupancyTransition } from '../occupancy.js';
import { closeConnection, createConnection, unavailable, watchConnection, type RedisClient, type RedisLogger } from './connection.js';
import { RedisKeys } from './keys.js';
import { LuaScript } from './scripts.js';

/**
 * Sets (or clears) a node's field in the channel's hash and reports whether the field count
 * crossed zero. One key, so one slot: valid on a Redis Cluster. KEYS: channel hash.
 * ARGV: node id, 1 or 0. Returns 1 (occupied), -1 (vacated) or 0.
 */
const OCCUPANCY_SET = new LuaScript(
  'occupancy_set',
  `
local before = redis.call('HLEN', KEYS[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], '1')
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local after = redis.call('HLEN', KEYS[1])
if before == 0 and after > 0 then return 1 end
if before > 0 and after == 0 then return -1 end
return 0
`,
);

export interface RedisOccupancyOptions {
  /** A single server, Sentinel or Cluster URL (see parseRedisUrl). */
  readonly url: string;
  /** The bus prefix: nodes of one deployment share it. */
  readonly prefix: string;
  readonly nodeId: string;
  /** How long a node counts as alive after its last sweep, ms. */
  readonly livenessMs: number;
  readonly logger: RedisLogger;
}

/**
 * Channel occupancy in Redis (single server, Sentinel or Cluster; keys in RedisKeys): per
 * channel a hash of the nodes with subscribers, in the channel's slot, changed by one script
 * that reads its size before and after, so of several nodes changing a channel at once one
 * sees each transition. Per node, in the node's own slot, the set of its channels and a
 * liveness key; a registry of nodes in a slot of its own. No script touches two slots.
 *
 * A node adds a channel to its set before joining the channel's hash and removes it after
 * leaving, so whatever a node dies holding is in its set. A sweep reads the registry, then
 * each node's liveness key; for a dead node it clears the node from each channel of its set
 * with the same script, which reports the channel vacated to the one sweeper that emptied it.
 */
export class RedisOccupancy implements OccupancyCounter {
  private readonly redis: RedisClient;
  private readonly keys: RedisKeys;
  private registered = false;

  constructor(private readonly options: RedisOccupancyOptions) {
    this.keys = new RedisKeys(options.prefix);
    this.redis = createConnection(options.url, { name: `${options.prefix}:${options.nodeId}:occupancy`, commandTimeoutMs: 5000, connectTimeoutMs: 5000, offlineQueue: true });
    watchConnection(this.redis, 'occupancy', options.url, options.logger);
  }

  async set(channel: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    const node = this.options.nodeId;
    try {
      if (!this.registered) await this.register();
      if (occupied) await this.redis.sadd(this.keys.occupancyNode(node), channel);
      const transition = await this.change(channel, node, occupied);
      // The change is made: a failure now must not lose its transition. A stale member only
      // makes a sweep look at a channel this node no longer holds.
      if (!occupied) {
        await this.redis.srem(this.keys.occupancyNode(node), channel).catch((err: unknown) => {
          this.options.logger.warn({ err, channel }, 'channel occupancy: node channel set not updated');
        });
      }
      return transition;
    } catch (err) {
      throw unavailable('occupancy', err);
    }
  }

  async sweep(): Promise<string[]> {
    try {
      await this.register();
      // The registry before the liveness keys: a node registers after setting its liveness
      // key, so a node read here as registered has its key visible below unless it lapsed.
      const nodes = await this.redis.smembers(this.keys.occupancyNodes);
      const vacated: string[] = [];
      for (const node of nodes) {
        if (node === this.options.nodeId || (await this.redis.exists(this.keys.occupancyAlive(node))) === 1) continue;
        const set = this.keys.occupancyNode(node);
        for (const channel of await this.redis.smembers(set)) {
          if ((await this.change(channel, node, false)) === 'vacated') vacated.push(channel);
          await this.redis.srem(set, channel);
        }
        await this.redis.srem(this.keys.occupancyNodes, node);
      }
      return vacated;
    } catch (err) {
      throw unavailable('occupancy sweep', err);
    }
  }

  async close(): Promise<void> {
    await closeConnection(this.redis, 2000);
  }

  private async change(channel: string, node: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    const reply = await OCCUPANCY_SET.run(this.redis, [this.keys.occupancy(channel)], [node, occupied ? '1' : '0']);
    return reply === 1 ? 'occupied' : reply === -1 ? 'vacated' : undefined;
  }

  /** Liveness first, then the registry (see sweep). */
  private async register(): Promise<void> {
    const node = this.options.nodeId;
    await this.redis.set(this.keys.occupancyAlive(node), '1', 'PX', this.options.livenessMs);
    await this.redis.sadd(this.keys.occupancyNodes, node);
    this.registered = true;
  }
}

import type { Logger } from 'pino';
import type { Broker, PresenceManager } from '../brokers/broker.js';
import { LocalOccupancy, type OccupancyCounter } from '../brokers/occupancy.js';
import { RetryingBroker } from '../brokers/broker_retrying.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import { MemoryPresenceManager } from '../brokers/memory/presence_memory.js';
import type { RelaisConfig } from '../config/schema.js';
import type { UserRateLimiter } from '../core/rate_limit.js';

export interface Bus {
  readonly broker: Broker;
  readonly presence: PresenceManager;
  /** One line for the start-up log: which bus, and what it means. */
  readonly description: string;
  /** The bus in a few words, for errors: "the Redis bus at redis://...". */
  readonly label: string;
  /** Per-user rate limits shared by the instances, where the bus can hold them. */
  readonly userLimiter?: UserRateLimiter;
  /**
   * Channel occupancy shared by the instances (lifecycle webhooks), its transitions decided
   * atomically by the bus. `livenessMs`: how long a node's channels outlive its last sign of life.
   */
  readonly createOccupancy: (livenessMs: number) => OccupancyCounter;
}

/** The broker as configured to start: at once (`bus_start: fail`), or degraded and retrying. */
function startable(config: Readonly<RelaisConfig>, logger: Logger, kind: Broker['kind'], create: () => Broker): Broker {
  if (config.bus_start === 'fail') return create();
  return new RetryingBroker({
    kind,
    create,
    retryMs: 2000,
    onRetryFailure: (err, attempt) => {
      if (attempt === 1 || attempt % 30 === 0) logger.warn({ err, attempt }, 'message bus unreachable: running degraded, retrying every 2 s');
    },
    onStarted: (attempt) => {
      if (attempt > 1) logger.info({ attempt }, 'message bus connected: leaving degraded mode');
    },
  });
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@').replace(/(sentinel_password=)[^&]*/, '$1***');
}

/**
 * Picks the message bus from the configuration: Redis with REDIS_URL, NATS with NATS_URL,
 * otherwise the in-memory bus of a single process. Bus modules load only when used.
 */
export async function createBus(config: Readonly<RelaisConfig>, nodeId: string, logger: Logger): Promise<Bus> {
  if (config.redis_url) {
    const { RedisBroker } = await import('../brokers/redis/broker_redis.js');
    const { RedisPresenceManager } = await import('../brokers/redis/presence_redis.js');
    const { RedisUserRateLimiter } = await import('../brokers/redis/rate_limit_redis.js');
    const { RedisOccupancy } = await import('../brokers/redis/occupancy_redis.js');
    const url = config.redis_url;
    return {
      createOccupancy: (livenessMs) => new RedisOccupancy({ url, prefix: config.bus_prefix, nodeId, livenessMs, logger }),
      userLimiter: new RedisUserRateLimiter({ url, prefix: config.bus_prefix, limit: config.rate_limit.user, logger }),
      broker: startable(
        config,
        logger,
        'redis',
        () =>
          new RedisBroker({
            url,
            prefix: config.bus_prefix,
            nodeId,
            logger,
            replicaAcks: config.redis_replica_acks,
            replicaAckTimeoutMs: config.redis_replica_ack_timeout,
          }),
      ),
      presence: new RedisPresenceManager({ url: config.redis_url, prefix: config.bus_prefix }),
      description: `cluster mode: Redis bus at ${redact(config.redis_url)} (prefix "${config.bus_prefix}"); instances sharing it form one cluster`,
      label: `the Redis bus at ${redact(config.redis_url)}`,
    };
  }
  if (config.nats_url) {
    const { NatsBroker } = await import('../brokers/nats/broker_nats.js');
    const { NatsPresenceManager } = await import('../brokers/nats/presence_nats.js');
    const { NatsOccupancy } = await import('../brokers/nats/occupancy_nats.js');
    // Stream-wide JetStream limits are a safety net above every namespace's own (the broker
    // trims each channel to its history_size in the background): room for the largest
    // history twice over, and positions kept as long as the longest history_meta_ttl.
    const namespaces = [config.default_namespace, ...Object.values(config.namespaces)];
    const maxHistorySize = 2 * Math.max(1, ...namespaces.map((ns) => ns.history_size)) + 100;
    const maxHistoryAgeMs = Math.max(60_000, ...namespaces.map((ns) => ns.history_meta_ttl));
    const servers = config.nats_url;
    return {
      createOccupancy: (livenessMs) => new NatsOccupancy({ servers, prefix: config.bus_prefix, nodeId, livenessMs, logger }),
      broker: startable(config, logger, 'nats', () =>
        new NatsBroker({ servers, prefix: config.bus_prefix, nodeId, logger, maxHistorySize, maxHistoryAgeMs, idempotencyTtlMs: config.idempotency_ttl }),
      ),
      presence: new NatsPresenceManager({ servers: config.nats_url, prefix: config.bus_prefix, logger }),
      description: `cluster mode: NATS JetStream bus at ${redact(config.nats_url)} (prefix "${config.bus_prefix}"); instances sharing it form one cluster`,
      label: `the NATS bus at ${redact(config.nats_url)}`,
    };
  }
  return {
    broker: new MemoryBroker({ logger }),
    presence: new MemoryPresenceManager(),
    createOccupancy: () => new LocalOccupancy(),
    description: 'standalone mode: in-memory bus, one process (set REDIS_URL or NATS_URL to run several instances)',
    label: 'the in-memory bus',
  };
}

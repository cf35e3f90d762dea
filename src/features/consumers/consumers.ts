/**
 * The consumers of the app's own queues that the configuration names (docs/outbox.md), each
 * running server API commands through one dispatcher.
 */
import type { Logger } from 'pino';
import type { RelaisConfig } from '../../config/schema.js';
import type { ServerApi } from '../../server/api.js';
import { ApiDispatcher, type ConsumerCounts } from './dispatcher.js';
import { PostgresOutboxConsumer } from './outbox_postgres.js';

export interface RunningConsumers {
  /** Commands consumed by each consumer, by outcome. */
  counts(): Iterable<[string, ConsumerCounts]>;
  stop(): Promise<void>;
}

interface Consumer {
  stop(): Promise<void>;
}

export async function startConsumers(config: Readonly<RelaisConfig>, api: ServerApi, logger: Logger): Promise<RunningConsumers | undefined> {
  const started: [string, ApiDispatcher, Consumer][] = [];
  const c = config.consumers;
  if (c.postgres) {
    const dispatcher = new ApiDispatcher(api);
    const consumer = new PostgresOutboxConsumer({
      url: c.postgres.url,
      table: c.postgres.table,
      partitions: c.postgres.partitions,
      selectLimit: c.postgres.select_limit,
      pollIntervalMs: c.postgres.poll_interval,
      ...(c.postgres.notify_channel ? { notifyChannel: c.postgres.notify_channel } : {}),
      dispatcher,
      logger: logger.child({ component: 'outbox', table: c.postgres.table }),
    });
    consumer.start();
    started.push(['postgres', dispatcher, consumer]);
  }
  if (c.redis_stream) {
    const { RedisStreamConsumer } = await import('./stream_redis.js');
    const dispatcher = new ApiDispatcher(api);
    const consumer = new RedisStreamConsumer({
      url: c.redis_stream.url,
      stream: c.redis_stream.stream,
      group: c.redis_stream.group,
      batch: c.redis_stream.batch,
      blockMs: c.redis_stream.block,
      claimIdleMs: c.redis_stream.claim_idle,
      dispatcher,
      logger: logger.child({ component: 'redis-stream-consumer', stream: c.redis_stream.stream }),
    });
    consumer.start();
    started.push(['redis_stream', dispatcher, consumer]);
  }
  if (c.nats_jetstream) {
    const { JetStreamConsumer } = await import('./jetstream_nats.js');
    const dispatcher = new ApiDispatcher(api);
    const consumer = new JetStreamConsumer({
      url: c.nats_jetstream.url,
      stream: c.nats_jetstream.stream,
      durable: c.nats_jetstream.durable,
      ...(c.nats_jetstream.subject ? { subject: c.nats_jetstream.subject } : {}),
      batch: c.nats_jetstream.batch,
      dispatcher,
      logger: logger.child({ component: 'jetstream-consumer', stream: c.nats_jetstream.stream }),
    });
    consumer.start();
    started.push(['nats_jetstream', dispatcher, consumer]);
  }
  if (started.length === 0) return undefined;
  return {
    counts: () => started.map(([name, dispatcher]) => [name, dispatcher.counts] as [string, ConsumerCounts]),
    async stop() {
      await Promise.all(started.map(([, , consumer]) => consumer.stop()));
    },
  };
}

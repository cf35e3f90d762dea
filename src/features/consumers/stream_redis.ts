import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ApiDispatcher } from './dispatcher.js';
import { parsePayload, retryDelayMs } from './dispatcher.js';

export interface RedisStreamConsumerOptions {
  readonly url: string;
  readonly stream: string;
  readonly group: string;
  readonly batch: number;
  readonly blockMs: number;
  readonly claimIdleMs: number;
  readonly dispatcher: ApiDispatcher;
  readonly logger: Logger;
}

type Entry = [id: string, fields: string[]];

/**
 * Consumes a Redis Stream of the app through a consumer group: every instance is a consumer
 * of the group, so each entry goes to one of them. An entry (fields `method` and `payload`)
 * is run through the server API with idempotency key `stream:<stream>:<entry id>`, then
 * acknowledged (XACK). Entries of a consumer that died stay pending and are claimed by
 * another after `claimIdleMs` (XAUTOCLAIM), and published once thanks to the key. The group
 * is created at the stream's start: entries written before the first instance started are
 * consumed too. Order: one instance runs its entries in stream order; across instances
 * entries are not ordered.
 */
export class RedisStreamConsumer {
  private readonly redis: Redis;
  private readonly consumer = `${hostname()}-${randomUUID().slice(0, 8)}`;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: RedisStreamConsumerOptions) {
    this.redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectionName: `relais:stream-consumer:${this.consumer}` });
    this.redis.on('error', () => undefined);
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.redis.disconnect();
  }

  private async run(): Promise<void> {
    let failures = 0;
    let grouped = false;
    while (!this.stopped) {
      try {
        if (this.redis.status === 'wait') await this.redis.connect();
        if (!grouped) {
          await this.redis.xgroup('CREATE', this.options.stream, this.options.group, '0', 'MKSTREAM').catch((err: unknown) => {
            if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
          });
          grouped = true;
        }
        await this.handle(await this.claimed());
        const read = (await this.redis.xreadgroup(
          'GROUP',
          this.options.group,
          this.consumer,
          'COUNT',
          this.options.batch,
          'BLOCK',
          this.options.blockMs,
          'STREAMS',
          this.options.stream,
          '>',
        )) as [string, Entry[]][] | null;
        await this.handle(read?.[0]?.[1] ?? []);
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err, failures }, 'stream consumer failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(failures)));
      }
    }
  }

  /** Pending entries of consumers idle past claimIdleMs, taken over by this one. */
  private async claimed(): Promise<Entry[]> {
    const reply = (await this.redis.xautoclaim(this.options.stream, this.options.group, this.consumer, this.options.claimIdleMs, '0', 'COUNT', this.options.batch)) as [
      string,
      Entry[],
    ];
    return reply[1].filter((entry) => Array.isArray(entry[1]));
  }

  private async handle(entries: readonly Entry[]): Promise<void> {
    for (const [id, fields] of entries) {
      const field = (name: string): string | undefined => {
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
        return undefined;
      };
      let payload: unknown;
      try {
        payload = parsePayload(field('payload') ?? '');
      } catch {
        payload = undefined;
      }
      const method = field('method') ?? '';
      if (payload === undefined) this.options.dispatcher.counts.invalid++;
      const outcome = payload === undefined ? 'invalid' : await this.options.dispatcher.dispatch(method, payload, `stream:${this.options.stream}:${id}`);
      if (outcome === 'invalid') this.options.logger.error({ id, method }, 'stream entry refused for good: acknowledged without effect');
      await this.redis.xack(this.options.stream, this.options.group, id);
    }
  }
}

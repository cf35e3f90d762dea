import { AckPolicy, jetstream, jetstreamManager, type Consumer } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ApiDispatcher } from './dispatcher.js';
import { retryDelayMs } from './dispatcher.js';

export interface JetStreamConsumerOptions {
  readonly url: string;
  readonly stream: string;
  readonly durable: string;
  readonly subject?: string;
  readonly batch: number;
  readonly dispatcher: ApiDispatcher;
  readonly logger: Logger;
}

const ACK_WAIT_MS = 30_000;

/**
 * Consumes an app's JetStream stream through a durable pull consumer shared by every
 * instance: each message (`{"method", "payload"}`) goes to one instance, is run through the
 * server API with idempotency key `jetstream:<stream>:<stream sequence>`, then acknowledged
 * (and the acknowledgement confirmed). A message left unacknowledged by an instance that died
 * is redelivered after 30 s and published once thanks to the key. A temporary failure asks for
 * redelivery after a backoff, so messages are not strictly ordered.
 */
export class JetStreamConsumer {
  private nc: NatsConnection | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: JetStreamConsumerOptions) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.nc?.close().catch(() => undefined);
  }

  private async consumer(): Promise<Consumer> {
    this.nc ??= await connect({ servers: this.options.url, maxReconnectAttempts: -1, name: `relais-consumer-${this.options.durable}` });
    const jsm = await jetstreamManager(this.nc);
    await jsm.consumers.add(this.options.stream, {
      durable_name: this.options.durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ACK_WAIT_MS),
      ...(this.options.subject ? { filter_subject: this.options.subject } : {}),
    });
    return jetstream(this.nc).consumers.get(this.options.stream, this.options.durable);
  }

  private async run(): Promise<void> {
    let failures = 0;
    let consumer: Consumer | undefined;
    while (!this.stopped) {
      try {
        consumer ??= await this.consumer();
        const messages = await consumer.fetch({ max_messages: this.options.batch, expires: 1000 });
        for await (const m of messages) {
          let command: { method?: unknown; payload?: unknown } | undefined;
          try {
            command = m.json<{ method?: unknown; payload?: unknown }>();
          } catch {
            command = undefined;
          }
          const key = `jetstream:${this.options.stream}:${m.seq}`;
          if (!command || typeof command.method !== 'string') {
            this.options.dispatcher.counts.invalid++;
            this.options.logger.error({ seq: m.seq }, 'stream message refused for good: acknowledged without effect');
            await m.ackAck();
            continue;
          }
          try {
            const outcome = await this.options.dispatcher.dispatch(command.method, command.payload, key);
            if (outcome === 'invalid') this.options.logger.error({ seq: m.seq, method: command.method }, 'stream message refused for good: acknowledged without effect');
            await m.ackAck();
          } catch {
            m.nak(retryDelayMs(m.info.deliveryCount));
          }
        }
        failures = 0;
      } catch (err) {
        failures++;
        consumer = undefined;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err, failures }, 'JetStream consumer failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs(failures)));
      }
    }
  }
}

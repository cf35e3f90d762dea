/**
 * Where MQTT readings come from: an external broker (`MQTT_BROKER_URL`), subscribed with a
 * shared subscription so that instances split the readings, or a broker embedded in Relais
 * (aedes, MQTT 3.1.1 over TCP) that devices connect to directly.
 */
import { createServer, type Server } from 'node:net';
import { Aedes, type AedesPublishPacket } from 'aedes';
import mqtt from 'mqtt';
import type { Logger } from 'pino';
import type { RelaisConfig } from '../../config/schema.js';
import type { TelemetryIngest } from './ingest.js';

export interface MqttSource {
  /** For the start-up log: where devices publish. */
  readonly description: string;
  /** The embedded broker's port (0 in the configuration picks a free one); undefined with an external broker. */
  readonly port: number | undefined;
  close(): Promise<void>;
}

export interface MqttSourceOptions {
  readonly config: RelaisConfig['telemetry']['mqtt'];
  /** Address the embedded broker listens on (the server's host). */
  readonly host: string;
  readonly nodeId: string;
  readonly ingest: TelemetryIngest;
  readonly logger: Logger;
}

/** How long start-up waits for the external broker's first connection and subscription. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Reads the device id out of a topic: the level of the filter's first `+`. */
export function topicDeviceReader(filter: string): (topic: string) => string | undefined {
  const level = filter.split('/').indexOf('+');
  if (level < 0) return () => undefined;
  return (topic) => topic.split('/')[level];
}

export function startMqttSource(options: MqttSourceOptions): Promise<MqttSource> {
  return options.config.broker_url ? connectExternal(options, options.config.broker_url) : startEmbedded(options);
}

async function connectExternal(options: MqttSourceOptions, url: string): Promise<MqttSource> {
  const { config, ingest, logger } = options;
  const deviceOf = topicDeviceReader(config.topic);
  const filter = config.shared_group ? `$share/${config.shared_group}/${config.topic}` : config.topic;
  const client = mqtt.connect(url, {
    // MQTT 5 for shared subscriptions; a clean session: readings missed while away are not replayed.
    protocolVersion: 5,
    clientId: `relais-${options.nodeId}`,
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: CONNECT_TIMEOUT_MS,
  });
  client.on('message', (topic, payload) => {
    ingest.payload(payload, deviceOf(topic));
  });
  client.on('error', (err) => logger.warn({ err }, 'MQTT broker connection error'));
  client.on('offline', () => logger.warn({ url }, 'MQTT broker unreachable: readings wait for the reconnection'));
  const subscribe = (): Promise<void> =>
    new Promise((resolve, reject) => {
      client.subscribe(filter, { qos: config.qos }, (err, granted) => {
        const refused = granted?.find((g) => g.qos > 2);
        if (err ?? refused) reject(err ?? new Error(`the broker refused the subscription to ${filter}`));
        else resolve();
      });
    });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection to ${url} within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      client.once('connect', () => {
        clearTimeout(timer);
        subscribe().then(resolve, reject);
      });
    });
  } catch (err) {
    await client.endAsync(true);
    throw new Error(`telemetry cannot start: MQTT broker ${url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // A clean session forgets subscriptions: subscribe again on every reconnection.
  client.on('connect', (connack) => {
    if (connack.sessionPresent) return;
    subscribe().catch((err: unknown) => logger.error({ err, filter }, 'MQTT subscription refused'));
  });
  return {
    description: `readings from MQTT broker ${url} on ${filter}`,
    port: undefined,
    close: () => client.endAsync(),
  };
}

async function startEmbedded(options: MqttSourceOptions): Promise<MqttSource> {
  const { config, ingest, logger } = options;
  const deviceOf = topicDeviceReader(config.topic);
  const broker = await Aedes.createBroker();
  const deliver = (packet: AedesPublishPacket, done: () => void): void => {
    ingest.payload(Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload), deviceOf(packet.topic));
    done();
  };
  await new Promise<void>((resolve) => broker.subscribe(config.topic, deliver, resolve));
  broker.on('clientError', (client, err) => logger.debug({ err, client: client.id }, 'MQTT client error'));
  const server: Server = createServer(broker.handle);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw new Error(
      `telemetry cannot start: the embedded MQTT broker cannot listen on ${options.host}:${config.port} (${err instanceof Error ? err.message : String(err)}); set MQTT_PORT (telemetry.mqtt.port) or MQTT_BROKER_URL`,
      { cause: err },
    );
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  server.on('error', (err) => logger.error({ err }, 'embedded MQTT broker error'));
  return {
    description: `embedded MQTT broker on mqtt://${options.host}:${port}, readings on ${config.topic}`,
    port,
    async close(): Promise<void> {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

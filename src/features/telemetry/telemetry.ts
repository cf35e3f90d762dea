/**
 * Telemetry (issue 11, seed 003 case 2; docs/telemetry.md): device readings from MQTT and
 * the server API, aggregated per device and sensor into tumbling windows, merged across
 * instances, published on the telemetry channel, kept as latest values, and streamed to
 * dashboards over SSE with a device and sensor filter. Built by the composition root when
 * `telemetry.enabled`; it talks to the node only through its seams (in-process subscriber,
 * feature messages, publish, server API methods).
 */
import type { Logger } from 'pino';
import { keepsHistory, type ResolvedChannel } from '../../core/channel.js';
import type { FrameCache } from '../../core/hub.js';
import type { ChannelSubscriber } from '../../core/hub.js';
import type { JsonText } from '../../core/json.js';
import type { Node } from '../../core/node.js';
import type { Publication } from '../../core/publication.js';
import type { ServerApi } from '../../server/api.js';
import { encodeAggregate, type WindowAggregate } from './aggregate.js';
import { DashboardStreams, type OutgoingAggregate } from './dashboard_streams.js';
import { registerIngestApi } from './ingest_api.js';
import { TelemetryIngest } from './ingest.js';
import { LatestAggregates } from './latest.js';
import { startMqttSource, type MqttSource } from './mqtt_source.js';
import { TelemetryStats } from './stats.js';
import { WindowAggregator, type ClosedWindow } from './window_aggregator.js';
import { WindowMerger } from './window_merger.js';

/** Feature message topic of the instances' partial windows. */
const PARTIALS_TOPIC = 'telemetry.partials';

export interface AttachTelemetry {
  readonly node: Node;
  readonly api: ServerApi;
  readonly logger: Logger;
}

export interface RunningTelemetry {
  readonly stats: TelemetryStats;
  readonly latest: LatestAggregates;
  readonly dashboards: DashboardStreams;
  readonly ingest: TelemetryIngest;
  /** The MQTT side: the external broker's subscription or the embedded broker. */
  readonly mqtt: MqttSource;
  /** Open series in this instance's windows. */
  readonly openSeries: () => number;
  /** Stops ingest and the window clock; windows still open are dropped. */
  close(): Promise<void>;
}

/** A published window as it travels on the telemetry channel. */
interface WindowPublication {
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly metrics: readonly WindowAggregate[];
}

/** Bytes kept free in a publication for its envelope. */
const ENVELOPE_BYTES = 128;

export async function attachTelemetry(deps: AttachTelemetry): Promise<RunningTelemetry> {
  const { node, api } = deps;
  const config = node.config.telemetry;
  const logger = deps.logger.child({ component: 'telemetry' });
  const channel = node.channels.resolve(config.channel);
  const stats = new TelemetryStats();
  const windows = new WindowAggregator(config.window, config.allowed_lateness, config.max_series, Date.now());
  const ingest = new TelemetryIngest(
    { sensorTypes: new Set(config.sensor_types), maxFutureSkewMs: config.max_future_skew, valueLimit: config.value_limit },
    windows,
    config.device_rate_limit,
    stats,
  );
  const latest = new LatestAggregates(config.latest_ttl);
  const dashboards = new DashboardStreams(stats);

  // Every instance follows the channel: its dashboards and latest values see every merged window.
  const follower = new WindowFollower(latest, dashboards, logger);
  await node.attach(channel.name, follower);
  await primeLatest(node, channel, follower, logger);

  const merger = new WindowMerger({
    nodeId: node.id,
    liveNodes: () => node.nodes().map((n) => n.id),
    send: (data) => node.control({ type: 'feature', topic: PARTIALS_TOPIC, data }),
    publish: (window) => publishWindow(node, channel, window, stats),
    windowMs: config.window,
    mergeWaitMs: config.merge_wait,
    stats,
    logger,
  });
  node.onFeatureMessage(PARTIALS_TOPIC, (data) => merger.receive(data));

  let clock: NodeJS.Timeout | undefined;
  let closed = false;
  const tick = (): void => {
    if (closed) return;
    for (const window of windows.closeDue(Date.now())) {
      stats.windowsClosed++;
      merger.report(window).catch((err: unknown) => logger.warn({ err, windowStart: window.windowStart }, 'telemetry window could not be sent to the merging instance'));
    }
    clock = setTimeout(tick, Math.max(1, windows.nextCloseAt - Date.now()));
  };
  tick();

  registerIngestApi(api, ingest, config.max_batch);
  let mqtt: MqttSource;
  try {
    mqtt = await startMqttSource({ config: config.mqtt, host: node.config.host, nodeId: node.id, ingest, logger });
  } catch (err) {
    closed = true;
    clearTimeout(clock);
    merger.stop();
    node.detach(channel.name, follower);
    throw err;
  }
  logger.info(`telemetry: ${mqtt.description}; ${config.window} ms windows published on ${channel.name}`);

  return {
    stats,
    latest,
    dashboards,
    ingest,
    mqtt,
    openSeries: () => windows.seriesCount,
    async close(): Promise<void> {
      closed = true;
      clearTimeout(clock);
      merger.stop();
      node.detach(channel.name, follower);
      await mqtt.close();
    },
  };
}

/**
 * Publishes a merged window on the channel, in as many publications as the publication size
 * limit asks. Each part carries an idempotency key: should two instances both take a window
 * for theirs (while instances join), the bus keeps one publication per part.
 */
async function publishWindow(node: Node, channel: ResolvedChannel, window: ClosedWindow, stats: TelemetryStats): Promise<void> {
  const head = `{"windowStart":${window.windowStart},"windowEnd":${window.windowEnd},"metrics":[`;
  const limit = node.config.client.max_publication_bytes - ENVELOPE_BYTES;
  let part = 0;
  let batch: string[] = [];
  let bytes = head.length;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const data = `${head}${batch.join(',')}]}` as JsonText;
    const count = batch.length;
    batch = [];
    bytes = head.length;
    await node.publish(channel, data, { idempotencyKey: `telemetry:${window.windowStart}:${part++}` });
    stats.aggregatesPublished += count;
  };
  for (const series of window.series) {
    const text = encodeAggregate(series, window.windowStart, window.windowEnd);
    if (bytes + text.length + 1 > limit) await flush();
    batch.push(text);
    bytes += text.length + 1;
  }
  await flush();
  stats.windowsPublished++;
}

/**
 * Fills the latest values from the channel's history, so that an instance started (or
 * restarted) after windows were published serves them in its snapshots too. Each entry
 * expires `latest_ttl` after its publication, as it would have live.
 */
async function primeLatest(node: Node, channel: ResolvedChannel, follower: WindowFollower, logger: Logger): Promise<void> {
  if (!keepsHistory(channel.options)) return;
  try {
    const history = await node.history(channel, { limit: channel.options.history_size, reverse: true });
    for (const publication of history.publications) follower.remember(publication.data, publication.time);
  } catch (err) {
    logger.warn({ err }, 'telemetry history unavailable: snapshots start with the next window');
  }
}

/** The in-process subscriber of the telemetry channel: latest values, then the dashboards. */
class WindowFollower implements ChannelSubscriber {
  constructor(
    private readonly latest: LatestAggregates,
    private readonly dashboards: DashboardStreams,
    private readonly logger: Logger,
  ) {}

  onPublication(frames: FrameCache<Publication>): void {
    this.dashboards.deliver(this.remember(frames.event.data, Date.now()));
  }

  /** Keeps a published window's aggregates as the latest, as of `at` (Unix ms); returns them for the dashboards. */
  remember(data: string, at: number): OutgoingAggregate[] {
    let window: WindowPublication;
    try {
      window = JSON.parse(data) as WindowPublication;
    } catch (err) {
      this.logger.warn({ err }, 'telemetry channel carried a publication that is not a window');
      return [];
    }
    const metrics: unknown = window.metrics;
    if (!Array.isArray(metrics)) return [];
    const outgoing: OutgoingAggregate[] = [];
    for (const aggregate of metrics as readonly WindowAggregate[]) {
      const text = JSON.stringify(aggregate);
      this.latest.set(aggregate.deviceId, aggregate.sensorType, aggregate.windowStart, text, at);
      outgoing.push({ deviceId: aggregate.deviceId, sensorType: aggregate.sensorType, text });
    }
    return outgoing;
  }

  onJoin(): void {}
  onLeave(): void {}
  /** The bus lost a window: nothing to replay, the next window brings fresh values. */
  onGap(): void {}
}

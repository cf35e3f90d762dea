import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Node } from '../core/node.js';
import type { ProxyStats } from './proxy_http.js';

/** Buckets of seed 000 for message latency, in milliseconds. */
const LATENCY_BUCKETS_MS = [1, 5, 10, 25, 50, 100, 250, 500, 1000];

export interface MetricsSources {
  readonly node: Node;
  /** Open SSE streams. */
  readonly sseStreams: () => number;
  /** Circuit breaker of the bus: 0 closed, 1 half-open, 2 open. */
  readonly circuitState?: () => number;
  /** Requests to the app backend's proxies. */
  readonly proxyStats?: ProxyStats;
  /** Features' counters (webhooks, consumers), read at scrape time. */
  readonly counters?: readonly LabelledCounter[];
}

/** A counter with one label whose values a feature keeps as plain numbers. */
export interface LabelledCounter {
  readonly name: string;
  readonly help: string;
  readonly label: string;
  readonly source: () => Iterable<[string, number]>;
}

/** A counter whose value is read from a map of plain counters at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, label: string, source: () => Iterable<[string, number]>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, count] of source()) if (count > 0) this.inc({ [label]: value }, count);
    },
  });
}

/**
 * The Prometheus registry of a node: the seed's websocket_* metrics, Relais' own, and the
 * default process metrics. Counters mirror the node's plain counters at scrape time, so the
 * delivery path never calls into prom-client.
 */
export function createMetrics(sources: MetricsSources): Registry {
  const { node } = sources;
  const stats = node.stats;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'websocket_active_connections',
    help: 'Open client connections, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ transport: 'websocket' }, stats.activeConnections.get('websocket') ?? 0);
      this.set({ transport: 'http_stream' }, stats.activeConnections.get('http_stream') ?? 0);
      // Unidirectional /sse streams and SDK connections over SSE emulation.
      this.set({ transport: 'sse' }, sources.sseStreams() + (stats.activeConnections.get('sse') ?? 0));
    },
  });

  new Counter({
    name: 'websocket_messages_total',
    help: 'Messages handled, by direction (inbound commands, outbound pushes) and type',
    labelNames: ['direction', 'type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [type, n] of stats.messagesIn) if (n > 0) this.inc({ direction: 'inbound', type }, n);
      if (stats.publicationsDelivered > 0) this.inc({ direction: 'outbound', type: 'publication' }, stats.publicationsDelivered);
      for (const [type, n] of stats.messagesOut) if (n > 0) this.inc({ direction: 'outbound', type }, n);
    },
  });

  const commandLatency = new Histogram({
    name: 'websocket_message_latency_ms',
    help: 'Time from receiving a client command to writing its reply, in milliseconds',
    buckets: LATENCY_BUCKETS_MS,
    registers: [registry],
  });
  stats.observeCommandLatency = (_method, ms) => commandLatency.observe(ms);

  mirroredCounter(registry, 'websocket_disconnections_total', 'Closed connections, by reason', 'reason', () => stats.disconnections);

  const publishLatency = new Histogram({
    name: 'relais_publish_latency_ms',
    help: 'Time for the message bus to accept a publication (offset assigned, history appended), in milliseconds',
    buckets: LATENCY_BUCKETS_MS,
    registers: [registry],
  });
  stats.observePublishLatency = (ms) => publishLatency.observe(ms);

  mirroredCounter(registry, 'relais_broker_errors_total', 'Message bus operations that failed, by operation', 'operation', () => stats.brokerErrors);
  mirroredCounter(registry, 'relais_store_errors_total', 'Durable store operations that failed, by operation', 'operation', () => stats.storeErrors);
  mirroredCounter(registry, 'relais_rate_limited_total', 'Commands and requests refused by a rate limit, by scope', 'scope', () => stats.rateLimited);
  mirroredCounter(
    registry,
    'relais_out_of_sequence_total',
    'Publications that arrived out of sequence and sent subscribers through recovery instead of being delivered, by scope (channel: the bus lost messages; subscriber: one subscription)',
    'scope',
    () => stats.outOfSequence,
  );

  new Counter({
    name: 'relais_slow_consumer_disconnects_total',
    help: 'Connections dropped because they did not read fast enough',
    registers: [registry],
    collect() {
      this.reset();
      if (stats.slowConsumerDisconnects > 0) this.inc(stats.slowConsumerDisconnects);
    },
  });

  new Gauge({
    name: 'relais_circuit_breaker_state',
    help: 'Circuit breaker of message bus publishes: 0 closed, 1 half-open, 2 open',
    registers: [registry],
    collect() {
      this.set(sources.circuitState?.() ?? 0);
    },
  });

  new Counter({
    name: 'relais_sse_events_total',
    help: 'Publication events written to SSE streams',
    registers: [registry],
    collect() {
      this.reset();
      if (stats.sseEvents > 0) this.inc(stats.sseEvents);
    },
  });

  const sseLatency = new Histogram({
    name: 'relais_sse_latency_ms',
    help: 'Time from publication to its SSE event being written, in milliseconds',
    buckets: LATENCY_BUCKETS_MS,
    registers: [registry],
  });
  stats.observeSseLatency = (ms) => sseLatency.observe(ms);

  new Counter({
    name: 'relais_snapshot_cache_hits_total',
    help: 'Latest-value reads (server API latest) answered from this node\'s memory',
    registers: [registry],
    collect() {
      this.reset();
      if (stats.snapshotHits > 0) this.inc(stats.snapshotHits);
    },
  });

  new Counter({
    name: 'relais_snapshot_cache_misses_total',
    help: 'Latest-value reads (server API latest) that read the message bus or store',
    registers: [registry],
    collect() {
      this.reset();
      if (stats.snapshotMisses > 0) this.inc(stats.snapshotMisses);
    },
  });

  new Gauge({
    name: 'relais_snapshot_cache_hit_ratio',
    help: 'Share of latest-value reads answered from memory since start (seed 001 REDIS_CACHE_HIT_RATIO), 0 to 1',
    registers: [registry],
    collect() {
      const total = stats.snapshotHits + stats.snapshotMisses;
      this.set(total === 0 ? 0 : stats.snapshotHits / total);
    },
  });

  new Gauge({
    name: 'relais_channels',
    help: 'Channels with subscribers on this node',
    registers: [registry],
    collect() {
      this.set(node.hub.channelCount);
    },
  });

  new Gauge({
    name: 'relais_subscriptions',
    help: 'Subscriptions on this node',
    registers: [registry],
    collect() {
      this.set(node.hub.subscriptionCount);
    },
  });

  for (const counter of sources.counters ?? []) mirroredCounter(registry, counter.name, counter.help, counter.label, counter.source);
  if (sources.proxyStats) registerProxyMetrics(registry, sources.proxyStats);
  return registry;
}

/** Requests, failures and latency of each proxy to the app backend. */
function registerProxyMetrics(registry: Registry, proxyStats: ProxyStats): void {
  new Counter({
    name: 'relais_proxy_requests_total',
    help: 'Requests to the app backend, by proxy (connect, refresh, subscribe, sub_refresh, publish, rpc, send)',
    labelNames: ['proxy'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [proxy, n] of proxyStats.requests) if (n > 0) this.inc({ proxy }, n);
    },
  });
  new Counter({
    name: 'relais_proxy_errors_total',
    help: 'Proxy requests that did not allow the event, by proxy and reason (timeout, unreachable, http_status, bad_answer; error and disconnect are the backend refusing)',
    labelNames: ['proxy', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, n] of proxyStats.failures) {
        const [proxy = '', reason = ''] = key.split(' ');
        if (n > 0) this.inc({ proxy, reason }, n);
      }
    },
  });
  const latency = new Histogram({
    name: 'relais_proxy_latency_ms',
    help: 'Time of a proxy request to the app backend, retries included, in milliseconds',
    labelNames: ['proxy'],
    buckets: LATENCY_BUCKETS_MS,
    registers: [registry],
  });
  proxyStats.observeLatency = (proxy, ms) => latency.observe({ proxy }, ms);
}

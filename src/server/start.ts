import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/load.js';
import { Disconnects } from '../core/errors.js';
import { Node } from '../core/node.js';
import { RpcRouter } from '../core/rpc_router.js';
import { attachAccessControl } from '../features/access/access_control.js';
import type { RunningChat } from '../features/chat/chat.js';
import { startConsumers } from '../features/consumers/consumers.js';
import { attachLifecycleWebhooks, type RunningLifecycleWebhooks } from '../features/webhooks/lifecycle_webhooks.js';
import { WebhookSender } from '../features/webhooks/webhook_sender.js';
import { attachJobs, JOB_STREAM_ROUTE } from '../features/jobs/jobs.js';
import type { RunningTelemetry } from '../features/telemetry/telemetry.js';
import { EmulationEndpoint } from '../transports/emulation/handler_emulation.js';
import { registerRoutes, serveSse } from '../transports/http/routes.js';
import { registerEmulationRoutes } from '../transports/http/routes_emulation.js';
import { registerOpsRoutes } from '../transports/http/routes_ops.js';
import { SseEndpoint } from '../transports/sse/handler_sse.js';
import { WebSocketEndpoint } from '../transports/websocket/handler_websocket.js';
import { VERSION } from '../version.js';
import { ServerApi } from './api.js';
import { JwtVerifier } from './auth_jwt.js';
import { createBus, type Bus } from './bus.js';
import { needsStore, openStore } from './store.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { HttpProxy, ProxyStats, createClientProxies } from './proxy.js';
import { ProxyTransport } from './proxy_http.js';

/**
 * The one place that decides which feature modules load: only those configured. The telemetry
 * feature pulls an MQTT broker and client; an embedded node on defaults must not pay for them.
 */
async function loadFeatures(config: LoadedConfig['config'], withStore: boolean) {
  const [chat, telemetry] = await Promise.all([
    withStore ? import('../features/chat/chat.js') : undefined,
    config.telemetry.enabled
      ? Promise.all([
          import('../features/telemetry/telemetry.js'),
          import('../features/telemetry/metrics.js'),
          import('../features/telemetry/stream_route.js'),
        ]).then(([feature, metrics, route]) => ({ ...feature, ...metrics, ...route }))
      : undefined,
  ]);
  return { chat, telemetry };
}

export interface RunningServer {
  readonly node: Node;
  readonly port: number;
  readonly host: string;
  readonly logger: Logger;
  /** The telemetry feature when enabled (its embedded MQTT broker's port, its counters). */
  readonly telemetry?: RunningTelemetry;
  /** Graceful stop: no new connections, clients told to reconnect elsewhere, writes flushed, bus closed. */
  close(): Promise<void>;
}

/** The composition root: builds every part of a Relais node from its configuration and starts it. */
export interface StartOptions {
  /** The bus to use instead of the configured one (a worker's: the primary's, through IPC). */
  readonly bus?: Bus;
}

export async function startServer(loaded: LoadedConfig, logger: Logger = createLogger(loaded.config.log_level), options: StartOptions = {}): Promise<RunningServer> {
  const config = loaded.config;
  for (const warning of loaded.warnings) logger.warn(warning);

  const tokens = JwtVerifier.create(config.token);
  const proxyStats = new ProxyStats();
  const proxyTransport = new ProxyTransport({
    timeoutMs: config.proxy.timeout,
    retries: config.proxy.retries,
    staticHeaders: config.proxy.static_headers,
    includeMeta: config.proxy.include_connection_meta,
    binaryEncoding: config.proxy.binary_encoding,
    httpHeaders: config.proxy.http_headers.map((h) => h.toLowerCase()),
    stats: proxyStats,
  });
  const namedProxies = config.proxies.map((p) => {
    const httpHeaders = p.http_headers.map((h) => h.toLowerCase());
    const transport = new ProxyTransport({
      timeoutMs: p.timeout,
      retries: p.retries,
      staticHeaders: p.static_http_headers,
      includeMeta: p.include_connection_meta,
      binaryEncoding: p.binary_encoding,
      httpHeaders,
      stats: proxyStats,
    });
    return { name: p.name, endpoint: p.endpoint, httpHeaders, transport };
  });
  const proxies = createClientProxies(config.proxy, proxyTransport, namedProxies);
  const proxy =
    config.proxy.rpc_url || config.proxy.send_url
      ? new HttpProxy({
          ...(config.proxy.rpc_url ? { rpcUrl: config.proxy.rpc_url } : {}),
          ...(config.proxy.send_url ? { sendUrl: config.proxy.send_url } : {}),
          transport: proxyTransport,
        })
      : undefined;
  // Client rpc: features' methods by prefix (chat.*), rpc namespaces to their backends (billing:*), the rest to proxy.rpc_url.
  const rpc = new RpcRouter(proxy);
  for (const [namespace, rpcUrl] of Object.entries(config.proxy.rpc_namespaces)) {
    rpc.route(`${namespace}:`, new HttpProxy({ rpcUrl, transport: proxyTransport }));
  }
  const durable = needsStore(config) ? await openStore(config, logger) : undefined;
  const features = await loadFeatures(config, durable !== undefined);
  // The chat rides on the store: its members rule is checked against it.
  const chatAccess = durable && features.chat ? features.chat.createChatAccess(config, durable.store) : undefined;
  if (!durable) {
    const membersOnly = Object.entries(config.namespaces).filter(([, ns]) => ns.allow_subscribe === 'members' || ns.allow_publish === 'members');
    if (membersOnly.length > 0) {
      logger.warn(
        `the chat needs the durable store (DATABASE_URL when instances share a bus): namespaces ${membersOnly.map(([name]) => name).join(', ')} refuse every client, and statuses are not published`,
      );
    }
  }
  const busLogger = logger.child({ component: 'bus' });
  const nodeId = randomUUID();
  const bus = options.bus ?? (await createBus(config, nodeId, busLogger));
  const node = new Node({
    id: nodeId,
    config,
    broker: bus.broker,
    presence: bus.presence,
    tokens,
    logger,
    version: VERSION,
    rpc,
    ...(proxies ? { proxies } : {}),
    ...(bus.userLimiter ? { userLimiter: bus.userLimiter } : {}),
    ...(durable ? { store: durable.store } : {}),
    ...(chatAccess ? { authorizers: { members: chatAccess.authorizer } } : {}),
  });
  try {
    await node.start();
  } catch (err) {
    await durable?.close();
    throw new Error(`Relais cannot start: ${bus.label} is unreachable (${err instanceof Error ? err.message : String(err)}); set bus_start: degraded to start anyway and retry`, {
      cause: err,
    });
  }
  logger.info(bus.description);

  const websocket = new WebSocketEndpoint({ node, logger });
  const sse = new SseEndpoint(node, logger);
  const emulation = new EmulationEndpoint(node, logger);
  const api = new ServerApi(node);
  const access = attachAccessControl({ node, api, logger, ...(durable ? { store: durable.store } : {}) });
  // Revoked tokens are refused from the first connection on.
  await access.loaded;
  const webhooks = startWebhooks(config, node, bus, logger);
  let chat: RunningChat | undefined;
  let telemetry: RunningTelemetry | undefined;
  try {
    chat = durable && chatAccess && features.chat ? features.chat.attachChat({ node, store: durable.store, access: chatAccess, api, rpc, logger }) : undefined;
    telemetry = features.telemetry ? await features.telemetry.attachTelemetry({ node, api, logger }) : undefined;
  } catch (err) {
    chat?.stop();
    await node.shutdown(Disconnects.shutdown);
    await durable?.close();
    throw err;
  }
  // The app's queues feed the server API: started once the node and its API methods are.
  const consumers = await startConsumers(config, api, logger);
  const app = Fastify({
    loggerInstance: logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.client.max_publication_bytes * 2 + 64 * 1024,
    // Slow or hostile HTTP clients must not hold sockets: headers and requests have deadlines,
    // checked every second rather than Node's default 30 s.
    serverFactory: (handler) =>
      createServer(
        {
          headersTimeout: config.http.headers_timeout,
          requestTimeout: config.http.request_timeout,
          keepAliveTimeout: config.http.keep_alive_timeout,
          maxHeaderSize: config.http.max_header_bytes,
          connectionsCheckingInterval: 1000,
        },
        handler,
      ),
  });
  const metrics = createMetrics({
    node,
    counters: [
      ...(webhooks
        ? [
            {
              name: 'relais_webhook_events_total',
              help: 'Lifecycle webhook events, by outcome: sent (acknowledged), failed (dropped after retries or refused), dropped (queue full)',
              label: 'outcome',
              source: () => Object.entries(webhooks.sender.counts),
            },
          ]
        : []),
      ...(consumers
        ? (['published', 'invalid', 'retried'] as const).map((outcome) => ({
            name: `relais_consumer_${outcome}_total`,
            help: `Commands of the app's queues (outbox, streams) ${outcome === 'published' ? 'run' : outcome === 'invalid' ? 'refused for good and removed' : 'failed for a while and retried'}, by consumer`,
            label: 'consumer',
            source: () => [...consumers.counts()].map(([name, counts]): [string, number] => [name, counts[outcome]]),
          }))
        : []),
    ],
    sseStreams: () => sse.streamCount,
    proxyStats,
    circuitState: () => ({ closed: 0, 'half-open': 1, open: 2 })[node.breaker.current],
  });
  registerOpsRoutes(app, { node, metrics, ...(durable ? { store: durable.store } : {}) });
  registerRoutes(app, { node, api, sse, websocket, apiKey: config.api_key ?? '' });
  registerEmulationRoutes(app, { node, emulation });
  const jobs = attachJobs(config, sse, logger);
  if (jobs) {
    app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(JOB_STREAM_ROUTE, (request, reply) =>
      serveSse(node, sse, request, reply, [jobs.channelOf(request.params.id)], 'data'),
    );
  }
  if (telemetry && features.telemetry) {
    features.telemetry.registerTelemetryMetrics(metrics, telemetry);
    features.telemetry.registerTelemetryStreamRoute(app, { node, sse, latest: telemetry.latest, dashboards: telemetry.dashboards, logger });
  }
  // A large accept queue: a thousand clients reconnecting at once must not see their SYNs dropped.
  await app.listen({ host: config.host, port: config.port, backlog: 4096 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  logger.info(
    {
      // Which process is which node: webhooks and cluster events name the node.
      node: nodeId,
      pid: process.pid,
      websocket: `ws://${shown}:${port}/connection/websocket`,
      http_stream: `http://${shown}:${port}/connection/http_stream`,
      sse_emulation: `http://${shown}:${port}/connection/sse`,
      sse: `http://${shown}:${port}/sse?channel=<channel>`,
      api: `http://${shown}:${port}/api/<method>`,
      health: `http://${shown}:${port}/healthz`,
      ...(telemetry ? { telemetry: `http://${shown}:${port}/telemetry/stream?devices=<a,b>` } : {}),
      ...(telemetry?.mqtt.port !== undefined ? { mqtt: `mqtt://${shown}:${telemetry.mqtt.port}` } : {}),
    },
    `Relais ${VERSION} listening on ${config.host}:${port}`,
  );

  let closing: Promise<void> | undefined;
  return {
    node,
    port,
    host: config.host,
    logger,
    ...(telemetry ? { telemetry } : {}),
    close(): Promise<void> {
      closing ??= (async () => {
        app.server.close();
        sse.closeAll();
        // Statuses are left to expire (or to the other nodes): the shutdown's disconnects are not the users leaving.
        await consumers?.stop();
        chat?.stop();
        access.stop();
        await telemetry?.close();
        await node.shutdown(Disconnects.shutdown);
        await webhooks?.running.stop(2000);
        websocket.close();
        // Let the close frames and flushed writes leave before the process exits.
        await new Promise((resolve) => setTimeout(resolve, 50));
        await app.close();
        await durable?.close();
      })();
      return closing;
    },
  };
}

/** The lifecycle webhooks when `webhooks.url` is set. */
function startWebhooks(
  config: LoadedConfig['config'],
  node: Node,
  bus: Bus,
  logger: Logger,
): { sender: WebhookSender; running: RunningLifecycleWebhooks } | undefined {
  const w = config.webhooks;
  if (!w.url || !w.secret) return undefined;
  const sender = new WebhookSender({
    url: w.url,
    secret: w.secret,
    batchSize: w.batch_size,
    batchWaitMs: w.batch_wait,
    queueSize: w.queue_size,
    timeoutMs: w.timeout,
    maxAttempts: w.max_attempts,
    backoffMinMs: w.backoff_min,
    backoffMaxMs: w.backoff_max,
    logger: logger.child({ component: 'webhooks' }),
  });
  const livenessMs = Math.max(3000, config.presence_ttl);
  const running = attachLifecycleWebhooks({
    node,
    sender,
    occupancy: bus.createOccupancy(livenessMs),
    events: w.events,
    sweepMs: Math.floor(livenessMs / 3),
    logger,
  });
  return { sender, running };
}

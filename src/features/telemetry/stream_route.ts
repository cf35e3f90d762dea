/**
 * `GET /telemetry/stream?devices=a,b&sensors=temperature`: a dashboard's SSE stream. It
 * starts with a `SNAPSHOT` event (the latest aggregates its filter lets through, possibly
 * none), then gets a `METRICS_UPDATE` event per published window part that holds any of its
 * devices and sensors; the SSE endpoint adds its heartbeat comments, token expiry and limits.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { RelaisError } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import { bearerToken } from '../../transports/http/routes.js';
import { isOriginAllowed } from '../../transports/origin.js';
import type { SseEndpoint } from '../../transports/sse/handler_sse.js';
import type { DashboardStream, DashboardStreams } from './dashboard_streams.js';
import type { AggregateFilter, LatestAggregates } from './latest.js';

export const TELEMETRY_STREAM_PATH = '/telemetry/stream';

/** Devices one stream may name. */
const MAX_DEVICES = 10_000;

/** A comma-separated (or repeated) query parameter; absent or empty: no filter. */
function names(value: unknown): Set<string> | null {
  const values = (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string');
  const out = new Set(values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== ''));
  return out.size === 0 ? null : out;
}

/** The filter of a request; BAD_REQUEST or LIMIT_EXCEEDED when it asks for what cannot be. */
export function parseFilter(query: Record<string, unknown>, sensorTypes: readonly string[]): AggregateFilter {
  const devices = names(query['devices']);
  const sensors = names(query['sensors']);
  if (devices && devices.size > MAX_DEVICES) throw new RelaisError('LIMIT_EXCEEDED', `more than ${MAX_DEVICES} devices in one stream`);
  if (sensors) {
    const unknown = [...sensors].filter((s) => !sensorTypes.includes(s));
    if (unknown.length > 0) throw new RelaisError('BAD_REQUEST', `unknown sensor types: ${unknown.join(', ')} (known: ${sensorTypes.join(', ')})`);
  }
  return { devices, sensors };
}

export interface TelemetryStreamRoute {
  readonly node: Node;
  readonly sse: SseEndpoint;
  readonly latest: LatestAggregates;
  readonly dashboards: DashboardStreams;
  readonly logger: Logger;
}

export function registerTelemetryStreamRoute(app: FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>, deps: TelemetryStreamRoute): void {
  const { node, sse, latest, dashboards } = deps;
  app.get<{ Querystring: Record<string, unknown> }>(TELEMETRY_STREAM_PATH, async (request, reply) => {
    const origin = request.headers.origin;
    if (!isOriginAllowed(origin, node.config.allowed_origins)) throw new RelaisError('FORBIDDEN', 'origin not allowed');
    const filter = parseFilter(request.query, node.config.telemetry.sensor_types);
    const token = bearerToken(request) ?? (typeof request.query['token'] === 'string' ? request.query['token'] : undefined);
    const identity = await sse.authenticate(token);
    reply.hijack();
    if (origin !== undefined) {
      reply.raw.setHeader('Access-Control-Allow-Origin', origin);
      reply.raw.setHeader('Vary', 'Origin');
    }
    const stream = sse.openStream(reply.raw, identity);
    const dashboard: DashboardStream = { sink: { event: (name, data) => stream.rawEvent(name, data) }, filter };
    // Snapshot and registration in one go: no window can fall between them.
    stream.rawEvent('SNAPSHOT', `[${latest.snapshot(filter, Date.now()).join(',')}]`);
    if (stream.isClosed) return;
    dashboards.add(dashboard);
    stream.onClose(() => dashboards.remove(dashboard));
  });
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RelaisError, toRelaisError } from '../../core/errors.js';
import { compileTagFilter, type TagFilter } from '../../core/tag_filter.js';
import { decodeFilterNode } from '../../protocol/json_codec.js';
import type { FilterNode } from '../../protocol/types.js';
import type { Node } from '../../core/node.js';
import { KeyedBuckets } from '../../core/rate_limit.js';
import { NodeStats } from '../../core/stats.js';
import { errorBody, toWireJson, type ServerApi } from '../../server/api.js';
import { isOriginAllowed } from '../origin.js';
import type { SseEndpoint } from '../sse/handler_sse.js';
import type { SseDataFormat } from '../sse/channel_events.js';
import type { WebSocketEndpoint } from '../websocket/handler_websocket.js';

export interface HttpRoutesOptions {
  readonly node: Node;
  readonly api: ServerApi;
  readonly sse: SseEndpoint;
  readonly websocket: WebSocketEndpoint;
  readonly apiKey: string;
}

const API_KEY_BUCKET = 'api-key';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Reads the API key from `X-API-Key` or `Authorization: apikey <key>`. */
function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string') return header;
  const auth = request.headers.authorization;
  if (auth?.toLowerCase().startsWith('apikey ')) return auth.slice(7).trim();
  return undefined;
}

function sendError(reply: FastifyReply, err: RelaisError): FastifyReply {
  return reply.code(err.httpStatus).type('application/json').send(JSON.stringify({ error: errorBody(err) }));
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const auth = request.headers.authorization;
  if (auth?.toLowerCase().startsWith('bearer ')) return auth.slice(7).trim();
  return undefined;
}

/** The `tf` parameter of /sse: a filter on publication tags, as the JSON of a FilterNode (docs/api.md). */
function sseTagFilter(text: string): TagFilter {
  let node: FilterNode;
  try {
    node = decodeFilterNode(JSON.parse(text));
  } catch (err) {
    throw new RelaisError('BAD_REQUEST', `invalid tags filter (tf): ${err instanceof Error ? err.message : 'not JSON'}`);
  }
  return compileTagFilter(node);
}

/** A repeated query parameter. Each value is one name: commas are channel characters, not separators. */
function list(value: unknown): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  return values.filter((v): v is string => typeof v === 'string' && v !== '');
}

/**
 * Answers an SSE request for `channels`: token (Bearer or `?token=`), Last-Event-ID (header or
 * `?last_event_id=`), origin check, then the stream. `/sse` and features' stream routes use it.
 */
export async function serveSse(
  node: Node,
  sse: SseEndpoint,
  request: FastifyRequest<{ Querystring: Record<string, unknown> }>,
  reply: FastifyReply,
  channels: readonly string[],
  format: SseDataFormat = 'envelope',
): Promise<void> {
  const token = bearerToken(request) ?? (typeof request.query['token'] === 'string' ? request.query['token'] : undefined);
  const header = request.headers['last-event-id'];
  const lastEventId =
    typeof header === 'string' ? header : typeof request.query['last_event_id'] === 'string' ? request.query['last_event_id'] : undefined;
  // Browsers send Origin on cross-site EventSource requests: the same rule as WebSocket.
  const origin = request.headers.origin;
  if (!isOriginAllowed(origin, node.config.allowed_origins)) throw new RelaisError('FORBIDDEN', 'origin not allowed');
  const tf = request.query['tf'];
  const sseRequest = { channels, token, lastEventId, format, headers: request.headers, ...(typeof tf === 'string' ? { filter: sseTagFilter(tf) } : {}) };
  const grant = await sse.authorize(sseRequest);
  reply.hijack();
  if (origin !== undefined) {
    // CORS: without it the browser does not hand the stream to the page.
    reply.raw.setHeader('Access-Control-Allow-Origin', origin);
    reply.raw.setHeader('Vary', 'Origin');
  }
  await sse.open(reply.raw, sseRequest, grant);
}

/** HTTP routes: health, server API, SSE, and the WebSocket upgrade. */
export function registerRoutes(app: FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>, options: HttpRoutesOptions): void {
  const { node, api, sse, websocket } = options;
  const expectedKey = digest(options.apiKey);
  // One key today (RELAIS_API_KEY): its bucket; per_second 0 turns the limit off.
  const apiBuckets = new KeyedBuckets(node.config.rate_limit.api);

  // Any body is JSON: server SDKs and curl do not always say so.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, {});
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new RelaisError('BAD_REQUEST', 'request body is not valid JSON'), undefined);
    }
  });

  app.setErrorHandler((error: FastifyError | RelaisError, _request, reply) => {
    if (error instanceof RelaisError) return sendError(reply, error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, new RelaisError('LIMIT_EXCEEDED', 'request body too large'));
    if (error.statusCode !== undefined && error.statusCode < 500) return sendError(reply, new RelaisError('BAD_REQUEST', error.message));
    node.logger.error({ err: error }, 'http request failed');
    return sendError(reply, toRelaisError(error));
  });

  app.setNotFoundHandler((request, reply) => sendError(reply, new RelaisError('METHOD_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`)));

  app.get('/healthz', (_request, reply) => reply.type('application/json').send('{"status":"ok"}'));

  const callApi = async (request: FastifyRequest, reply: FastifyReply, method: string, params: unknown): Promise<FastifyReply> => {
    const key = presentedKey(request);
    if (key === undefined || !timingSafeEqual(digest(key), expectedKey)) {
      return sendError(reply, new RelaisError('UNAUTHORIZED', 'missing or wrong API key (header X-API-Key)'));
    }
    if (!apiBuckets.take(API_KEY_BUCKET)) {
      NodeStats.inc(node.stats.rateLimited, 'api');
      return sendError(reply, new RelaisError('RATE_LIMITED', 'too many API requests for this key'));
    }
    try {
      const result = await api.call(method, params);
      return reply.type('application/json').send(`{"result":${toWireJson(result)}}`);
    } catch (err) {
      const error = toRelaisError(err);
      if (error.code === 'INTERNAL') node.logger.error({ err, method }, 'api call failed');
      return sendError(reply, error);
    }
  };

  app.post<{ Params: { method: string } }>('/api/:method', (request, reply) => callApi(request, reply, request.params.method, request.body));

  // A channel's current value for a plain GET (curl, a cache in front): the `latest` method.
  app.get<{ Querystring: Record<string, unknown> }>('/api/latest', (request, reply) => {
    const channel = request.query['channel'];
    return callApi(request, reply, 'latest', typeof channel === 'string' ? { channel } : {});
  });

  app.get<{ Querystring: Record<string, unknown> }>('/sse', (request, reply) => serveSse(node, sse, request, reply, list(request.query['channel'])));

  app.server.on('upgrade', (request, socket, head: Buffer) => {
    const path = (request.url ?? '').split('?')[0];
    if (path === '/connection/websocket') {
      websocket.handleUpgrade(request, socket, head);
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });
}

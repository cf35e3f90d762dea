import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RelaisError } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import { KeyedBuckets } from '../../core/rate_limit.js';
import { NodeStats } from '../../core/stats.js';
import type { EmulatedKind, EmulationEndpoint, EmulationRequest } from '../emulation/handler_emulation.js';
import { CONNECT_PARAM } from '../emulation/transport_sse.js';
import { isOriginAllowed } from '../origin.js';

export interface EmulationRoutesOptions {
  readonly node: Node;
  readonly emulation: EmulationEndpoint;
}

type App = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>;

/** Room for the envelope of an emulation request: ids, and the escaping of `data` in a JSON string. */
function envelopeLimit(maxFrameBytes: number): number {
  return maxFrameBytes * 2 + 1024;
}

/**
 * The routes of bidirectional emulation: `/connection/http_stream` (POST), `/connection/sse`
 * (GET, or POST), `/emulation` (POST), with CORS for allowed origins, since browsers call
 * them with fetch and EventSource from the page's origin. Bodies are read raw here: the
 * connect command is protocol data, not a JSON document of the server API.
 */
export function registerEmulationRoutes(app: App, options: EmulationRoutesOptions): void {
  const { node, emulation } = options;
  const config = node.config;
  const sessionBuckets = new KeyedBuckets(config.rate_limit.emulation.session);
  const ipBuckets = new KeyedBuckets(config.rate_limit.emulation.ip);

  /**
   * Bounds what one session, and one address, may push through `/emulation` (and over the bus):
   * a request past either limit is refused whole, before any of its commands runs.
   */
  function limit(request: FastifyRequest, session: string): void {
    const what = !ipBuckets.take(request.ip) ? 'this address' : !sessionBuckets.take(session) ? 'this session' : undefined;
    if (what === undefined) return;
    NodeStats.inc(node.stats.rateLimited, 'emulation');
    throw new RelaisError('RATE_LIMITED', `too many emulation requests from ${what} (rate_limit.emulation)`);
  }

  /** Checks the origin and writes the CORS headers of an allowed one; throws FORBIDDEN otherwise. */
  function admit(request: FastifyRequest, reply: FastifyReply): void {
    const origin = request.headers.origin;
    if (!isOriginAllowed(origin, config.allowed_origins)) throw new RelaisError('FORBIDDEN', 'origin not allowed');
    if (origin !== undefined) {
      void reply.header('Access-Control-Allow-Origin', origin);
      void reply.header('Vary', 'Origin');
    }
  }

  /** Protobuf clients post application/octet-stream: their protocol is served over WebSocket only. */
  function refuseBinary(request: FastifyRequest): void {
    if (request.headers['content-type']?.startsWith('application/octet-stream')) {
      throw new RelaisError('UNSUPPORTED', 'the Protobuf protocol is served over WebSocket only, not over emulation');
    }
  }

  function preflight(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    admit(request, reply);
    return reply
      .code(204)
      .header('Access-Control-Allow-Methods', 'GET, POST, OPTIONS')
      .header('Access-Control-Allow-Headers', 'Content-Type')
      .header('Access-Control-Max-Age', '300')
      .send();
  }

  /** Hands the response to the stream: from here Fastify no longer writes to it. */
  function stream(kind: EmulatedKind, request: FastifyRequest, reply: FastifyReply, connectFrame: string): void {
    if (node.isClosing) {
      // As the WebSocket upgrade: the client's transport fails and it reconnects elsewhere.
      void reply.code(503).header('Connection', 'close').send();
      return;
    }
    refuseBinary(request);
    if (connectFrame.trim() === '') throw new RelaisError('BAD_REQUEST', 'the stream request carries no connect command');
    admit(request, reply);
    reply.hijack();
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value);
    emulation.open(kind, reply.raw, connectFrame);
  }

  void app.register((scope, _opts, done) => {
    // Raw bodies (the JSON protocol now; Protobuf clients post application/octet-stream).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, parsed) => parsed(null, body));

    const streamLimit = { bodyLimit: config.client.max_frame_bytes };
    if (config.emulation.http_stream) {
      scope.options('/connection/http_stream', preflight);
      scope.post('/connection/http_stream', streamLimit, (request, reply) => {
        stream('http_stream', request, reply, bodyText(request.body));
      });
    }
    if (config.emulation.sse) {
      scope.options('/connection/sse', preflight);
      scope.get<{ Querystring: Record<string, unknown> }>('/connection/sse', (request, reply) => {
        const connect = request.query[CONNECT_PARAM];
        stream('sse', request, reply, typeof connect === 'string' ? connect : '');
      });
      scope.post('/connection/sse', streamLimit, (request, reply) => {
        stream('sse', request, reply, bodyText(request.body));
      });
    }
    if (!config.emulation.http_stream && !config.emulation.sse) {
      done();
      return;
    }

    scope.options('/emulation', preflight);
    scope.post('/emulation', { bodyLimit: envelopeLimit(config.client.max_frame_bytes) }, async (request, reply) => {
      admit(request, reply);
      refuseBinary(request);
      const emulated = parseEmulationRequest(bodyText(request.body));
      if (Buffer.byteLength(emulated.data) > config.client.max_frame_bytes) {
        throw new RelaisError('LIMIT_EXCEEDED', 'emulation data larger than client.max_frame_bytes');
      }
      limit(request, emulated.session);
      await emulation.receive(emulated);
      return reply.code(204).send();
    });
    done();
  });
}

function bodyText(body: unknown): string {
  return Buffer.isBuffer(body) ? body.toString('utf8') : '';
}

/** `{"session": "...", "node": "...", "data": "<commands>"}`, as centrifuge-js sends it; BAD_REQUEST otherwise. */
export function parseEmulationRequest(text: string): EmulationRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RelaisError('BAD_REQUEST', 'emulation request is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) throw new RelaisError('BAD_REQUEST', 'emulation request must be a JSON object');
  const { session, node, data } = parsed as Record<string, unknown>;
  if (typeof session !== 'string' || session === '' || typeof node !== 'string' || node === '' || typeof data !== 'string') {
    throw new RelaisError('BAD_REQUEST', 'emulation request needs string fields session, node and data');
  }
  return { session, node, data };
}

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Node } from '../../core/node.js';
import { isOriginAllowed } from '../origin.js';

export interface OpsRoutesOptions {
  readonly node: Node;
  readonly metrics: Registry;
}

/** How long a readiness probe waits on the bus before calling it unreachable. */
const READY_TIMEOUT_MS = 2000;

/**
 * Operations routes: Prometheus `/metrics`, readiness `/readyz`, and CORS for the server API
 * (preflights answered for configured origins only).
 */
export function registerOpsRoutes(app: FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>, options: OpsRoutesOptions): void {
  const { node, metrics } = options;
  const origins = node.config.allowed_origins;

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.contentType).send(await metrics.metrics());
  });

  app.get('/readyz', async (_request, reply) => {
    const reasons: string[] = [];
    if (node.isClosing) reasons.push('shutting down');
    if (node.breaker.current === 'open') reasons.push('message bus circuit open');
    const ping = node.broker.ping?.bind(node.broker);
    if (ping && reasons.length === 0) {
      try {
        await Promise.race([
          ping(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), READY_TIMEOUT_MS).unref()),
        ]);
      } catch (err) {
        reasons.push(`message bus unreachable (${err instanceof Error ? err.message : 'error'})`);
      }
    }
    if (reasons.length > 0) return reply.code(503).send({ status: 'unavailable', reasons });
    return reply.send({ status: 'ready', bus: node.broker.kind });
  });

  // CORS for browsers calling the server API: only from configured origins, never "any".
  app.addHook('onRequest', (request, reply, done) => {
    if (!request.url.startsWith('/api/')) return done();
    const origin = request.headers.origin;
    if (origin === undefined || origins.length === 0 || !isOriginAllowed(origin, origins)) return done();
    void reply.header('Access-Control-Allow-Origin', origin);
    void reply.header('Vary', 'Origin');
    if (request.method !== 'OPTIONS') return done();
    void reply
      .code(204)
      .header('Access-Control-Allow-Methods', 'POST, OPTIONS')
      .header('Access-Control-Allow-Headers', 'Content-Type, X-API-Key, Authorization')
      .header('Access-Control-Max-Age', '600')
      .send();
  });

  app.options('/api/:method', (_request, reply) => reply.code(403).send({ error: { code: 103, message: 'origin not allowed' } }));
}

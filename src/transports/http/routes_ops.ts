import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Node } from '../../core/node.js';
import type { Store } from '../../stores/store.js';
import { isOriginAllowed } from '../origin.js';

export interface OpsRoutesOptions {
  readonly node: Node;
  readonly metrics: Registry;
  /** The durable store, when one runs: readiness checks it too. */
  readonly store?: Pick<Store, 'ping' | 'kind'>;
}

/** How long a readiness probe waits on the bus before calling it unreachable. */
const READY_TIMEOUT_MS = 2000;

/**
 * Operations routes: Prometheus `/metrics`, readiness `/readyz`, and CORS for the server API
 * (preflights answered for configured origins only).
 */
export function registerOpsRoutes(app: FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>, options: OpsRoutesOptions): void {
  const { node, metrics, store } = options;
  const origins = node.config.allowed_origins;

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.contentType).send(await metrics.metrics());
  });

  app.get('/readyz', async (_request, reply) => {
    const reasons: string[] = [];
    if (node.isClosing) reasons.push('shutting down');
    if (node.breaker.current === 'open') reasons.push('message bus circuit open');
    const probes: [what: string, ping: () => Promise<void>][] = [];
    if (node.broker.ping) probes.push(['message bus', node.broker.ping.bind(node.broker)]);
    if (store) probes.push(['durable store', () => store.ping()]);
    if (reasons.length === 0) {
      const failures = await Promise.all(
        probes.map(async ([what, ping]) => {
          try {
            await Promise.race([ping(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), READY_TIMEOUT_MS).unref())]);
            return undefined;
          } catch (err) {
            return `${what} unreachable (${err instanceof Error ? err.message : 'error'})`;
          }
        }),
      );
      for (const failure of failures) if (failure) reasons.push(failure);
    }
    if (reasons.length > 0) return reply.code(503).send({ status: 'unavailable', reasons });
    return reply.send({ status: 'ready', bus: node.broker.kind, ...(store ? { store: store.kind } : {}) });
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

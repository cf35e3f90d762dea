/**
 * A small app backend for the proxy tests: a real HTTP server on 127.0.0.1, port 0, that
 * records every proxy request Relais sends and answers each path with the handler a test
 * set: a Centrifugo-shaped JSON answer, after an optional delay, or a broken socket.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';

export interface ProxyRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
  readonly at: number;
}

/** What the backend does with one request. */
export type ProxyBehaviour =
  | { readonly answer: unknown; readonly delayMs?: number }
  | { readonly status: number }
  /** Closes the connection without an answer (a backend crashing mid-request). */
  | { readonly drop: true };

export type ProxyHandler = (request: ProxyRequest) => ProxyBehaviour;

export class ProxyBackend {
  readonly requests: ProxyRequest[] = [];
  private readonly handlers = new Map<string, ProxyHandler>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(private readonly server: Server) {}

  static async start(): Promise<ProxyBackend> {
    const server = createServer();
    const backend = new ProxyBackend(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => backend.handle(req.url ?? '/', req.headers, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return backend;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Sets how `path` (such as `/connect`) answers from now on. */
  on(path: string, handler: ProxyHandler): void {
    this.handlers.set(path, handler);
  }

  /** The requests received on `path`, oldest first. */
  received(path: string): ProxyRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  private handle(path: string, headers: IncomingHttpHeaders, text: string, res: ServerResponse): void {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      res.writeHead(400).end();
      return;
    }
    const request: ProxyRequest = { path, headers, body, at: Date.now() };
    this.requests.push(request);
    const handler = this.handlers.get(path);
    const behaviour: ProxyBehaviour = handler ? handler(request) : { status: 404 };
    if ('drop' in behaviour) {
      res.socket?.destroy();
      return;
    }
    if ('status' in behaviour) {
      res.writeHead(behaviour.status).end();
      return;
    }
    const send = (): void => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(behaviour.answer));
    };
    if (!behaviour.delayMs) return send();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      send();
    }, behaviour.delayMs);
    this.timers.add(timer);
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A `ws` WebSocket that sends `headers` on its upgrade request, as a browser sends the app's cookies. */
export function headerWebSocket(headers: Record<string, string>): typeof WebSocket {
  return class extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  } as typeof WebSocket;
}

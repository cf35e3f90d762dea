/**
 * A TCP round-robin load balancer for multi-instance tests: each new connection goes to the
 * next live backend, bytes are piped both ways unchanged (WebSocket upgrades, SSE, HTTP all
 * pass), and when a backend's side closes the client's side closes too, as behind a real
 * L4 balancer. No stickiness: a client that reconnects lands wherever the rotation says.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

interface Backend {
  readonly port: number;
  alive: boolean;
  readonly sockets: Set<Socket>;
  /** Connections ever accepted for this backend. */
  accepted: number;
}

export class TcpBalancer {
  private readonly backends: Backend[] = [];
  private readonly clientSockets = new Set<Socket>();
  private next = 0;
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free loopback port in front of `ports`. */
  static async start(ports: readonly number[] = []): Promise<TcpBalancer> {
    const ref: { balancer?: TcpBalancer } = {};
    const server = createServer({ pauseOnConnect: true }, (socket) => ref.balancer?.accept(socket));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : 0);
      });
    });
    const balancer = new TcpBalancer(server, port);
    ref.balancer = balancer;
    for (const p of ports) balancer.add(p);
    return balancer;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/connection/websocket`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  add(port: number): void {
    const existing = this.backends.find((b) => b.port === port);
    if (existing) existing.alive = true;
    else this.backends.push({ port, alive: true, sockets: new Set(), accepted: 0 });
  }

  /** Takes a backend out of the rotation (a failed health check); its open connections stay. */
  markDead(port: number): void {
    const backend = this.backends.find((b) => b.port === port);
    if (backend) backend.alive = false;
  }

  /** Open connections piped to `port`. */
  openTo(port: number): number {
    return this.backends.find((b) => b.port === port)?.sockets.size ?? 0;
  }

  acceptedBy(port: number): number {
    return this.backends.find((b) => b.port === port)?.accepted ?? 0;
  }

  private pick(exclude: ReadonlySet<number>): Backend | undefined {
    const n = this.backends.length;
    for (let i = 0; i < n; i++) {
      const backend = this.backends[(this.next + i) % n];
      if (backend && backend.alive && !exclude.has(backend.port)) {
        this.next = (this.next + i + 1) % n;
        return backend;
      }
    }
    return undefined;
  }

  private accept(client: Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    this.clientSockets.add(client);
    client.on('error', () => client.destroy());
    client.once('close', () => this.clientSockets.delete(client));
    this.route(client, new Set());
  }

  /** Connects `client` to the next live backend; a refused connection tries the following one. */
  private route(client: Socket, tried: Set<number>): void {
    const backend = this.pick(tried);
    if (!backend || client.destroyed) {
      client.destroy();
      return;
    }
    tried.add(backend.port);
    const upstream = createConnection({ host: '127.0.0.1', port: backend.port });
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      backend.accepted++;
      backend.sockets.add(upstream);
      upstream.once('close', () => {
        backend.sockets.delete(upstream);
        client.destroy();
      });
      client.once('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => {
      if (connected) upstream.destroy();
      else this.route(client, tried);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const socket of this.clientSockets) socket.destroy();
    for (const backend of this.backends) for (const socket of backend.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

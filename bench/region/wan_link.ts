/**
 * A TCP relay that behaves like a link between two regions: every chunk waits `delayMs`
 * before it is passed on, in each direction (so a round trip costs twice that), in order.
 * `cut()` drops every connection and refuses new ones until `restore()`: a region cut off.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class WanLink {
  private readonly sockets = new Set<Socket>();
  private up = true;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free loopback port, relaying to 127.0.0.1:`targetPort` with `delayMs` each way. */
  static async open(targetPort: number, delayMs: number): Promise<WanLink> {
    const ref: { link?: WanLink } = {};
    const server = createServer((client) => ref.link?.accept(client, targetPort, delayMs));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : 0);
      });
    });
    ref.link = new WanLink(server, port);
    return ref.link;
  }

  cut(): void {
    this.up = false;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.up = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, targetPort: number, delayMs: number): void {
    if (!this.up) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    // Timers of one delay fire in the order they were set: chunks keep their order.
    const relay = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => {
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, delayMs);
      });
    };
    relay(client, upstream);
    relay(upstream, client);
  }
}

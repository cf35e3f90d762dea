import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { Client, type ClientTransport } from '../../core/client.js';
import { Disconnects, type Disconnect } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import { FlushScheduler, type Flushable } from '../flush_scheduler.js';
import { isOriginAllowed } from '../origin.js';

const NEWLINE = Buffer.from('\n');
/** A slow client's close frame waits behind everything it did not read: give up on it after this. */
const SLOW_CLOSE_GRACE_MS = 1000;

/** One WebSocket connection under the Centrifugo JSON protocol. */
class WebSocketTransport implements ClientTransport, Flushable {
  readonly name = 'websocket';
  client: Client | undefined;
  private queue: (string | Buffer)[] = [];
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly scheduler: FlushScheduler,
    private readonly maxQueueBytes: number,
  ) {}

  write(message: string | Buffer): void {
    if (this.closed) return;
    this.queue.push(message);
    if (this.queue.length === 1) this.scheduler.mark(this);
  }

  flush(): void {
    const queue = this.queue;
    if (queue.length === 0) return;
    this.queue = [];
    if (this.ws.readyState !== WebSocket.OPEN) return;
    // A client that stops reading must not make the server's memory grow: past the bound it is dropped.
    if (this.ws.bufferedAmount > this.maxQueueBytes) {
      this.client?.disconnect(Disconnects.slow);
      return;
    }
    if (queue.length === 1) {
      const only = queue[0] as string | Buffer;
      this.ws.send(only, { binary: false });
      return;
    }
    if (queue.every((m) => typeof m === 'string')) {
      this.ws.send(queue.join('\n'), { binary: false });
      return;
    }
    const parts: Buffer[] = [];
    for (const m of queue) {
      if (parts.length > 0) parts.push(NEWLINE);
      parts.push(typeof m === 'string' ? Buffer.from(m) : m);
    }
    this.ws.send(Buffer.concat(parts), { binary: false });
  }

  close(disconnect: Disconnect): void {
    if (this.closed) return;
    if (disconnect.code !== Disconnects.slow.code) this.flush();
    this.closed = true;
    this.queue = [];
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(disconnect.code, disconnect.reason);
      if (disconnect.code === Disconnects.slow.code) setTimeout(() => this.ws.terminate(), SLOW_CLOSE_GRACE_MS).unref();
    }
  }
}

export interface WebSocketEndpointOptions {
  readonly node: Node;
  readonly logger: Logger;
}

/**
 * The `/connection/websocket` endpoint: upgrades HTTP requests (origin checked) and runs a
 * Client per connection.
 */
export class WebSocketEndpoint {
  private readonly wss: WebSocketServer;
  private readonly scheduler = new FlushScheduler();
  private readonly node: Node;
  private readonly logger: Logger;

  constructor(options: WebSocketEndpointOptions) {
    this.node = options.node;
    this.logger = options.logger;
    const config = options.node.config;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.client.max_frame_bytes,
      perMessageDeflate: false,
      clientTracking: false,
      // Only the JSON protocol: a client asking for a subprotocol (protobuf) gets none.
      handleProtocols: () => false,
    });
  }

  /** Handles an HTTP upgrade request for this endpoint. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.node.isClosing) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    if (!isOriginAllowed(request.headers.origin, this.node.config.allowed_origins)) {
      this.logger.info({ origin: request.headers.origin }, 'websocket origin refused');
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    const transport = new WebSocketTransport(ws, this.scheduler, this.node.config.client.max_queue_bytes);
    const client = new Client(this.node, transport, this.logger);
    transport.client = client;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        client.disconnect(Disconnects.badRequest);
        return;
      }
      client.handleFrame(data.toString('utf8'));
    });
    ws.on('close', () => client.handleClose());
    ws.on('error', (err) => {
      client.logger.debug({ err }, 'websocket error');
      client.handleClose();
    });
  }

  close(): void {
    this.wss.close();
  }
}

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type PerMessageDeflateOptions } from 'ws';
import type { RelaisConfig } from '../../config/schema.js';
import { Client, type ClientTransport, type PreparedPush } from '../../core/client.js';
import type { Publication } from '../../core/publication.js';
import { encodePublicationPush } from '../../protocol/json_codec.js';
import { Disconnects, type Disconnect } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import { FlushScheduler, type Flushable } from '../flush_scheduler.js';
import { isOriginAllowed } from '../origin.js';

/** A slow client's close frame waits behind everything it did not read: give up on it after this. */
const SLOW_CLOSE_GRACE_MS = 1000;

/**
 * A complete unmasked WebSocket text frame of `text` (RFC 6455 5.2: FIN + opcode 1, then
 * the payload length in 7, 16 or 64 bits), encoded straight into its frame. Server frames
 * are never masked, so one frame serves every connection: a publication is framed once per
 * node, not once per subscriber.
 */
export function textFrame(text: string): { readonly frame: Buffer; readonly payload: Buffer } {
  const length = Buffer.byteLength(text);
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  frame.write(text, headerLength);
  return { frame, payload: frame.subarray(headerLength) };
}

/** A publication push as the WebSocket transport writes it: its text, inside its frame. */
class PreparedFrame implements PreparedPush {
  readonly frame: Buffer;
  readonly text: Buffer;

  constructor(json: string) {
    const { frame, payload } = textFrame(json);
    this.frame = frame;
    this.text = payload;
  }
}

/** The frame of one queued message: a publication's shared frame, or a reply framed now. */
function frameOf(message: string | PreparedPush): Buffer {
  if (message instanceof PreparedFrame) return message.frame;
  return textFrame(typeof message === 'string' ? message : message.text.toString()).frame;
}

function prepareWebSocketPublication(channel: string, pub: Publication): PreparedFrame {
  return new PreparedFrame(encodePublicationPush(channel, pub));
}

/** One WebSocket connection under the Centrifugo JSON protocol. */
class WebSocketTransport implements ClientTransport, Flushable {
  readonly name = 'websocket';
  readonly preparePublication = prepareWebSocketPublication;
  client: Client | undefined;
  // Allocated while messages wait for the next flush only: idle connections hold no array.
  private queue: (string | PreparedPush)[] | null = null;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded socket, the one `ws` writes to: pre-framed pushes go to it directly. */
    private readonly socket: Duplex,
    private readonly scheduler: FlushScheduler,
    private readonly maxQueueBytes: number,
    /** permessage-deflate in use: frames go through ws, which compresses them. */
    private readonly compressed: boolean,
  ) {}

  write(message: string | PreparedPush): void {
    if (this.closed) return;
    if (this.queue) {
      this.queue.push(message);
      return;
    }
    this.queue = [message];
    this.scheduler.mark(this);
  }

  flush(): void {
    const queue = this.queue;
    if (!queue) return;
    this.queue = null;
    if (this.ws.readyState !== WebSocket.OPEN) return;
    // A client that stops reading must not make the server's memory grow: past the bound it is dropped.
    if (this.ws.bufferedAmount > this.maxQueueBytes) {
      this.client?.disconnect(Disconnects.slow);
      return;
    }
    if (this.compressed) {
      // ws holds frames back while zlib works: raw socket writes would overtake them, so
      // every frame goes through ws (which compresses those above the threshold).
      for (const message of queue) this.ws.send(typeof message === 'string' ? message : message.text, { binary: false });
      return;
    }
    // One protocol message per frame: `centrifuge` 5.0-5.7 reorders the messages of a frame
    // holding several when the next frame arrives in the same read (docs/design-notes.md).
    // Frames go straight to the socket, in order with what ws writes there itself (ws never
    // holds frames back without compression); those of one turn leave in one write.
    if (queue.length === 1) {
      this.socket.write(frameOf(queue[0] as string | PreparedPush));
      return;
    }
    this.socket.cork();
    for (const message of queue) this.socket.write(frameOf(message));
    this.socket.uncork();
  }

  close(disconnect: Disconnect): void {
    if (this.closed) return;
    if (disconnect.code !== Disconnects.slow.code) this.flush();
    this.closed = true;
    this.queue = null;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(disconnect.code, disconnect.reason);
      if (disconnect.code === Disconnects.slow.code) setTimeout(() => this.ws.terminate(), SLOW_CLOSE_GRACE_MS).unref();
    }
  }
}

// One set of listeners for every connection (ws calls them with the socket as `this`):
// three closures per idle connection are memory that a hundred thousand of them notice.
const clients = new WeakMap<WebSocket, Client>();

function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const client = clients.get(this);
  if (!client) return;
  if (isBinary) client.disconnect(Disconnects.badRequest);
  else client.handleFrame(data.toString('utf8'));
}

function onClose(this: WebSocket): void {
  clients.get(this)?.handleClose();
}

function onError(this: WebSocket, err: Error): void {
  const client = clients.get(this);
  client?.logger.debug({ err }, 'websocket error');
  client?.handleClose();
}

/**
 * ws' permessage-deflate options from the `websocket` config, or false. No context takeover
 * on the server side: each message is compressed alone, with no history between messages (a
 * little less ratio; a client cannot be made to hold our window). The client's window is left
 * to its offer: asking for a smaller one refuses the handshake of clients that do not offer
 * `client_max_window_bits`.
 */
export function deflateOptions(config: RelaisConfig['websocket']): PerMessageDeflateOptions | false {
  if (!config.compression) return false;
  return {
    threshold: config.compression_threshold,
    serverNoContextTakeover: true,
    serverMaxWindowBits: config.compression_window_bits,
    zlibDeflateOptions: { level: config.compression_level, memLevel: config.compression_mem_level },
  };
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
      perMessageDeflate: deflateOptions(config.websocket),
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
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, socket));
  }

  private accept(ws: WebSocket, socket: Duplex): void {
    // Compression is per connection: on only where the client's offer was accepted.
    const compressed = ws.extensions.includes('permessage-deflate');
    const transport = new WebSocketTransport(ws, socket, this.scheduler, this.node.config.client.max_queue_bytes, compressed);
    const client = new Client(this.node, transport, this.logger);
    transport.client = client;
    clients.set(ws, client);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', onError);
  }

  close(): void {
    this.wss.close();
  }
}

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type PerMessageDeflateOptions } from 'ws';
import type { RelaisConfig } from '../../config/schema.js';
import { Client, type ClientTransport } from '../../core/client.js';
import { publicationEncoders, type PreparedPush, type PublicationEncoders } from '../../core/push_encoders.js';
import type { EncodedMessage, ProtocolCodec } from '../../protocol/codec.js';
import { jsonCodec } from '../../protocol/json_codec.js';
import { Disconnects, type Disconnect } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import { FlushScheduler, type Flushable } from '../flush_scheduler.js';
import { isOriginAllowed } from '../origin.js';
import { FrameDeflater } from './frame_deflater.js';
import { binaryFrame, textFrame } from './frames.js';

/** A slow client's close frame waits behind everything it did not read: give up on it after this. */
const SLOW_CLOSE_GRACE_MS = 1000;

/** The WebSocket subprotocol a Protobuf client asks for (centrifuge-js, Dart, Swift, Java SDKs). */
export const PROTOBUF_SUBPROTOCOL = 'centrifuge-protobuf';

/** The frame of one protocol message: text for JSON, binary for Protobuf. */
function frameFor(message: EncodedMessage): Buffer {
  return (typeof message === 'string' ? textFrame(message) : binaryFrame(message)).frame;
}

/** A publication push as the WebSocket transport writes it: its message, inside its frame. */
class PreparedFrame implements PreparedPush {
  readonly frame: Buffer;
  // Built by the first compressed connection that writes it, then shared by the others.
  private deflated: Buffer | undefined;

  constructor(readonly message: EncodedMessage) {
    this.frame = frameFor(message);
  }

  compressedFrame(deflater: FrameDeflater): Buffer {
    this.deflated ??= deflater.frame(this.message);
    return this.deflated;
  }
}

/**
 * The frame of one queued message: a publication's shared frame (compressed once per node for
 * the connections that negotiated compression), or a reply framed now.
 */
function frameOf(message: EncodedMessage | PreparedPush, deflater: FrameDeflater | undefined): Buffer {
  if (message instanceof PreparedFrame) return deflater ? message.compressedFrame(deflater) : message.frame;
  const encoded = typeof message === 'string' || message instanceof Uint8Array ? message : message.message;
  return deflater ? deflater.frame(encoded) : frameFor(encoded);
}

/**
 * ws' permessage-deflate options from the `websocket` config, or false: what the handshake
 * negotiates and how ws inflates client frames (Relais deflates its own, FrameDeflater). No
 * context takeover on the server side and a fixed server window (ws refuses offers asking for
 * a smaller one): every connection decodes the same compressed bytes. The client's window is
 * left to its offer: asking for a smaller one refuses the handshake of clients that do not
 * offer `client_max_window_bits`.
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

const prepareFrame = (message: EncodedMessage): PreparedPush => new PreparedFrame(message);
const JSON_ENCODERS = publicationEncoders(jsonCodec, prepareFrame);

/** A protocol's codec with the publication encoders its connections share. */
interface WireProtocol {
  readonly codec: ProtocolCodec;
  readonly encoders: PublicationEncoders;
}

const JSON_PROTOCOL: WireProtocol = { codec: jsonCodec, encoders: JSON_ENCODERS };

// protobufjs and the compiled schema cost megabytes: loaded when the first Protobuf client
// arrives, never on a JSON-only node.
let protobufLoading: Promise<WireProtocol> | undefined;

function loadProtobuf(): Promise<WireProtocol> {
  protobufLoading ??= import('../../protocol/protobuf_codec.js').then(({ protobufCodec }) => ({
    codec: protobufCodec,
    encoders: publicationEncoders(protobufCodec, prepareFrame),
  }));
  return protobufLoading;
}

/** One WebSocket connection under the Centrifugo protocol, JSON (text frames) or Protobuf (binary frames). */
class WebSocketTransport implements ClientTransport, Flushable {
  readonly name = 'websocket';
  readonly publicationEncoders: PublicationEncoders;
  client: Client | undefined;
  // Allocated while messages wait for the next flush only: idle connections hold no array.
  private queue: (EncodedMessage | PreparedPush)[] | null = null;
  private closed = false;

  readonly codec: ProtocolCodec;

  constructor(
    protocol: WireProtocol,
    private readonly ws: WebSocket,
    /** The upgraded socket, the one `ws` writes to: pre-framed pushes go to it directly. */
    private readonly socket: Duplex,
    private readonly scheduler: FlushScheduler,
    private readonly maxQueueBytes: number,
    /** Set where the connection negotiated permessage-deflate. */
    private readonly deflater: FrameDeflater | undefined,
  ) {
    this.codec = protocol.codec;
    this.publicationEncoders = protocol.encoders;
  }

  write(message: EncodedMessage | PreparedPush): void {
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
    // One protocol message per frame: `centrifuge` 5.0-5.7 reorders the messages of a frame
    // holding several when the next frame arrives in the same read (docs/design-notes.md).
    // Frames go straight to the socket, in order with what ws writes there itself (ws never
    // holds frames back: Relais never sends through it, compressed frames included); those of
    // one turn leave in one write.
    if (queue.length === 1) {
      this.socket.write(frameOf(queue[0] as EncodedMessage | PreparedPush, this.deflater));
      return;
    }
    this.socket.cork();
    for (const message of queue) this.socket.write(frameOf(message, this.deflater));
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
  // Each protocol has its kind of frame: a binary frame on a JSON connection (or text on a
  // Protobuf one) is not the protocol the connection negotiated.
  if (isBinary !== client.codec.binary) client.disconnect(Disconnects.badRequest);
  else client.handleFrame(isBinary ? data : data.toString('utf8'));
}

/**
 * Whether a connection asks for Protobuf, as Centrifugo reads it: the `centrifuge-protobuf`
 * subprotocol, or `format=protobuf` (also `cf_protocol=protobuf`) in the query string.
 */
export function wantsProtobuf(request: IncomingMessage): boolean {
  const subprotocols = request.headers['sec-websocket-protocol'];
  if (subprotocols?.split(',').some((name) => name.trim() === PROTOBUF_SUBPROTOCOL)) return true;
  const url = request.url;
  const query = url?.includes('?') ? new URLSearchParams(url.slice(url.indexOf('?') + 1)) : undefined;
  return query !== undefined && (query.get('format') === 'protobuf' || query.get('cf_protocol') === 'protobuf');
}

function onClose(this: WebSocket): void {
  clients.get(this)?.handleClose();
}

function onError(this: WebSocket, err: Error): void {
  const client = clients.get(this);
  client?.logger.debug({ err }, 'websocket error');
  client?.handleClose();
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
  private readonly scheduler: FlushScheduler;
  private readonly deflater: FrameDeflater | undefined;
  private readonly node: Node;
  private readonly logger: Logger;

  constructor(options: WebSocketEndpointOptions) {
    this.node = options.node;
    this.logger = options.logger;
    const config = options.node.config;
    this.scheduler = new FlushScheduler(config.client.write_delay);
    const ws = config.websocket;
    if (ws.compression) {
      this.deflater = new FrameDeflater({ threshold: ws.compression_threshold, level: ws.compression_level, memLevel: ws.compression_mem_level, windowBits: ws.compression_window_bits });
    }
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.client.max_frame_bytes,
      perMessageDeflate: deflateOptions(ws),
      clientTracking: false,
      // The one subprotocol served: Protobuf. Any other request gets none (JSON).
      handleProtocols: (protocols) => (protocols.has(PROTOBUF_SUBPROTOCOL) ? PROTOBUF_SUBPROTOCOL : false),
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
    const upgrade = (protocol: WireProtocol): void => this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, socket, protocol, request));
    if (!wantsProtobuf(request)) {
      upgrade(JSON_PROTOCOL);
      return;
    }
    loadProtobuf().then(
      (protocol) => {
        if (!socket.destroyed) upgrade(protocol);
      },
      (err: unknown) => {
        this.logger.error({ err }, 'the Protobuf codec failed to load');
        socket.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n');
      },
    );
  }

  private accept(ws: WebSocket, socket: Duplex, protocol: WireProtocol, request: IncomingMessage): void {
    // Compression is per connection: on only where the client's offer was accepted.
    const deflater = this.deflater && ws.extensions.includes('permessage-deflate') ? this.deflater : undefined;
    const transport = new WebSocketTransport(protocol, ws, socket, this.scheduler, this.node.config.client.max_queue_bytes, deflater);
    const client = new Client(this.node, transport, this.logger, request);
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

import type { ServerResponse } from 'node:http';
import type { Client, ClientTransport, PreparedPush, TransportName } from '../../core/client.js';
import { Disconnects, type Disconnect } from '../../core/errors.js';
import { publicationEncoders, type PublicationEncoders } from '../../core/push_encoders.js';
import type { EncodedMessage } from '../../protocol/codec.js';
import { jsonCodec } from '../../protocol/json_codec.js';
import type { FlushScheduler, Flushable } from '../flush_scheduler.js';

/** A slow reader's stream ends behind everything it did not read: cut it after this. */
const SLOW_CLOSE_GRACE_MS = 1000;

/**
 * A publication push with the bytes one kind of emulated stream writes for it: encoded and
 * framed once per node, written to every subscriber streaming that way.
 */
export class PreparedChunk implements PreparedPush {
  constructor(
    readonly message: EncodedMessage,
    readonly chunk: Buffer,
    /** The framing that made `chunk`: a push prepared by another kind is framed again. */
    readonly framing: StreamFraming,
  ) {}
}

/**
 * A protocol message on one line. Line breaks in valid JSON can only be whitespace between
 * tokens (inside strings they are escaped), so turning them into spaces changes nothing; a
 * payload kept verbatim from a pretty-printed source would otherwise split the message.
 */
export function singleLine(message: string): string {
  return message.includes('\n') || message.includes('\r') ? message.replace(/[\r\n]/g, ' ') : message;
}

/** How one kind of emulated stream frames a protocol message into the response body. */
export interface StreamFraming {
  readonly name: Exclude<TransportName, 'websocket'>;
  /** The response body bytes of one protocol message. */
  frame(message: string): string;
}

/** Text of a JSON protocol message (the only protocol these streams carry today). */
function textOf(message: EncodedMessage): string {
  return typeof message === 'string' ? message : Buffer.from(message).toString('utf8');
}

/** The publication encoders of a framing: one set per kind, built at module level, as the hub's FrameCache wants. */
export function framingEncoders(framing: StreamFraming): PublicationEncoders {
  return publicationEncoders(jsonCodec, (message) => new PreparedChunk(message, Buffer.from(framing.frame(textOf(message))), framing));
}

/**
 * One streamed HTTP response carrying a client's protocol messages (HTTP-streaming, SSE); the
 * client's commands come through the emulation endpoint. Messages of one event-loop turn leave
 * in one socket write. The stream is the connection: when it ends, the client is gone.
 */
export class EmulatedTransport implements ClientTransport, Flushable {
  readonly name: Exclude<TransportName, 'websocket'>;
  /** JSON only: a Protobuf stream would need the SDK's length-delimited framing beside these. */
  readonly codec = jsonCodec;
  client: Client | undefined;
  // Allocated while messages wait for the next flush only: idle streams hold no array.
  private queue: (EncodedMessage | PreparedPush)[] | null = null;
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly framing: StreamFraming,
    readonly publicationEncoders: PublicationEncoders,
    readonly session: string,
    private readonly scheduler: FlushScheduler,
    private readonly maxQueueBytes: number,
  ) {
    this.name = framing.name;
  }

  get isClosed(): boolean {
    return this.closed;
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

  private chunkOf(message: EncodedMessage | PreparedPush): string | Buffer {
    if (message instanceof PreparedChunk && message.framing === this.framing) return message.chunk;
    return this.framing.frame(textOf(typeof message === 'string' || message instanceof Uint8Array ? message : message.message));
  }

  flush(): void {
    const queue = this.queue;
    if (!queue) return;
    this.queue = null;
    if (this.closed || this.res.destroyed) return;
    // A reader that stopped reading must not make the server's memory grow: past the bound it is dropped.
    if (this.res.writableLength > this.maxQueueBytes) {
      this.client?.disconnect(Disconnects.slow);
      return;
    }
    if (queue.length === 1) {
      this.res.write(this.chunkOf(queue[0] as EncodedMessage | PreparedPush));
      return;
    }
    this.res.cork();
    for (const message of queue) this.res.write(this.chunkOf(message));
    this.res.uncork();
  }

  /**
   * Ends the stream. Unlike a WebSocket close frame, a response's end carries no code: the
   * disconnect travels as a push first (as Centrifugo does), so the SDK knows whether to reconnect.
   */
  close(disconnect: Disconnect): void {
    if (this.closed) return;
    const slow = disconnect.code === Disconnects.slow.code;
    if (!slow) {
      this.write(this.codec.encodePush({ type: 'disconnect', code: disconnect.code, reason: disconnect.reason }));
      this.flush();
    }
    this.closed = true;
    this.queue = null;
    if (this.res.destroyed) return;
    this.res.end();
    if (slow) setTimeout(() => this.res.destroy(), SLOW_CLOSE_GRACE_MS).unref();
  }
}

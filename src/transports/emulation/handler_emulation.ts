import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Client } from '../../core/client.js';
import { RelaisError } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import { FlushScheduler } from '../flush_scheduler.js';
import { EmulatedTransport } from './emulated_transport.js';
import { HTTP_STREAM_HEADERS, httpStreamEncoders, httpStreamFraming } from './transport_http_stream.js';
import { SSE_HEADERS, sseEncoders, sseFraming } from './transport_sse.js';

export type EmulatedKind = 'http_stream' | 'sse';

/** What a client posts to `/emulation`: commands for the connection of `session`, held by `node`. */
export interface EmulationRequest {
  readonly session: string;
  readonly node: string;
  /** Protocol commands as the client encoded them (JSON: lines). */
  readonly data: string;
}

/** What an emulation request came to: run here, sent on to the node holding the session, or already gone. */
export type EmulationOutcome = 'local' | 'forwarded' | 'gone';

const KINDS = {
  http_stream: { framing: httpStreamFraming, encoders: httpStreamEncoders, headers: HTTP_STREAM_HEADERS },
  sse: { framing: sseFraming, encoders: sseEncoders, headers: SSE_HEADERS },
} as const;

/**
 * Bidirectional emulation, the way Centrifugo serves it: the server writes to a streamed
 * response (HTTP-streaming or SSE), the client sends its commands in separate POSTs to
 * `/emulation`, quoting the session and node ids of its connect reply. A POST may land on
 * any node: one that does not hold the session sends the commands on through the bus to the
 * node that does. The HTTP side (routes, bodies, origins) is in transports/http.
 */
export class EmulationEndpoint {
  private readonly sessions = new Map<string, Client>();
  private readonly scheduler: FlushScheduler;

  constructor(
    private readonly node: Node,
    private readonly logger: Logger,
  ) {
    this.scheduler = new FlushScheduler(node.config.client.write_delay);
    node.onEmulation((session, data) => this.runHere(session, data));
  }

  /** Open emulated connections on this node. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Starts a stream on `res` (headers written at once, so the client sees it open) and runs
   * `connectFrame`, the connect command the stream request carried, on a new Client.
   */
  open(kind: EmulatedKind, res: ServerResponse, connectFrame: string): void {
    const { framing, encoders, headers } = KINDS[kind];
    res.writeHead(200, headers);
    res.flushHeaders();
    const session = randomUUID();
    const transport = new EmulatedTransport(res, framing, encoders, session, this.scheduler, this.node.config.client.max_queue_bytes);
    // The stream request's headers (cookies) are what the connect proxy authenticates.
    const client = new Client(this.node, transport, this.logger, res.req);
    transport.client = client;
    this.sessions.set(session, client);
    res.once('close', () => {
      this.sessions.delete(session);
      client.handleClose();
    });
    client.handleFrame(connectFrame);
  }

  /**
   * Runs an emulation request's commands on the node holding the session. Rejects
   * NODE_NOT_FOUND when that node is not known (restarted or gone: the client reconnects),
   * BROKER_UNAVAILABLE when the bus cannot carry them there.
   */
  async receive(request: EmulationRequest): Promise<EmulationOutcome> {
    if (request.node === this.node.id) return this.runHere(request.session, request.data) ? 'local' : 'gone';
    if (!this.node.knowsNode(request.node)) throw new RelaisError('NODE_NOT_FOUND', 'no live node holds this session; reconnect');
    await this.node.sendEmulation(request.node, request.session, request.data);
    return 'forwarded';
  }

  /** Feeds a session's commands to its client; false when the session has ended. */
  private runHere(session: string, data: string): boolean {
    const client = this.sessions.get(session);
    if (!client) return false;
    client.handleFrame(data);
    return true;
  }
}

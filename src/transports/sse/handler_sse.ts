import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { encodeClientInfo } from '../../protocol/json_codec.js';
import { assertCanSubscribe, passesRule } from '../../core/access.js';
import { TokenError } from '../../core/auth.js';
import { isPattern, keepsHistory, type ResolvedChannel, type ResolvedPattern } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import type { FrameCache } from '../../core/hub.js';
import type { Node } from '../../core/node.js';
import type { ClientInfo, Publication, StreamPosition } from '../../core/publication.js';
import { StreamSubscriber } from '../../core/stream_subscriber.js';
import { FlushScheduler, type Flushable } from '../flush_scheduler.js';
import { decodeEventId, encodeEventId, type StreamCursor } from './event_id.js';

/** The JSON of one publication event, shared by every SSE stream of the node. */
export function sseEventData(channel: string, pub: Publication): string {
  let out = `{"channel":${JSON.stringify(channel)}`;
  if (pub.offset > 0) out += `,"offset":${pub.offset},"epoch":${JSON.stringify(pub.epoch)}`;
  out += `,"data":${pub.data}`;
  if (pub.info) out += `,"info":${encodeClientInfo(pub.info)}`;
  if (pub.tags) out += `,"tags":${JSON.stringify(pub.tags)}`;
  return `${out},"time":${pub.time}}`;
}

/** An SSE `data:` field: one line per line of the payload. */
function dataField(text: string): string {
  return text.includes('\n') ? text.split('\n').map((l) => `data: ${l}\n`).join('') : `data: ${text}\n`;
}

export interface SseRequest {
  readonly channels: readonly string[];
  readonly token: string | undefined;
  readonly lastEventId: string | undefined;
}

/** Pattern channels remembered in event ids beyond the exact ones; older ones fall back to the time rule. */
const MAX_PATTERN_POSITIONS = 64;

/** One open SSE response. */
class SseStream implements Flushable {
  readonly positions = new Map<string, StreamPosition>();
  private readonly exact = new Set<string>();
  private lastTime = Date.now();
  private queue: string[] = [];
  private closed = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly scheduler: FlushScheduler,
    private readonly maxQueueBytes: number,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  markExact(channel: string): void {
    this.exact.add(channel);
  }

  onClose(cleanup: () => void): void {
    if (this.closed) cleanup();
    else this.cleanups.push(cleanup);
  }

  private enqueue(text: string): void {
    if (this.closed) return;
    this.queue.push(text);
    if (this.queue.length === 1) this.scheduler.mark(this);
  }

  /** A publication event; skipped when the stream already delivered that offset. */
  publication(channel: string, pub: Publication, data: string): void {
    if (pub.offset > 0) {
      const known = this.positions.get(channel);
      if (known && known.epoch === pub.epoch && pub.offset <= known.offset) return;
      this.setPosition(channel, { offset: pub.offset, epoch: pub.epoch });
    }
    if (pub.time > this.lastTime) this.lastTime = pub.time;
    this.enqueue(`id: ${encodeEventId(this.lastTime, this.positions)}\n${dataField(data)}\n`);
  }

  setPosition(channel: string, position: StreamPosition): void {
    if (!this.exact.has(channel)) this.positions.delete(channel);
    this.positions.set(channel, position);
    if (this.positions.size > this.exact.size + MAX_PATTERN_POSITIONS) {
      for (const name of this.positions.keys()) {
        if (this.exact.has(name)) continue;
        this.positions.delete(name);
        break;
      }
    }
  }

  /** A named event (`subscribed`, `unrecovered`), carrying the current id. */
  named(event: string, data: unknown): void {
    this.enqueue(`event: ${event}\nid: ${encodeEventId(this.lastTime, this.positions)}\n${dataField(JSON.stringify(data))}\n`);
  }

  comment(text: string): void {
    this.enqueue(`: ${text}\n\n`);
  }

  flush(): void {
    const queue = this.queue;
    this.queue = [];
    if (this.closed || queue.length === 0) return;
    this.res.write(queue.length === 1 ? (queue[0] as string) : queue.join(''));
    // A reader that stopped reading: end the stream; it resumes from its Last-Event-ID.
    if (this.res.writableLength > this.maxQueueBytes) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.res.end();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}

/** One channel of an SSE stream. */
class SseChannelSubscription extends StreamSubscriber {
  constructor(private readonly stream: SseStream) {
    super();
  }

  protected deliverPublication(frames: FrameCache<Publication>): void {
    this.stream.publication(frames.channel, frames.event, frames.get(sseEventData));
  }

  protected deliverJoin(_frames: FrameCache<ClientInfo>): void {}
  protected deliverLeave(_frames: FrameCache<ClientInfo>): void {}

  /** The bus lost publications: end the stream, the EventSource resumes from its last id. */
  protected handleGap(): void {
    this.stream.close();
  }
}

/**
 * `GET /sse`: a unidirectional stream of the publications of one or more channels or
 * globs, resumable through Last-Event-ID on any node.
 */
export class SseEndpoint {
  private readonly scheduler = new FlushScheduler();
  private readonly streams = new Set<SseStream>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly node: Node,
    private readonly logger: Logger,
  ) {
    this.heartbeat = setInterval(() => {
      for (const stream of this.streams) stream.comment('ping');
    }, node.config.sse.heartbeat_interval);
    this.heartbeat.unref();
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Checks the request; throws RelaisError before anything is written. */
  async authorize(request: SseRequest): Promise<{ user: string; channels: ResolvedChannel[]; patterns: ResolvedPattern[] }> {
    let user = '';
    if (request.token) {
      try {
        user = (await this.node.tokens.verifyConnection(request.token)).user;
      } catch (err) {
        if (err instanceof TokenError && err.reason === 'expired') throw new RelaisError('TOKEN_EXPIRED');
        throw new RelaisError('UNAUTHORIZED', 'invalid token', { cause: err });
      }
    } else if (!this.node.config.allow_anonymous) {
      throw new RelaisError('UNAUTHORIZED', 'a token is required (Authorization: Bearer, or ?token=)');
    }
    if (request.channels.length === 0) throw new RelaisError('BAD_REQUEST', 'at least one channel parameter is required');
    if (request.channels.length > this.node.config.sse.max_channels) {
      throw new RelaisError('LIMIT_EXCEEDED', `more than ${this.node.config.sse.max_channels} channels in one stream`);
    }
    const channels: ResolvedChannel[] = [];
    const patterns: ResolvedPattern[] = [];
    for (const name of new Set(request.channels)) {
      if (isPattern(name)) {
        const pattern = this.node.channels.resolvePattern(name);
        const rule = pattern.options.allow_subscribe;
        if (rule === 'owner' || !passesRule(rule, user, { name, namespace: pattern.namespace, rest: '', options: pattern.options })) {
          throw new RelaisError('FORBIDDEN', `cannot subscribe to pattern "${name}"`);
        }
        patterns.push(pattern);
      } else {
        const channel = this.node.channels.resolve(name);
        assertCanSubscribe(user, channel);
        channels.push(channel);
      }
    }
    return { user, channels, patterns };
  }

  /** Opens the stream on an authorized request. Resolves once it is live. */
  async open(res: ServerResponse, request: SseRequest, channels: ResolvedChannel[], patterns: ResolvedPattern[]): Promise<void> {
    const stream = new SseStream(res, this.scheduler, this.node.config.client.max_queue_bytes);
    this.streams.add(stream);
    stream.onClose(() => this.streams.delete(stream));
    res.on('close', () => stream.close());
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(': relais\nretry: 2000\n\n');
    const cursor = decodeEventId(request.lastEventId);
    for (const channel of channels) stream.markExact(channel.name);
    try {
      for (const channel of channels) await this.joinChannel(stream, channel, cursor);
      for (const pattern of patterns) await this.joinPattern(stream, pattern, cursor);
    } catch (err) {
      this.logger.warn({ err }, 'sse stream could not join its channels');
      stream.named('error', { message: err instanceof Error ? err.message : 'subscribe failed' });
      stream.close();
    }
  }

  private async joinChannel(stream: SseStream, channel: ResolvedChannel, cursor: StreamCursor | undefined): Promise<void> {
    if (stream.isClosed) return;
    const sub = new SseChannelSubscription(stream);
    const since = cursor?.positions.get(channel.name);
    const recover = keepsHistory(channel.options) && since !== undefined;
    await this.node.joinStream(channel, sub, { recover, ...(since ? { since } : {}) }, (result) => {
      if (result.position) {
        // Start just before what is replayed, so that each replayed event moves the position itself.
        const first = result.publications[0];
        stream.setPosition(channel.name, first && first.offset > 0 ? { offset: first.offset - 1, epoch: first.epoch } : result.position);
      }
      stream.named('subscribed', {
        channel: channel.name,
        ...(result.position ? { offset: result.position.offset, epoch: result.position.epoch } : {}),
        was_recovering: recover,
        recovered: recover && result.recovered,
      });
      for (const pub of result.publications) stream.publication(channel.name, pub, sseEventData(channel.name, pub));
    });
    stream.onClose(() => this.node.detach(channel.name, sub));
  }

  private async joinPattern(stream: SseStream, pattern: ResolvedPattern, cursor: StreamCursor | undefined): Promise<void> {
    if (stream.isClosed) return;
    const sub = new SseChannelSubscription(stream);
    this.node.attachPattern(pattern.pattern, sub);
    stream.onClose(() => this.node.detachPattern(pattern.pattern, sub));
    const replay: { channel: string; pubs: readonly Publication[] }[] = [];
    if (cursor && keepsHistory(pattern.options)) {
      const names = new Set(await this.node.broker.streamChannels(pattern.pattern));
      for (const name of cursor.positions.keys()) if (pattern.matcher(name)) names.add(name);
      const limit = pattern.options.recovery_max_publications;
      for (const name of names) {
        const channel = this.node.channels.resolve(name);
        const since = cursor.positions.get(name);
        const history = await this.node.history(channel, since ? { since, limit } : { limit });
        const pubs = since ? history.publications : history.publications.filter((p) => p.time >= cursor.time);
        replay.push({ channel: name, pubs });
        if (since && history.position.epoch !== since.epoch) stream.named('unrecovered', { channel: name, reason: 'history lost' });
      }
    }
    // Nothing awaits from here: replay, then what arrived meanwhile (duplicates skipped by offset).
    for (const { channel, pubs } of replay) {
      const since = cursor?.positions.get(channel);
      if (since) stream.setPosition(channel, since);
      for (const pub of pubs) stream.publication(channel, pub, sseEventData(channel, pub));
    }
    stream.named('subscribed', { pattern: pattern.pattern, was_recovering: cursor !== undefined });
    for (const frames of sub.goLive()) stream.publication(frames.channel, frames.event, frames.get(sseEventData));
  }

  /** Ends every stream (shutdown): EventSource clients reconnect, to another node if need be. */
  closeAll(): void {
    clearInterval(this.heartbeat);
    for (const stream of [...this.streams]) stream.close();
  }
}

import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { encodeClientInfo } from '../../protocol/json_codec.js';
import type { TokenIdentity } from '../../core/auth.js';
import type { Disconnect } from '../../core/errors.js';
import type { FrameCache } from '../../core/hub.js';
import type { JsonText } from '../../core/json.js';
import type { NodeClient } from '../../core/node.js';
import type { ClientInfo, Publication, StreamPosition } from '../../core/publication.js';
import { NodeStats } from '../../core/stats.js';
import { StreamSubscriber } from '../../core/stream_subscriber.js';
import type { TagFilter } from '../../core/tag_filter.js';
import type { FlushScheduler, Flushable } from '../flush_scheduler.js';
import { encodeEventId } from './event_id.js';
import type { SseChannelEvents } from './channel_events.js';

/** The JSON of one publication event, shared by every SSE stream of the node. */
export function sseEventData(channel: string, pub: Publication): string {
  let out = `{"channel":${JSON.stringify(channel)}`;
  if (pub.offset > 0) out += `,"offset":${pub.offset},"epoch":${JSON.stringify(pub.epoch)}`;
  out += `,"data":${pub.data}`;
  if (pub.info) out += `,"info":${encodeClientInfo(pub.info)}`;
  if (pub.tags) out += `,"tags":${JSON.stringify(pub.tags)}`;
  return `${out},"time":${pub.time}}`;
}

/** The data of a publication event on a route that streams one channel's payloads as they are (`/streams/batches/<id>`). */
export function sseBareData(_channel: string, pub: Publication): string {
  return pub.data;
}

/** An SSE `data:` field: one line per line of the payload. */
function dataField(text: string): string {
  return text.includes('\n') ? text.split('\n').map((l) => `data: ${l}\n`).join('') : `data: ${text}\n`;
}

/** Pattern channels remembered in event ids beyond the exact ones; older ones fall back to the time rule. */
export const MAX_PATTERN_POSITIONS = 64;

/** One open SSE response. */
export class SseStream implements Flushable {
  readonly positions = new Map<string, StreamPosition>();
  private readonly exact = new Set<string>();
  /** Exact channels whose final publication was written (see SseChannelEvents). */
  private readonly ended = new Set<string>();
  /** Whether the stream also follows globs (it then never ends on a channel's final event). */
  hasPatterns = false;
  /**
   * The time written in ids: every publication of a glob's channel at or after it that is
   * not listed in the id still has to be delivered. It stays at the resumed id's time while
   * the stream joins its channels, since replays do not come in time order.
   */
  private lastTime: number;
  private newestTime = 0;
  private joining = true;
  private queue: string[] = [];
  private closed = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly scheduler: FlushScheduler,
    private readonly maxQueueBytes: number,
    startTime: number,
    private readonly stats: NodeStats,
    private readonly filter?: TagFilter,
  ) {
    this.lastTime = startTime;
  }

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

  /**
   * A publication event; skipped when the stream already delivered that offset. `event` names
   * it (unnamed: EventSource's `message`); `live` false for replayed ones (snapshot, recovery),
   * which the publish-to-write latency does not count. Returns whether it was written.
   */
  publication(channel: string, pub: Publication, data: string, event?: string, live = true): boolean {
    if (pub.offset > 0) {
      const known = this.positions.get(channel);
      if (known && known.epoch === pub.epoch) {
        if (pub.offset <= known.offset) return false;
        // A glob channel the hub cannot check (no exact subscriber here) skipped offsets: end
        // the stream, its Last-Event-ID recovers the missing ones from history.
        if (pub.offset > known.offset + 1 && !this.joining) {
          NodeStats.inc(this.stats.outOfSequence, 'subscriber');
          this.close();
          return false;
        }
      }
      this.setPosition(channel, { offset: pub.offset, epoch: pub.epoch });
    }
    if (pub.time > this.newestTime) this.newestTime = pub.time;
    if (!this.joining && pub.time > this.lastTime) this.lastTime = pub.time;
    // Filtered out once the position moved past it: the id of the next event resumes after it.
    if (this.filter && !this.filter(pub.tags)) return false;
    this.stats.sseEvents++;
    if (live) this.stats.observeSseLatency(Date.now() - pub.time);
    this.enqueue(`${event ? `event: ${event}\n` : ''}id: ${encodeEventId(this.lastTime, this.positions)}\n${dataField(data)}\n`);
    return true;
  }

  /**
   * A channel's final event (after its final publication): the stream ends once every exact
   * channel it follows has ended, and it follows no glob.
   */
  endChannel(channel: string, event: string, data: string): void {
    this.enqueue(`event: ${event}\nid: ${encodeEventId(this.lastTime, this.positions)}\n${dataField(data)}\n`);
    this.ended.add(channel);
    if (this.hasPatterns) return;
    for (const name of this.exact) if (!this.ended.has(name)) return;
    this.close();
  }

  /** Every channel and glob has joined: whatever came before the newest publication was delivered. */
  joined(): void {
    this.joining = false;
    if (this.newestTime > this.lastTime) this.lastTime = this.newestTime;
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

  /** A named event whose data is JSON text already. */
  rawEvent(event: string, data: string): void {
    this.enqueue(`event: ${event}\n${dataField(data)}\n`);
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

/** One channel (or glob) of an SSE stream. */
export class SseChannelSubscription extends StreamSubscriber {
  constructor(
    private readonly stream: SseStream,
    private readonly events?: SseChannelEvents,
    private readonly encode: (channel: string, pub: Publication) => string = sseEventData,
  ) {
    super();
  }

  protected deliverPublication(frames: FrameCache<Publication>): void {
    this.write(frames.channel, frames.event, frames.get(this.encode), true);
  }

  /** Writes a publication, live or replayed, and its channel's final event after a final one. */
  write(channel: string, pub: Publication, data: string, live: boolean): void {
    if (!this.stream.publication(channel, pub, data, this.events?.event, live)) return;
    if (this.events?.isFinal(pub)) this.stream.endChannel(channel, this.events.finalEvent, data);
  }

  /** The data of a publication of this subscription, as its stream writes it. */
  dataOf(channel: string, pub: Publication): string {
    return this.encode(channel, pub);
  }

  protected deliverJoin(_frames: FrameCache<ClientInfo>): void {}
  protected deliverLeave(_frames: FrameCache<ClientInfo>): void {}

  /** The bus lost publications: end the stream, the EventSource resumes from its last id. */
  protected handleGap(): void {
    this.stream.close();
  }
}

/**
 * An SSE stream as the node sees a client: counted in `info` and by the per-user connection
 * limit, ended by the server API's `disconnect`, reached by its `send` (as `event: send`).
 * Its channels are fixed by its URL: server-side subscribe and unsubscribe do not apply.
 */
export class SseClient implements NodeClient {
  readonly info: ClientInfo;

  constructor(
    readonly user: string,
    private readonly stream: SseStream,
    /** The token the stream was opened with, for revocations. */
    readonly token?: TokenIdentity,
    /** The id the proxies were told, when they were asked. */
    readonly id: string = randomUUID(),
  ) {
    this.info = { user, client: this.id };
  }

  presenceEntries(): Iterable<readonly [string, ClientInfo]> {
    return [];
  }

  disconnect(disconnect: Disconnect): void {
    this.stream.named('disconnect', { code: disconnect.code, reason: disconnect.reason });
    this.stream.close();
  }

  serverSubscribe(): void {}
  serverUnsubscribe(): void {}

  sendMessage(data: JsonText): void {
    this.stream.rawEvent('send', data);
  }

  tick(): void {}
}

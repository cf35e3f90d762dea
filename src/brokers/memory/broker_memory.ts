import { randomBytes } from 'node:crypto';
import type { JsonText } from '../../core/json.js';
import { compileGlob } from '../../core/channel.js';
import type { ClientInfo, Publication, StreamPosition } from '../../core/publication.js';
import type {
  Broker,
  BrokerEventHandler,
  BrokerLogger,
  ControlMessage,
  HistoryQuery,
  HistoryResult,
  PublishOptions,
} from '../broker.js';

/** Meta TTL of a stream created by a read, before any publish sets the namespace's own. */
const READ_CREATED_META_TTL_MS = 24 * 3_600_000;
const SWEEP_INTERVAL_MS = 30_000;

export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/** One channel's stream: its position and a window of recent publications. */
export class MemoryStream {
  offset = 0;
  readonly epoch = newEpoch();
  /** Publications in offset order; entries before `head` are dropped. */
  private entries: Publication[] = [];
  private head = 0;
  lastWriteAt = Date.now();
  metaTtlMs = READ_CREATED_META_TTL_MS;
  ttlMs = 0;

  append(pub: Publication, size: number, ttlMs: number): void {
    // The first publication gets an array of its own size: a push would reserve 17 slots,
    // and most channels keep one (history_size 1: latest values, statuses).
    if (this.entries.length === 0) this.entries = [pub];
    else this.entries.push(pub);
    this.ttlMs = ttlMs;
    if (this.entries.length - this.head > size) this.head = this.entries.length - size;
    this.dropExpired(pub.time);
    // Compact once the dropped prefix is as long as the window (at least 8): the copy of the
    // live entries is paid for by as many appends, and a channel keeps at most that many
    // dropped publications alive (a prefix of 64, as before, held 64 per history-1 channel).
    if (this.head >= Math.max(8, size) && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Publications held, dropped ones not yet compacted away included. */
  get retained(): number {
    return this.entries.length;
  }

  dropExpired(now: number): void {
    const cutoff = now - this.ttlMs;
    while (this.head < this.entries.length && (this.entries[this.head]?.time ?? Infinity) <= cutoff) this.head++;
  }

  clear(): void {
    this.entries = [];
    this.head = 0;
  }

  /** Live publications, oldest first. */
  live(): Publication[] {
    this.dropExpired(Date.now());
    return this.entries.slice(this.head);
  }

  get position(): StreamPosition {
    return { offset: this.offset, epoch: this.epoch };
  }
}

interface IdempotentResult {
  readonly position: StreamPosition;
  readonly expiresAt: number;
}

export interface MemoryBrokerOptions {
  readonly logger?: BrokerLogger;
}

const silentLogger: BrokerLogger = { warn: () => undefined, error: () => undefined };

/**
 * The broker of a single process: offsets, history and fan-out in memory. Publishing is
 * synchronous under the hood, so offsets are assigned and delivered in one order. The
 * handler runs inside `publish`: a throw from it is logged and goes no further, as on a
 * real bus, so that a subscriber's bug never fails the publish (nor trips the node's
 * circuit breaker as a bus failure).
 */
export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  private readonly logger: BrokerLogger;
  private handler: BrokerEventHandler | undefined;
  private readonly streams = new Map<string, MemoryStream>();
  private readonly idempotent = new Map<string, IdempotentResult>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: MemoryBrokerOptions = {}) {
    this.logger = options.logger ?? silentLogger;
  }

  start(handler: BrokerEventHandler): Promise<void> {
    this.handler = handler;
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    return Promise.resolve();
  }

  publish(channel: string, data: JsonText, options: PublishOptions): Promise<StreamPosition> {
    const now = Date.now();
    let idempotencyId: string | undefined;
    if (options.idempotencyKey !== undefined) {
      idempotencyId = `${channel}\u0000${options.idempotencyKey}`;
      const previous = this.idempotent.get(idempotencyId);
      if (previous && previous.expiresAt > now) return Promise.resolve(previous.position);
    }
    let publication: Publication;
    if (options.historySize > 0) {
      const stream = this.stream(channel);
      stream.offset += 1;
      stream.lastWriteAt = now;
      stream.metaTtlMs = options.historyMetaTtlMs;
      publication = makePublication(stream.offset, stream.epoch, data, options, now);
      stream.append(publication, options.historySize, options.historyTtlMs);
    } else if (options.position) {
      publication = makePublication(options.position.offset, options.position.epoch, data, options, options.position.time);
    } else {
      publication = makePublication(0, '', data, options, now);
    }
    const position = { offset: publication.offset, epoch: publication.epoch };
    if (idempotencyId !== undefined) {
      this.idempotent.set(idempotencyId, { position, expiresAt: now + (options.idempotentResultTtlMs ?? 300_000) });
    }
    this.deliver(channel, (handler) => handler.handlePublication(channel, publication));
    return Promise.resolve(position);
  }

  publishJoin(channel: string, info: ClientInfo): Promise<void> {
    this.deliver(channel, (handler) => handler.handleJoin(channel, info));
    return Promise.resolve();
  }

  publishLeave(channel: string, info: ClientInfo): Promise<void> {
    this.deliver(channel, (handler) => handler.handleLeave(channel, info));
    return Promise.resolve();
  }

  publishControl(message: ControlMessage): Promise<void> {
    this.deliver(undefined, (handler) => handler.handleControl(message));
    return Promise.resolve();
  }

  // One process: every publication reaches the handler, which indexes local interest.
  subscribe(_channels: readonly string[]): Promise<void> {
    return Promise.resolve();
  }

  unsubscribe(_channels: readonly string[]): Promise<void> {
    return Promise.resolve();
  }

  // Every channel already reaches the handler, once: the hub matches patterns itself.
  subscribePattern(_pattern: string): Promise<void> {
    return Promise.resolve();
  }

  unsubscribePattern(_pattern: string): Promise<void> {
    return Promise.resolve();
  }

  history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const stream = this.stream(channel);
    const position = stream.position;
    if (query.limit <= 0) return Promise.resolve({ publications: [], position });
    const since = query.since;
    if (since && since.epoch !== '' && since.epoch !== stream.epoch) return Promise.resolve({ publications: [], position });
    let pubs = stream.live();
    if (query.reverse) {
      if (since) pubs = pubs.filter((p) => p.offset < since.offset);
      pubs = pubs.slice(-query.limit).reverse();
    } else {
      if (since) pubs = pubs.filter((p) => p.offset > since.offset);
      pubs = pubs.slice(0, query.limit);
    }
    return Promise.resolve({ publications: pubs, position });
  }

  removeHistory(channel: string): Promise<void> {
    this.streams.get(channel)?.clear();
    return Promise.resolve();
  }

  streamChannels(pattern: string): Promise<string[]> {
    const match = compileGlob(pattern);
    return Promise.resolve([...this.streams.keys()].filter(match));
  }

  close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.handler = undefined;
    return Promise.resolve();
  }

  /** Hands one event to the handler; a throw is the handler's bug, logged here and contained. */
  private deliver(channel: string | undefined, call: (handler: BrokerEventHandler) => void): void {
    const handler = this.handler;
    if (!handler) return;
    try {
      call(handler);
    } catch (err) {
      this.logger.error({ err, channel }, 'broker event handler threw');
    }
  }

  private stream(channel: string): MemoryStream {
    let stream = this.streams.get(channel);
    if (!stream) {
      stream = new MemoryStream();
      this.streams.set(channel, stream);
    }
    return stream;
  }

  /** Forgets streams idle past their meta TTL (their next publish starts a new epoch). */
  private sweep(): void {
    const now = Date.now();
    for (const [channel, stream] of this.streams) {
      if (stream.lastWriteAt + stream.metaTtlMs <= now) this.streams.delete(channel);
      else stream.dropExpired(now);
    }
    for (const [key, result] of this.idempotent) if (result.expiresAt <= now) this.idempotent.delete(key);
  }
}

function makePublication(offset: number, epoch: string, data: JsonText, options: PublishOptions, time: number): Publication {
  const pub: { -readonly [K in keyof Publication]: Publication[K] } = { offset, epoch, data, time };
  if (options.info) pub.info = options.info;
  if (options.tags) pub.tags = options.tags;
  return pub;
}

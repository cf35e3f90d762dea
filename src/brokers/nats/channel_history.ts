import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import type { Publication, StreamPosition } from '../../core/publication.js';
import type { HistoryQuery, HistoryResult, PublishOptions } from '../broker.js';
import { publicationOf, type StoredEntry } from './codec.js';
import {
  isMetaExpired,
  newEpoch,
  positionOf,
  visiblePublications,
  type HistoryStreamLimits,
  type JetStreamHistory,
  type Top,
} from './history_store.js';
import { isStreamMissing, isWrongLastSequence, jitter, KeyedQueue, withTimeout, type NatsLogger } from './util.js';

export interface ChannelHistoryOptions {
  readonly limits: HistoryStreamLimits;
  /** Bound on a write with its retries (append, epoch creation, removal), ms. */
  readonly writeTimeoutMs: number;
  readonly logger: NatsLogger;
  /** False while the connection is down: writes stop retrying at once. */
  isConnected(): boolean;
}

/** Meta TTL of a position created by a read, before any publish sets the namespace's own. */
const READ_CREATED_META_TTL_MS = 24 * 3_600_000;
/** Positions remembered per node to skip the read before a publish; older ones are re-read. */
const CACHE_SIZE = 10_000;

/**
 * Offsets, epochs and history of channels, on top of the JetStream stream (JetStreamHistory).
 *
 * Offset assignment is optimistic concurrency on the channel's subject: read the last entry
 * (offset and epoch are inside it), append offset + 1 with `Nats-Expected-Last-Subject-Sequence`,
 * and if another node appended first, re-read and retry. This node's own writes to a channel
 * run one after the other (a queue per channel) and remember the last position written, so a
 * single publisher costs one round trip per publication and never conflicts with itself.
 */
export class ChannelHistory {
  private readonly queue = new KeyedQueue();
  private readonly tops = new Map<string, Top>();
  private readonly trimmedAt = new Map<string, { epoch: string; offset: number }>();
  private readonly background = new Set<Promise<void>>();
  /** A re-creation of the stream in flight, shared by whoever noticed it missing. */
  private streamReady: Promise<void> | undefined;

  constructor(
    private readonly store: JetStreamHistory,
    private readonly options: ChannelHistoryOptions,
  ) {}

  ensureStream(): Promise<void> {
    return this.store.ensureStream(this.options.limits);
  }

  /**
   * Stores a publication under the channel's next offset, giving up at `deadline` (Unix ms)
   * with what time is left, queue wait included. `onStored` runs right after the
   * ack, still in the channel's queue, so this node's fan-outs leave in offset order. A
   * repeat refused by `Nats-Msg-Id` resolves with the first publication's position and
   * calls nothing.
   */
  append(
    channel: string,
    data: JsonText,
    options: PublishOptions,
    msgId: string | undefined,
    deadline: number,
    onStored: (publication: Publication) => void,
  ): Promise<StreamPosition> {
    return this.queue.run(channel, () => this.withStream(() => this.appendNow(channel, data, options, msgId, onStored, deadline)));
  }

  /** Reads history as HistoryQuery describes; creates the channel's epoch if it has none. */
  read(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    return this.withStream(() => this.readNow(channel, query));
  }

  /** The channel's position, without creating one; undefined when it has no stream. */
  async position(channel: string): Promise<StreamPosition | undefined> {
    const top = await this.withStream(() => this.store.readTop(channel));
    return top && positionOf(top);
  }

  /**
   * Drops the channel's publications and keeps its position: writes a mark with the same
   * offset and epoch, then purges what precedes it.
   */
  remove(channel: string): Promise<void> {
    const deadline = Date.now() + this.options.writeTimeoutMs;
    return this.queue.run(channel, () =>
      this.withStream(async () => {
        for (let attempt = 0; ; attempt++) {
          const top = await this.store.readTop(channel);
          if (!top) return;
          if (top.entry.kind === 'mark') {
            await this.store.purgeBefore(channel, top.seq);
            return;
          }
          // The mark keeps the position and its meta TTL clock (the last publication's time).
          const { offset, epoch, time, metaTtl } = top.entry;
          const mark: StoredEntry = { kind: 'mark', offset, epoch, time, metaTtl };
          try {
            const ack = await this.store.append(channel, top.seq, mark, this.left(deadline));
            this.cacheTop(channel, { seq: ack.seq, entry: mark });
            await this.store.purgeBefore(channel, ack.seq);
            return;
          } catch (err) {
            this.tops.delete(channel);
            if (!isWrongLastSequence(err)) throw err;
            await this.beforeRetry(attempt, deadline);
          }
        }
      }),
    );
  }

  channels(): Promise<string[]> {
    return this.withStream(() => this.store.channels());
  }

  /** Publications of one lineage in [from, to] still stored (for OrderedDelivery). */
  async fetch(channel: string, epoch: string, from: number, to: number): Promise<Publication[]> {
    const entries = await this.store.readEntries(channel, (err) => this.badEntry(channel, err));
    const out: Publication[] = [];
    for (const entry of entries) {
      if (entry.kind === 'pub' && entry.epoch === epoch && entry.offset >= from && entry.offset <= to) out.push(publicationOf(entry));
    }
    return out;
  }

  /** Forgets remembered positions (after a reconnect other nodes may have moved on). */
  forgetPositions(): void {
    this.tops.clear();
  }

  /** Waits for background purges and trims. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.background]);
  }

  private async appendNow(
    channel: string,
    data: JsonText,
    options: PublishOptions,
    msgId: string | undefined,
    onStored: (publication: Publication) => void,
    deadline: number,
  ): Promise<StreamPosition> {
    let top: Top | undefined | null = this.tops.get(channel) ?? null;
    for (let attempt = 0; ; attempt++) {
      if (!this.options.isConnected()) throw new RelaisError('BROKER_UNAVAILABLE', 'NATS connection lost; reconnecting');
      if (top === null) top = await withTimeout(this.store.readTop(channel), this.left(deadline), 'position read');
      const now = Date.now();
      const lineage = top && !isMetaExpired(top.entry, now) ? top.entry : undefined;
      const entry: StoredEntry & { kind: 'pub' } = {
        kind: 'pub',
        offset: lineage ? lineage.offset + 1 : 1,
        epoch: lineage ? lineage.epoch : newEpoch(),
        time: now,
        ttl: options.historyTtlMs,
        size: options.historySize,
        metaTtl: options.historyMetaTtlMs,
        ...(options.info ? { info: options.info } : {}),
        ...(options.tags ? { tags: options.tags } : {}),
        data,
      };
      let ack;
      try {
        ack = await this.store.append(channel, top?.seq ?? 0, entry, this.left(deadline), msgId);
      } catch (err) {
        this.tops.delete(channel);
        if (!isWrongLastSequence(err)) throw err;
        top = null;
        await this.beforeRetry(attempt, deadline);
        continue;
      }
      if (ack.duplicate) return this.positionOfDuplicate(ack.seq);
      this.cacheTop(channel, { seq: ack.seq, entry });
      // A new lineage replaced an expired one: its entries only take space now.
      if (top && !lineage) this.inBackground(this.store.purgeBefore(channel, ack.seq), channel, 'expired lineage purge failed');
      onStored(publicationOf(entry));
      this.maybeTrim(channel, entry);
      return { offset: entry.offset, epoch: entry.epoch };
    }
  }

  /** A repeat JetStream refused as a duplicate: the position of the message first stored. */
  private async positionOfDuplicate(seq: number): Promise<StreamPosition> {
    const first = await this.store.readAt(seq);
    if (!first || first.kind !== 'pub') {
      throw new RelaisError('INTERNAL', 'idempotent publish already made, and its publication has left history');
    }
    return { offset: first.offset, epoch: first.epoch };
  }

  private async readNow(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    let top = await this.store.readTop(channel);
    if (!top || isMetaExpired(top.entry, Date.now())) top = await this.queue.run(channel, () => this.createEpoch(channel));
    const position = positionOf(top);
    const empty = { publications: [], position };
    if (query.limit <= 0 || top.entry.kind === 'mark') return empty;
    const since = query.since;
    if (since && since.epoch !== '' && since.epoch !== position.epoch) return empty;
    // Bounds first: the common recovery case (nothing missed) needs no read of the subject.
    let low = top.entry.offset - top.entry.size;
    let high = top.entry.offset;
    if (since && !query.reverse) low = Math.max(low, since.offset);
    if (since && query.reverse) high = Math.min(high, since.offset - 1);
    if (high <= low) return empty;
    const entries = await this.store.readEntries(channel, (err) => this.badEntry(channel, err));
    let pubs = visiblePublications(entries, top.entry, Date.now()).filter((p) => p.offset > low && p.offset <= high);
    pubs = query.reverse ? pubs.slice(-query.limit).reverse() : pubs.slice(0, query.limit);
    return { publications: pubs, position };
  }

  /**
   * Gives a channel without a live position an epoch, kept as a mark at offset 0 so that
   * every node, and the first publish, sees the same one.
   */
  private async createEpoch(channel: string): Promise<Top> {
    const deadline = Date.now() + this.options.writeTimeoutMs;
    let top = await this.store.readTop(channel);
    for (let attempt = 0; ; attempt++) {
      const now = Date.now();
      if (top && !isMetaExpired(top.entry, now)) return top;
      const mark: StoredEntry = { kind: 'mark', offset: 0, epoch: newEpoch(), time: now, metaTtl: READ_CREATED_META_TTL_MS };
      try {
        const ack = await this.store.append(channel, top?.seq ?? 0, mark, this.left(deadline));
        const created = { seq: ack.seq, entry: mark };
        this.cacheTop(channel, created);
        if (top) this.inBackground(this.store.purgeBefore(channel, ack.seq), channel, 'expired lineage purge failed');
        return created;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        await this.beforeRetry(attempt, deadline);
        top = await this.store.readTop(channel);
      }
    }
  }

  /**
   * Keeps the channel's subject near its history size. Readers honour the size and TTL
   * carried by the entries, so trimming only reclaims storage: it runs in the background
   * once a quarter of the size (at least one) has been appended since this node last
   * trimmed, costing about 4/size purge requests per publish instead of one each.
   */
  private maybeTrim(channel: string, entry: StoredEntry & { kind: 'pub' }): void {
    const slack = Math.max(1, Math.ceil(entry.size / 4));
    const last = this.trimmedAt.get(channel);
    const lastOffset = last && last.epoch === entry.epoch ? last.offset : 0;
    if (entry.offset <= entry.size || entry.offset - lastOffset < slack) return;
    remember(this.trimmedAt, channel, { epoch: entry.epoch, offset: entry.offset });
    this.inBackground(this.store.trim(channel, entry.size), channel, 'history trim failed');
  }

  /**
   * Runs `op`; if the stream turns out to be gone (deleted by an operator, or lost with a
   * non-replicated server's disk), creates it again and runs `op` once more. Channels then
   * start new lineages: offsets from 1 under new epochs, which tells clients their history
   * is gone.
   */
  private async withStream<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (!isStreamMissing(err)) throw err;
      this.options.logger.warn({ err }, 'history stream missing; creating it again');
      this.streamReady ??= this.ensureStream().finally(() => {
        this.streamReady = undefined;
      });
      await this.streamReady;
      this.tops.clear();
      return op();
    }
  }

  /**
   * Another writer appended first. The first retry is immediate (the conflict means the
   * other write is already done); later ones back off a little with jitter so that nodes
   * hammering one channel spread out.
   */
  private async beforeRetry(attempt: number, deadline: number): Promise<void> {
    this.left(deadline);
    if (attempt > 0) await jitter(Math.min(2 * attempt, 20));
  }

  /** Time left before `deadline`; throws once it has passed. */
  private left(deadline: number): number {
    const ms = deadline - Date.now();
    if (ms <= 0) throw new Error('NATS JetStream write timed out');
    return ms;
  }

  private cacheTop(channel: string, top: Top): void {
    remember(this.tops, channel, top);
  }

  private badEntry(channel: string, err: unknown): void {
    this.options.logger.warn({ err, channel }, 'unreadable history entry skipped');
  }

  private inBackground(task: Promise<void>, channel: string, what: string): void {
    const tracked = task.catch((err: unknown) => this.options.logger.warn({ err, channel }, what));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }
}

/** Sets a key in a map used as a bounded cache: most recent last, oldest evicted. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= CACHE_SIZE) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}

/**
 * Channels of `persist: true` namespaces: the store is their sequencer and their history.
 *
 * Publishing: the publication is appended to the store (group commit) and only then
 * broadcast through the bus, positioned with the store's offset and epoch; the bus keeps no
 * history of it. Once stored it is acknowledged, even when the broadcast fails: it is
 * durable, the broadcast is retried for a while, and subscribers recover it from the store
 * meanwhile (a node that sees the next offset fills the gap from the store).
 *
 * Receiving: publishers on several nodes may cross on the bus (node A stored offset 5, node B
 * offset 6, B's broadcast arrives first), so each node puts a persistent channel back in
 * offset order, filling what does not come from the store, before the hub sees it.
 *
 * Reading: recovery and history read the store, whose position survives bus restarts and
 * epoch changes of the bus.
 */
import type { Logger } from 'pino';
import type { Broker, HistoryQuery, HistoryResult } from '../brokers/broker.js';
import { publicationOf, type AppendRequest, type Store, type StoredMessage } from '../stores/store.js';
import type { CircuitBreaker } from './circuit_breaker.js';
import { RelaisError } from './errors.js';
import type { JsonText } from './json.js';
import { OrderedDelivery } from './ordered_delivery.js';
import type { ClientInfo, Publication, StreamPosition } from './publication.js';
import { NodeStats } from './stats.js';

/** How long a publication waits for a predecessor published on another node before the gap is read from the store. */
const REORDER_HOLD_MS = 50;
const MAX_HELD_PER_CHANNEL = 1000;
/** A broadcast the bus refused is retried at this interval for this long, then left to recovery. */
const REBROADCAST_INTERVAL_MS = 500;
const REBROADCAST_FOR_MS = 30_000;
const MAX_REBROADCASTS = 10_000;
/** Channels of a glob looked at for the recovery of a glob stream, and per page. */
const MAX_LISTED = 10_000;
const LIST_PAGE = 500;

export interface PersistentPublish {
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
  /** Stored once per channel while the store remembers it; a repeat resolves with the first message. */
  readonly idempotencyKey?: string;
  /** The client's temporary id of an optimistic send: stored, and carried by the broadcast as tag `temp_id`. */
  readonly tempId?: string;
}

export interface PersistedPosition extends StreamPosition {
  /** True when the idempotency key was already stored: nothing new was stored. */
  readonly duplicate: boolean;
}

export interface PersistentChannelsDeps {
  readonly store: Store;
  readonly broker: Broker;
  readonly breaker: CircuitBreaker;
  readonly stats: NodeStats;
  readonly logger: Logger;
  /** Where ordered publications go (the hub). */
  readonly deliver: (channel: string, publication: Publication) => void;
}

interface PendingBroadcast {
  readonly channel: string;
  readonly message: StoredMessage;
  readonly until: number;
}

export class PersistentChannels {
  private readonly order: OrderedDelivery;
  private readonly pending: PendingBroadcast[] = [];
  private timer: NodeJS.Timeout | undefined;
  private rebroadcasting = false;

  constructor(private readonly deps: PersistentChannelsDeps) {
    this.order = new OrderedDelivery({
      holdMs: REORDER_HOLD_MS,
      maxHeld: MAX_HELD_PER_CHANNEL,
      deliver: deps.deliver,
      fetch: async (channel, epoch, from, to) => {
        const page = await deps.store.range(channel, { after: from - 1, limit: to - from + 1 });
        return page.messages.filter((m) => m.epoch === epoch).map(publicationOf);
      },
      onLoss: (channel, from, to, cause) => {
        NodeStats.inc(deps.stats.storeErrors, 'gap fill');
        deps.logger.warn({ err: cause, channel, from, to }, 'persistent channel: offsets neither received nor in the store; subscribers go through recovery');
      },
    });
  }

  /** Stores a publication, then broadcasts it; resolves with its durable position once stored. */
  async publish(channel: string, data: JsonText, input: PersistentPublish): Promise<PersistedPosition> {
    const tags = input.tempId !== undefined ? { ...input.tags, temp_id: input.tempId } : input.tags;
    const request: AppendRequest = {
      channel,
      data,
      time: Date.now(),
      ...(input.info ? { info: input.info } : {}),
      ...(tags ? { tags } : {}),
      ...(input.idempotencyKey !== undefined ? { idempotencyKey: input.idempotencyKey } : {}),
      ...(input.tempId !== undefined ? { tempId: input.tempId } : {}),
    };
    let message: StoredMessage;
    let duplicate: boolean;
    try {
      const [result] = await this.deps.store.append([request]);
      if (!result) throw new Error('store returned no result');
      ({ message, duplicate } = result);
    } catch (err) {
      NodeStats.inc(this.deps.stats.storeErrors, 'append');
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('STORE_UNAVAILABLE', 'publication not stored, retry', { cause: err });
    }
    // A duplicate is broadcast again: its first broadcast may have died with its publisher.
    // Nodes that delivered it already drop it by offset.
    await this.broadcast(channel, message);
    return { offset: message.offset, epoch: message.epoch, duplicate };
  }

  /** History of a persistent channel, with the broker's HistoryQuery contract, from the store. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    try {
      const since = query.since;
      // The position alone (a subscribe): an empty channel gets the epoch its first message will keep.
      if (query.limit === 0) return { publications: [], position: await this.deps.store.open(channel) };
      let page;
      if (since) {
        page = query.reverse
          ? await this.deps.store.page(channel, { before: since.offset, limit: query.limit })
          : await this.deps.store.range(channel, { after: since.offset, limit: query.limit });
        // Another lineage's position: nothing of it can be served (the caller compares epochs).
        if (since.epoch !== '' && since.epoch !== page.position.epoch) return { publications: [], position: page.position };
      } else {
        page = query.reverse
          ? await this.deps.store.page(channel, { limit: query.limit })
          : await this.deps.store.range(channel, { limit: query.limit });
      }
      return { publications: page.messages.map(publicationOf), position: page.position };
    } catch (err) {
      NodeStats.inc(this.deps.stats.storeErrors, 'history');
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('STORE_UNAVAILABLE', 'history unavailable in the store, retry', { cause: err });
    }
  }

  /** Stored channels matching a glob: those under its literal prefix, read in pages, at most MAX_LISTED. */
  async channels(pattern: string, matcher: (channel: string) => boolean): Promise<string[]> {
    const wildcard = pattern.search(/[*?]/);
    const prefix = wildcard < 0 ? pattern : pattern.slice(0, wildcard);
    const found: string[] = [];
    // listChannels is exclusive of its cursor: start just before the prefix.
    let after = prefix.slice(0, -1);
    try {
      for (let listed = 0; listed < MAX_LISTED; ) {
        const page = await this.deps.store.listChannels(after, LIST_PAGE);
        for (const { channel } of page) {
          if (channel > prefix && !channel.startsWith(prefix)) return found;
          if (matcher(channel)) found.push(channel);
        }
        listed += page.length;
        if (page.length < LIST_PAGE) return found;
        after = page[page.length - 1]?.channel ?? after;
      }
    } catch (err) {
      NodeStats.inc(this.deps.stats.storeErrors, 'history');
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('STORE_UNAVAILABLE', 'channel list unavailable in the store, retry', { cause: err });
    }
    return found;
  }

  /** Removes a channel's stored publications; it continues under a new epoch. */
  async clear(channel: string): Promise<StreamPosition> {
    try {
      return await this.deps.store.clear(channel);
    } catch (err) {
      NodeStats.inc(this.deps.stats.storeErrors, 'clear');
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('STORE_UNAVAILABLE', 'history removal failed in the store', { cause: err });
    }
  }

  /**
   * The node starts following a channel: what arrives is held until its position is read from
   * the store. Call before the bus subscription, then `followFrom` once it is active.
   */
  follow(channel: string): void {
    this.order.track(channel);
  }

  /** The bus subscription is active: ordering continues after the store's position. */
  async followFrom(channel: string): Promise<void> {
    try {
      this.order.start(channel, await this.deps.store.position(channel));
    } catch (err) {
      // Without a position, order holds from the first arrival; the rest is left to recovery.
      this.deps.logger.warn({ err, channel }, 'persistent channel position not read; ordering starts at the next publication');
      this.order.startAtFirstArrival(channel);
    }
  }

  unfollow(channel: string): void {
    this.order.untrack(channel);
  }

  /** Whether the node follows the channel (bus interest). */
  follows(channel: string): boolean {
    return this.order.has(channel);
  }

  /** A positioned publication of a followed channel, from the bus. */
  receive(channel: string, publication: Publication): void {
    this.order.push(channel, publication);
  }

  close(): void {
    this.order.close();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.pending.splice(0);
  }

  private async broadcast(channel: string, message: StoredMessage): Promise<void> {
    try {
      await this.deps.breaker.run(() => this.send(channel, message));
    } catch (err) {
      NodeStats.inc(this.deps.stats.brokerErrors, 'publish');
      this.deps.logger.warn({ err, channel, offset: message.offset }, 'stored publication not broadcast yet; retrying');
      this.retryLater(channel, message);
    }
  }

  private send(channel: string, message: StoredMessage): Promise<StreamPosition> {
    return this.deps.broker.publish(channel, message.data, {
      historySize: 0,
      historyTtlMs: 0,
      historyMetaTtlMs: 0,
      position: { offset: message.offset, epoch: message.epoch, time: message.time },
      ...(message.info ? { info: message.info } : {}),
      ...(message.tags ? { tags: message.tags } : {}),
    });
  }

  private retryLater(channel: string, message: StoredMessage): void {
    if (this.pending.length >= MAX_REBROADCASTS) this.pending.shift();
    this.pending.push({ channel, message, until: Date.now() + REBROADCAST_FOR_MS });
    this.timer ??= setInterval(() => void this.rebroadcast(), REBROADCAST_INTERVAL_MS);
    this.timer.unref();
  }

  /** Retries refused broadcasts in order; stops at the first refusal (the bus is still down). */
  private async rebroadcast(): Promise<void> {
    if (this.rebroadcasting) return;
    this.rebroadcasting = true;
    try {
      while (this.pending.length > 0) {
        const next = this.pending[0] as PendingBroadcast;
        if (next.until >= Date.now()) await this.send(next.channel, next.message);
        this.pending.shift();
      }
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
    } catch {
      // Still refused: the next tick tries again.
    } finally {
      this.rebroadcasting = false;
    }
  }
}

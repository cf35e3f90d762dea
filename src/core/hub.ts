import type { GlobMatcher } from './channel.js';
import { withExclusion, type ClientInfo, type Publication, type StreamPosition } from './publication.js';
import { RecentPublications } from './recent.js';
import { NodeStats } from './stats.js';

/**
 * Encodes a channel event once per node and per wire format (protocol and transport): the
 * first subscriber of a format encodes, the others reuse the same bytes. Two formats are
 * held inline (what a node serves most: one protocol over WebSocket, and SSE); more go to
 * a small map.
 */
export class FrameCache<E> {
  private k1: ((channel: string, event: E, previous: E | undefined) => unknown) | undefined;
  private v1: unknown;
  private k2: ((channel: string, event: E, previous: E | undefined) => unknown) | undefined;
  private v2: unknown;
  private more: Map<unknown, unknown> | undefined;

  constructor(
    readonly channel: string,
    readonly event: E,
    /** The channel's previous event on this node (publications: the base of a delta). */
    readonly previous?: E,
  ) {}

  get<T>(encode: (channel: string, event: E, previous: E | undefined) => T): T {
    if (this.k1 === encode) return this.v1 as T;
    if (this.k2 === encode) return this.v2 as T;
    if (this.more?.has(encode)) return this.more.get(encode) as T;
    const value = encode(this.channel, this.event, this.previous);
    if (this.k1 === undefined) {
      this.k1 = encode;
      this.v1 = value;
    } else if (this.k2 === undefined) {
      this.k2 = encode;
      this.v2 = value;
    } else {
      (this.more ??= new Map()).set(encode, value);
    }
    return value;
  }
}

/** A local subscription to a channel: a client's subscription or an SSE stream. */
export interface ChannelSubscriber {
  /** A publication, per channel in offset order. Must not throw or block. */
  onPublication(frames: FrameCache<Publication>): void;
  onJoin(frames: FrameCache<ClientInfo>): void;
  onLeave(frames: FrameCache<ClientInfo>): void;
  /**
   * The channel's stream had a gap on this node (the bus lost messages): the subscriber
   * must go back through recovery (resubscribe from its last position).
   */
  onGap(channel: string): void;
}

/**
 * The subscribers of a channel or pattern on this node. Most channels have one (a user's own
 * channel, a device's): it is held as is, and a Set (some 190 bytes with its table, per
 * channel) is made only for a second. Visiting follows a Set's rules: one removed meanwhile
 * is not called; the order is the order of adding.
 */
export class Subscribers {
  private one: ChannelSubscriber | undefined;
  private many: Set<ChannelSubscriber> | undefined;

  get size(): number {
    return this.many ? this.many.size : this.one ? 1 : 0;
  }

  has(subscriber: ChannelSubscriber): boolean {
    return this.many ? this.many.has(subscriber) : this.one === subscriber;
  }

  add(subscriber: ChannelSubscriber): void {
    if (this.many) this.many.add(subscriber);
    else if (this.one === undefined) this.one = subscriber;
    else if (this.one !== subscriber) {
      // Once a channel has had two, it keeps its Set: no churn between the two forms.
      this.many = new Set([this.one, subscriber]);
      this.one = undefined;
    }
  }

  /** Removes a subscriber; false when it was not there. */
  delete(subscriber: ChannelSubscriber): boolean {
    if (this.many) return this.many.delete(subscriber);
    if (this.one !== subscriber) return false;
    this.one = undefined;
    return true;
  }

  /** Calls `visit` for each subscriber (those added meanwhile to a Set included, as a Set's loop does). */
  each(visit: (subscriber: ChannelSubscriber) => void): void {
    if (this.many) for (const subscriber of this.many) visit(subscriber);
    else if (this.one) visit(this.one);
  }

  /** The subscribers now, for a visit during which they may unsubscribe and subscribe again. */
  list(): ChannelSubscriber[] {
    return this.many ? [...this.many] : this.one ? [this.one] : [];
  }
}

interface ChannelEntry {
  readonly subscribers: Subscribers;
  /** Last offset delivered on this node, 0 while unknown; for gap detection. */
  lastOffset: number;
  epoch: string;
  /** The publication delivered last on this node: the base of the next one's delta. */
  previous: Publication | undefined;
  /** Latest publications received live, for channels with history. */
  readonly recent: RecentPublications | undefined;
}

/** What a channel keeps in memory on a node: how many of its latest publications, and for how long. */
export interface RecentOptions {
  readonly size: number;
  readonly ttlMs: number;
}

interface PatternEntry {
  readonly matcher: GlobMatcher;
  readonly subscribers: Subscribers;
}

/**
 * Indexes this node's subscriptions and delivers broker events to them. No sockets, no
 * wire format, no I/O: the delivery path is a loop over a channel's subscribers.
 */
export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly patterns = new Map<string, PatternEntry>();
  private numSubscriptions = 0;
  /** Channels with at least one subscriber (the others linger: see Node.detach). */
  private numActive = 0;

  constructor(private readonly stats: NodeStats = new NodeStats()) {}

  /** Adds a subscriber; true when it is the channel's first on this node. */
  add(channel: string, subscriber: ChannelSubscriber, recent?: RecentOptions): boolean {
    let entry = this.channels.get(channel);
    const first = entry === undefined;
    if (!entry) {
      entry = {
        subscribers: new Subscribers(),
        lastOffset: 0,
        epoch: '',
        previous: undefined,
        recent: recent && recent.size > 0 ? new RecentPublications(recent.size, recent.ttlMs) : undefined,
      };
      this.channels.set(channel, entry);
    }
    if (!entry.subscribers.has(subscriber)) {
      if (entry.subscribers.size === 0) this.numActive++;
      entry.subscribers.add(subscriber);
      this.numSubscriptions++;
    }
    return first;
  }

  /**
   * Removes a subscriber; true when the channel has none left on this node. The channel
   * stays (its position and recent publications kept up to date) until `drop`.
   */
  remove(channel: string, subscriber: ChannelSubscriber): boolean {
    const entry = this.channels.get(channel);
    if (!entry?.subscribers.delete(subscriber)) return false;
    this.numSubscriptions--;
    if (entry.subscribers.size > 0) return false;
    this.numActive--;
    return true;
  }

  /** Forgets a channel that has no subscriber left; true when it did. */
  drop(channel: string): boolean {
    if (this.channels.get(channel)?.subscribers.size !== 0) return false;
    this.channels.delete(channel);
    return true;
  }

  addPattern(pattern: string, matcher: GlobMatcher, subscriber: ChannelSubscriber): boolean {
    let entry = this.patterns.get(pattern);
    const first = entry === undefined;
    if (!entry) {
      entry = { matcher, subscribers: new Subscribers() };
      this.patterns.set(pattern, entry);
    }
    entry.subscribers.add(subscriber);
    return first;
  }

  removePattern(pattern: string, subscriber: ChannelSubscriber): boolean {
    const entry = this.patterns.get(pattern);
    if (!entry) return false;
    entry.subscribers.delete(subscriber);
    if (entry.subscribers.size > 0) return false;
    this.patterns.delete(pattern);
    return true;
  }

  /**
   * What this node can tell from memory of a channel it follows: its position (the last
   * publication received live) and, with `since`, the publications after it. Undefined when
   * memory cannot answer (nothing received yet, or the range is not all there).
   */
  recent(channel: string, since: StreamPosition | undefined, max: number): { position: StreamPosition; publications: Publication[] } | undefined {
    const entry = this.channels.get(channel);
    if (!entry?.recent || entry.lastOffset === 0) return undefined;
    const position = { offset: entry.lastOffset, epoch: entry.epoch };
    if (!since) return { position, publications: [] };
    const publications = entry.recent.since(since, position, max);
    return publications && { position, publications };
  }

  hasPattern(pattern: string): boolean {
    return this.patterns.has(pattern);
  }

  hasSubscribers(channel: string): boolean {
    return (this.channels.get(channel)?.subscribers.size ?? 0) > 0;
  }

  subscriberCount(channel: string): number {
    return this.channels.get(channel)?.subscribers.size ?? 0;
  }

  /** Channels with local subscribers and their counts. */
  channelCounts(): IterableIterator<[string, number]> {
    const entries = this.channels.entries();
    return (function* () {
      for (const [channel, entry] of entries) if (entry.subscribers.size > 0) yield [channel, entry.subscribers.size] as [string, number];
    })();
  }

  get channelCount(): number {
    return this.numActive;
  }

  get subscriptionCount(): number {
    return this.numSubscriptions;
  }

  handlePublication(channel: string, tagged: Publication): void {
    const pub = withExclusion(tagged);
    const entry = this.channels.get(channel);
    let frames: FrameCache<Publication> | undefined;
    if (entry) {
      if (pub.offset > 0 && !this.inSequence(channel, entry, pub)) return;
      const previous = entry.previous;
      entry.previous = pub;
      if (entry.subscribers.size > 0) {
        frames = new FrameCache(channel, pub, previous);
        const cache = frames;
        entry.subscribers.each((subscriber) => subscriber.onPublication(cache));
      }
    }
    if (this.patterns.size > 0) {
      for (const pattern of this.patterns.values()) {
        if (!pattern.matcher(channel)) continue;
        const cache = (frames ??= new FrameCache(channel, pub));
        pattern.subscribers.each((subscriber) => subscriber.onPublication(cache));
      }
    }
  }

  handleJoin(channel: string, info: ClientInfo): void {
    this.presenceEvent(channel, info, 'onJoin');
  }

  handleLeave(channel: string, info: ClientInfo): void {
    this.presenceEvent(channel, info, 'onLeave');
  }

  private presenceEvent(channel: string, info: ClientInfo, kind: 'onJoin' | 'onLeave'): void {
    let frames: FrameCache<ClientInfo> | undefined;
    const entry = this.channels.get(channel);
    if (entry) {
      const cache = (frames = new FrameCache(channel, info));
      entry.subscribers.each((subscriber) => subscriber[kind](cache));
    }
    for (const pattern of this.patterns.values()) {
      if (!pattern.matcher(channel)) continue;
      const cache = (frames ??= new FrameCache(channel, info));
      pattern.subscribers.each((subscriber) => subscriber[kind](cache));
    }
  }

  /** Every subscriber of every channel goes back through recovery (after a bus outage). */
  resyncAll(): void {
    for (const [channel, entry] of this.channels) {
      entry.lastOffset = 0;
      entry.previous = undefined;
      entry.recent?.clear();
      for (const subscriber of entry.subscribers.list()) subscriber.onGap(channel);
    }
    for (const pattern of this.patterns.values()) {
      for (const subscriber of pattern.subscribers.list()) subscriber.onGap('');
    }
  }

  /**
   * Checks a positioned publication against the last one seen: drops a duplicate, and on a
   * gap sends the channel's subscribers through recovery (the missed publications are in
   * history). A new epoch restarts the sequence.
   */
  private inSequence(channel: string, entry: ChannelEntry, pub: Publication): boolean {
    if (entry.epoch !== pub.epoch || entry.lastOffset === 0) {
      entry.epoch = pub.epoch;
      entry.lastOffset = pub.offset;
      entry.recent?.push(pub, false);
      return true;
    }
    if (pub.offset <= entry.lastOffset) return false;
    if (pub.offset === entry.lastOffset + 1) {
      entry.lastOffset = pub.offset;
      entry.recent?.push(pub, true);
      return true;
    }
    entry.lastOffset = pub.offset;
    entry.previous = undefined;
    entry.recent?.clear();
    NodeStats.inc(this.stats.outOfSequence, 'channel');
    for (const subscriber of entry.subscribers.list()) subscriber.onGap(channel);
    for (const pattern of this.patterns.values()) {
      if (pattern.matcher(channel)) for (const subscriber of pattern.subscribers.list()) subscriber.onGap(channel);
    }
    return false;
  }
}

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

interface ChannelEntry {
  readonly subscribers: Set<ChannelSubscriber>;
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
  readonly subscribers: Set<ChannelSubscriber>;
}

/**
 * Indexes this node's subscriptions and delivers broker events to them. No sockets, no
 * wire format, no I/O: the delivery path is a loop over a Set.
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
        subscribers: new Set(),
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
      entry = { matcher, subscribers: new Set() };
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
        for (const subscriber of entry.subscribers) subscriber.onPublication(frames);
      }
    }
    if (this.patterns.size > 0) {
      for (const pattern of this.patterns.values()) {
        if (!pattern.matcher(channel)) continue;
        frames ??= new FrameCache(channel, pub);
        for (const subscriber of pattern.subscribers) subscriber.onPublication(frames);
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
      frames = new FrameCache(channel, info);
      for (const subscriber of entry.subscribers) subscriber[kind](frames);
    }
    for (const pattern of this.patterns.values()) {
      if (!pattern.matcher(channel)) continue;
      frames ??= new FrameCache(channel, info);
      for (const subscriber of pattern.subscribers) subscriber[kind](frames);
    }
  }

  /** Every subscriber of every channel goes back through recovery (after a bus outage). */
  resyncAll(): void {
    for (const [channel, entry] of this.channels) {
      entry.lastOffset = 0;
      entry.previous = undefined;
      entry.recent?.clear();
      for (const subscriber of [...entry.subscribers]) subscriber.onGap(channel);
    }
    for (const pattern of this.patterns.values()) {
      for (const subscriber of [...pattern.subscribers]) subscriber.onGap('');
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
    for (const subscriber of [...entry.subscribers]) subscriber.onGap(channel);
    for (const pattern of this.patterns.values()) {
      if (pattern.matcher(channel)) for (const subscriber of [...pattern.subscribers]) subscriber.onGap(channel);
    }
    return false;
  }
}

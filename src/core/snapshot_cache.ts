import type { HistoryResult } from '../brokers/broker.js';
import type { ChannelSubscriber, FrameCache, Hub, RecentOptions } from './hub.js';
import type { ClientInfo, Publication, StreamPosition } from './publication.js';
import type { NodeStats } from './stats.js';

/** A channel's current value: its position and latest publication (none when history holds none). */
export interface Snapshot {
  readonly position: StreamPosition;
  readonly publication: Publication | undefined;
  /** Whether this node answered from memory (a cache hit) rather than reading the bus. */
  readonly cached: boolean;
}

export interface SnapshotCacheDeps {
  readonly hub: Hub;
  readonly stats: NodeStats;
  /** Follows a channel on the bus for an in-process subscriber (Node.attach). */
  readonly attach: (channel: string, subscriber: ChannelSubscriber, recent?: RecentOptions) => Promise<void>;
  readonly detach: (channel: string, subscriber: ChannelSubscriber) => void;
  /** Reads the newest publication of a channel from history (limit 1, newest first). */
  readonly readLatest: (channel: string) => Promise<HistoryResult>;
  /** How long an entry is kept after its last read, ms. */
  readonly ttlMs: number;
  /** Entries kept at most; 0 turns the cache off (every read goes to the bus). */
  readonly size: number;
}

/** What a read needs to know of the channel's namespace. */
export interface SnapshotChannel {
  readonly name: string;
  /** How long a publication stays in history, ms (Infinity: forever): an older latest is gone. */
  readonly ttlMs: number;
  /** The hub's memory window of the channel, for the subscription the cache holds. */
  readonly recent: RecentOptions;
}

/**
 * One cached channel: an in-process subscriber that keeps the entry current with every live
 * publication, so that an entry is never stale while it exists (the seed's "invalidated on
 * update", across instances, without a round trip).
 */
class SnapshotEntry implements ChannelSubscriber {
  position: StreamPosition = { offset: 0, epoch: '' };
  publication: Publication | undefined;
  lastRead = Date.now();
  /** Set once the first read completed; reads wait on it meanwhile. */
  ready: Promise<void> | undefined;
  invalid = false;

  constructor(
    readonly channel: string,
    private readonly onInvalid: (entry: SnapshotEntry) => void,
  ) {}

  onPublication(frames: FrameCache<Publication>): void {
    const pub = frames.event;
    if (pub.offset === 0) return;
    if (pub.epoch === this.position.epoch && pub.offset <= this.position.offset) return;
    this.position = { offset: pub.offset, epoch: pub.epoch };
    this.publication = pub;
  }

  /** Only publications matter to a snapshot. */
  onJoin(_frames: FrameCache<ClientInfo>): void {}
  onLeave(_frames: FrameCache<ClientInfo>): void {}

  /** The bus lost publications: the entry can no longer tell what is current. */
  onGap(): void {
    this.invalid = true;
    this.onInvalid(this);
  }

  /** Takes what history said, unless a live publication already brought something newer. */
  seed(read: HistoryResult): void {
    const top = read.position;
    if (this.position.offset > 0 && this.position.epoch === top.epoch && this.position.offset >= top.offset) return;
    this.position = top;
    const latest = read.publications[0];
    this.publication = latest && latest.epoch === top.epoch && latest.offset === top.offset ? latest : undefined;
  }
}

/**
 * The snapshot cache of latest-value reads (server API `latest`): answers from the hub's
 * memory when this node already follows the channel, else from an entry that keeps following
 * it for `ttlMs` after its last read. A miss reads history once and starts the entry: it
 * subscribes first and reads after, so that no publication falls between the two.
 */
export class SnapshotCache {
  /** In least-recently-read order (a read moves its entry to the end). */
  private readonly entries = new Map<string, SnapshotEntry>();

  constructor(private readonly deps: SnapshotCacheDeps) {}

  async get(channel: SnapshotChannel, now = Date.now()): Promise<Snapshot> {
    const fromHub = this.fromHub(channel, now);
    if (fromHub) return this.hit(fromHub);
    let entry = this.entries.get(channel.name);
    if (entry && !entry.invalid && entry.ready === undefined) {
      this.touch(entry, now);
      return this.hit(this.snapshotOf(entry, channel, now, true));
    }
    this.deps.stats.snapshotMisses++;
    if (this.deps.size === 0) return this.snapshotOf(seeded(await this.deps.readLatest(channel.name)), channel, now, false);
    if (entry?.ready) {
      await entry.ready;
      return this.snapshotOf(entry, channel, now, false);
    }
    entry = this.start(channel);
    await entry.ready;
    return this.snapshotOf(entry, channel, now, false);
  }

  /** Drops entries not read for ttlMs (the node's clock calls it). */
  sweep(now = Date.now()): void {
    for (const entry of this.entries.values()) {
      if (now - entry.lastRead < this.deps.ttlMs) break;
      this.remove(entry);
    }
  }

  /** Drops every entry (shutdown). */
  clear(): void {
    for (const entry of [...this.entries.values()]) this.remove(entry);
  }

  get entryCount(): number {
    return this.entries.size;
  }

  private hit(snapshot: Snapshot): Snapshot {
    this.deps.stats.snapshotHits++;
    return snapshot;
  }

  /** The hub's memory of a channel this node follows for its subscribers: position and latest. */
  private fromHub(channel: SnapshotChannel, now: number): Snapshot | undefined {
    const top = this.deps.hub.recent(channel.name, undefined, 0)?.position;
    if (!top) return undefined;
    const latest = this.deps.hub.recent(channel.name, { offset: top.offset - 1, epoch: top.epoch }, 1)?.publications[0];
    if (!latest) return undefined;
    return { position: top, publication: fresh(latest, channel, now), cached: true };
  }

  private start(channel: SnapshotChannel): SnapshotEntry {
    const entry = new SnapshotEntry(channel.name, (e) => this.remove(e));
    this.entries.set(channel.name, entry);
    if (this.entries.size > this.deps.size) {
      const oldest = this.entries.values().next().value;
      if (oldest && oldest !== entry) this.remove(oldest);
    }
    entry.ready = (async () => {
      try {
        await this.deps.attach(channel.name, entry, channel.recent);
        entry.seed(await this.deps.readLatest(channel.name));
      } catch (err) {
        this.remove(entry);
        throw err;
      } finally {
        entry.ready = undefined;
      }
    })();
    return entry;
  }

  private touch(entry: SnapshotEntry, now: number): void {
    entry.lastRead = now;
    this.entries.delete(entry.channel);
    this.entries.set(entry.channel, entry);
  }

  private remove(entry: SnapshotEntry): void {
    entry.invalid = true;
    if (this.entries.get(entry.channel) === entry) this.entries.delete(entry.channel);
    this.deps.detach(entry.channel, entry);
  }

  private snapshotOf(value: { position: StreamPosition; publication: Publication | undefined }, channel: SnapshotChannel, now: number, cached: boolean): Snapshot {
    return { position: value.position, publication: value.publication && fresh(value.publication, channel, now), cached };
  }
}

/** A history read as a snapshot value. */
function seeded(read: HistoryResult): { position: StreamPosition; publication: Publication | undefined } {
  const latest = read.publications[0];
  return { position: read.position, publication: latest && latest.offset === read.position.offset ? latest : undefined };
}

/** The publication while history would still hold it; undefined once past the namespace's TTL. */
function fresh(pub: Publication, channel: SnapshotChannel, now: number): Publication | undefined {
  return pub.time > now - channel.ttlMs ? pub : undefined;
}

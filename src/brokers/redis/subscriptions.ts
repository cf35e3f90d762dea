/**
 * The bus channels and patterns one node listens to, and the (S)SUBSCRIBE / (S)UNSUBSCRIBE /
 * PSUBSCRIBE / PUNSUBSCRIBE commands that tell Redis. Calls made in the same event-loop turn
 * are sent as one command per kind (the node subscribes channel by channel, often hundreds
 * at once when clients connect).
 */
import type { RedisClient } from './connection.js';
import { compileGlob, type GlobMatcher } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';

type Kind = 'subscribe' | 'unsubscribe' | 'psubscribe' | 'punsubscribe';

interface WantedPattern {
  readonly match: GlobMatcher;
  /** The PSUBSCRIBE pattern; several globs may share one (`chat:?` and `chat:*`). */
  readonly busPattern: string;
}

interface PendingOp {
  readonly kind: Kind;
  readonly busChannels: readonly string[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** Channels per SUBSCRIBE command: bounded so one reply burst stays small. */
const CHUNK = 500;

/**
 * What this node wants delivered, kept apart from what Redis was told: a message of a bus
 * channel no longer wanted is dropped even when its UNSUBSCRIBE is still on the way, and a
 * reconnect restores exactly the wanted set. Commands are sent in call order on the one
 * subscriber connection, so a subscribe and an unsubscribe of a channel (or pattern) never
 * overtake each other.
 */
export class BusSubscriptions {
  /** Bus channel -> channel, for every channel this node wants. */
  private readonly wanted = new Map<string, string>();
  /** Glob -> what it is subscribed as, for every pattern this node wants. */
  private readonly patterns = new Map<string, WantedPattern>();
  private pending: PendingOp[] = [];
  private flushTimer: NodeJS.Immediate | undefined;

  /**
   * @param sharded SSUBSCRIBE one channel per command (a Cluster node only accepts shard
   *   channels of one slot per command); SUBSCRIBE many otherwise.
   */
  constructor(
    private readonly connection: () => RedisClient | undefined,
    private readonly sharded: boolean,
  ) {}

  /** The channel of a bus channel this node wants, or undefined. */
  channelOf(busChannel: string): string | undefined {
    return this.wanted.get(busChannel);
  }

  get busChannels(): string[] {
    return [...this.wanted.keys()];
  }

  /** Whether `channel` matches a pattern this node wants (compileGlob, not Redis' looser glob). */
  matchesPattern(channel: string): boolean {
    for (const pattern of this.patterns.values()) if (pattern.match(channel)) return true;
    return false;
  }

  get hasPatterns(): boolean {
    return this.patterns.size > 0;
  }

  get busPatterns(): string[] {
    return [...new Set([...this.patterns.values()].map((p) => p.busPattern))];
  }

  /**
   * Resolves once Redis confirmed every subscription. Rejects at once when the connection is
   * down (the channels are then not wanted: the node retries when its client does).
   */
  subscribe(entries: readonly (readonly [channel: string, busChannel: string])[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    if (this.connection()?.status !== 'ready') {
      return Promise.reject(new RelaisError('BROKER_UNAVAILABLE', 'redis subscriber connection is down'));
    }
    const added: string[] = [];
    for (const [channel, bus] of entries) {
      if (!this.wanted.has(bus)) added.push(bus);
      this.wanted.set(bus, channel);
    }
    return this.enqueue(
      'subscribe',
      entries.map(([, bus]) => bus),
    ).catch((err: unknown) => {
      for (const bus of added) this.wanted.delete(bus);
      throw err;
    });
  }

  /**
   * Stops delivery at once (messages already in flight are dropped by `channelOf`), then
   * tells Redis. With the connection down there is nothing to tell: its subscriptions died
   * with it and a reconnect only restores wanted channels.
   */
  unsubscribe(busChannels: readonly string[]): Promise<void> {
    for (const bus of busChannels) this.wanted.delete(bus);
    if (busChannels.length === 0 || this.connection()?.status !== 'ready') return Promise.resolve();
    return this.enqueue('unsubscribe', busChannels);
  }

  /** Like `subscribe`, for a pattern: `glob` is matched locally, `busPattern` sent to Redis. */
  subscribePattern(glob: string, busPattern: string): Promise<void> {
    if (this.connection()?.status !== 'ready') {
      return Promise.reject(new RelaisError('BROKER_UNAVAILABLE', 'redis subscriber connection is down'));
    }
    const added = !this.patterns.has(glob);
    this.patterns.set(glob, { match: compileGlob(glob), busPattern });
    return this.enqueue('psubscribe', [busPattern]).catch((err: unknown) => {
      if (added) this.patterns.delete(glob);
      throw err;
    });
  }

  /** Like `unsubscribe`; the bus pattern stays while another wanted glob shares it. */
  unsubscribePattern(glob: string): Promise<void> {
    const entry = this.patterns.get(glob);
    if (!entry) return Promise.resolve();
    this.patterns.delete(glob);
    for (const other of this.patterns.values()) if (other.busPattern === entry.busPattern) return Promise.resolve();
    if (this.connection()?.status !== 'ready') return Promise.resolve();
    return this.enqueue('punsubscribe', [entry.busPattern]);
  }

  /** Sends the given bus channels (or patterns) now, bypassing the batch (after a reconnect, at start). */
  send(kind: Kind, busChannels: readonly string[]): Promise<void> {
    const redis = this.connection();
    if (!redis) return Promise.reject(new RelaisError('BROKER_UNAVAILABLE', 'redis broker is not running'));
    const unique = [...new Set(busChannels)];
    if (unique.length === 0) return Promise.resolve();
    const sends: Promise<unknown>[] = [];
    if (kind === 'psubscribe' || kind === 'punsubscribe') {
      // Never in sharded mode: Redis has no sharded pattern subscription (the broker refuses).
      for (let i = 0; i < unique.length; i += CHUNK) {
        const chunk = unique.slice(i, i + CHUNK);
        sends.push(kind === 'psubscribe' ? redis.psubscribe(...chunk) : redis.punsubscribe(...chunk));
      }
    } else if (this.sharded) {
      for (const bus of unique) sends.push(kind === 'subscribe' ? redis.ssubscribe(bus) : redis.sunsubscribe(bus));
    } else {
      for (let i = 0; i < unique.length; i += CHUNK) {
        const chunk = unique.slice(i, i + CHUNK);
        sends.push(kind === 'subscribe' ? redis.subscribe(...chunk) : redis.unsubscribe(...chunk));
      }
    }
    return Promise.all(sends).then(() => undefined);
  }

  /** Rejects what is still queued (the broker is closing). */
  clear(err: Error): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = undefined;
    const pending = this.pending;
    this.pending = [];
    for (const op of pending) op.reject(err);
    this.wanted.clear();
    this.patterns.clear();
  }

  private enqueue(kind: Kind, busChannels: readonly string[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ kind, busChannels, resolve, reject });
      this.flushTimer ??= setImmediate(() => this.flush());
    });
  }

  /** Sends runs of same-kind calls as one command each, in call order (one connection keeps it). */
  private flush(): void {
    this.flushTimer = undefined;
    const ops = this.pending;
    this.pending = [];
    let i = 0;
    while (i < ops.length) {
      const kind = ops[i]?.kind;
      let j = i;
      const channels: string[] = [];
      while (j < ops.length && ops[j]?.kind === kind) {
        channels.push(...(ops[j]?.busChannels ?? []));
        j++;
      }
      const group = ops.slice(i, j);
      if (kind !== undefined) {
        this.send(kind, channels).then(
          () => group.forEach((op) => op.resolve()),
          (err: unknown) => group.forEach((op) => op.reject(err)),
        );
      }
      i = j;
    }
  }
}

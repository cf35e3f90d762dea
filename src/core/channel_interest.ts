import type { Logger } from 'pino';
import type { Broker } from '../brokers/broker.js';
import { compileGlob } from './channel.js';
import type { ChannelSubscriber, Hub, RecentOptions } from './hub.js';
import type { PersistentChannels } from './persistent_channels.js';

const RESOLVED = Promise.resolve();

export interface ChannelInterestDeps {
  readonly hub: Hub;
  readonly broker: Broker;
  readonly logger: Logger;
  /** How long a channel left without local subscribers is still followed, ms (client.channel_linger). */
  readonly lingerMs: number;
  /** The persistent channels' sequencer when `channel` belongs to a persistent namespace. */
  readonly persistentFor: (channel: string) => PersistentChannels | undefined;
}

/**
 * Which channels and patterns this node follows on the bus, from its local subscribers: the
 * broker subscribe and unsubscribe of one channel run one after the other, and a channel
 * left without subscribers is followed a little longer (its linger).
 */
export class ChannelInterest {
  /** Channels and patterns (`pattern\0<glob>`) the broker delivers to this node. */
  private readonly followed = new Set<string>();
  private readonly ops = new Map<string, Promise<void>>();
  /** Channels left without local subscribers, still followed until the time given. */
  private readonly lingering = new Map<string, number>();
  private closing = false;

  constructor(private readonly deps: ChannelInterestDeps) {}

  /**
   * Adds a local subscriber and makes sure the broker delivers the channel to this node.
   * Resolves once publications of the channel reach the hub.
   */
  attach(channel: string, subscriber: ChannelSubscriber, recent?: RecentOptions): Promise<void> {
    const { hub, broker } = this.deps;
    hub.add(channel, subscriber, recent);
    this.lingering.delete(channel);
    if (this.followed.has(channel)) return this.ops.get(channel) ?? RESOLVED;
    return this.queue(channel, async () => {
      if (!hub.hasSubscribers(channel) || this.followed.has(channel)) return;
      const persistent = this.deps.persistentFor(channel);
      persistent?.follow(channel);
      try {
        await broker.subscribe([channel]);
      } catch (err) {
        persistent?.unfollow(channel);
        throw err;
      }
      this.followed.add(channel);
      await persistent?.followFrom(channel);
    });
  }

  /**
   * Removes a local subscriber. The node follows a channel left without subscribers a little
   * longer: when many clients drop at once (a network blip, a deploy) and come back, they
   * recover from this node's memory instead of each reading history from the bus.
   */
  detach(channel: string, subscriber: ChannelSubscriber): void {
    if (!this.deps.hub.remove(channel, subscriber)) return;
    if (this.deps.lingerMs > 0 && !this.closing) this.lingering.set(channel, Date.now() + this.deps.lingerMs);
    else this.release(channel);
  }

  /**
   * Adds a local subscriber to every channel matching a glob and makes sure the broker
   * delivers those channels to this node. Resolves once they reach the hub.
   */
  attachPattern(pattern: string, subscriber: ChannelSubscriber): Promise<void> {
    const { hub, broker } = this.deps;
    hub.addPattern(pattern, compileGlob(pattern), subscriber);
    const key = `pattern\u0000${pattern}`;
    if (this.followed.has(key)) return this.ops.get(key) ?? RESOLVED;
    return this.queue(key, async () => {
      if (!hub.hasPattern(pattern) || this.followed.has(key)) return;
      await broker.subscribePattern(pattern);
      this.followed.add(key);
    });
  }

  detachPattern(pattern: string, subscriber: ChannelSubscriber): void {
    const { hub, broker } = this.deps;
    if (!hub.removePattern(pattern, subscriber)) return;
    const key = `pattern\u0000${pattern}`;
    this.queue(key, async () => {
      if (hub.hasPattern(pattern) || !this.followed.has(key)) return;
      this.followed.delete(key);
      await broker.unsubscribePattern(pattern);
    }).catch((err: unknown) => this.deps.logger.warn({ err, pattern }, 'broker pattern unsubscribe failed'));
  }

  /** Lets go of the channels whose linger is over; called by the node's clock. */
  tick(now: number): void {
    for (const [channel, until] of this.lingering) {
      if (until > now) continue;
      this.lingering.delete(channel);
      this.release(channel);
    }
  }

  /** The bus reconnected: persistent channels continue after the store's position (what the bus lost is read from the store). */
  resync(): void {
    for (const channel of this.followed) {
      const persistent = this.deps.persistentFor(channel);
      if (!persistent) continue;
      persistent.follow(channel);
      void persistent.followFrom(channel);
    }
  }

  /** From now on a channel left without subscribers is let go at once (the node is shutting down). */
  stopLingering(): void {
    this.closing = true;
  }

  /** Resolves once the subscribes and unsubscribes under way are done. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.ops.values()]);
  }

  /** Stops following a channel that has no local subscriber. */
  private release(channel: string): void {
    const { hub, broker } = this.deps;
    if (!hub.drop(channel)) return;
    this.queue(channel, async () => {
      if (hub.hasSubscribers(channel) || !this.followed.has(channel)) return;
      this.followed.delete(channel);
      this.deps.persistentFor(channel)?.unfollow(channel);
      await broker.unsubscribe([channel]);
    }).catch((err: unknown) => this.deps.logger.warn({ err, channel }, 'broker unsubscribe failed'));
  }

  /** Broker subscribe/unsubscribe of one channel run one after the other. */
  private queue(key: string, op: () => Promise<void>): Promise<void> {
    const previous = this.ops.get(key) ?? RESOLVED;
    const next = previous.catch(() => undefined).then(op);
    this.ops.set(key, next);
    const cleanup = (): void => {
      if (this.ops.get(key) === next) this.ops.delete(key);
    };
    next.then(cleanup, cleanup);
    return next;
  }
}

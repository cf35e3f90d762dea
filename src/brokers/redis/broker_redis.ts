import { randomBytes } from 'node:crypto';
import { compileGlob } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import type { ClientInfo, Publication, StreamPosition } from '../../core/publication.js';
import type {
  Broker,
  BrokerEventHandler,
  ControlMessage,
  HistoryQuery,
  HistoryResult,
  PublishOptions,
} from '../broker.js';
import { BusCopies } from './bus_copies.js';
import {
  decodeBusMessage,
  decodeControl,
  decodePublication,
  encodeControl,
  encodeJoinLeave,
  publicationHead,
  publicationTail,
} from './codec.js';
import {
  closeConnection,
  connectWithin,
  createConnection,
  redactUrl,
  silentLogger,
  startHealthCheck,
  unavailable,
  watchConnection,
  type RedisClient,
  type RedisLogger,
} from './connection.js';
import { RedisKeys } from './keys.js';
import { PublishQueue, type ReplicaAcks } from './publish_queue.js';
import { HISTORY, PUBLISH, PUBLISH_BATCH } from './scripts.js';
import { BusSubscriptions } from './subscriptions.js';
import { parseRedisUrl, type RedisTarget } from './target.js';

export interface RedisBrokerOptions {
  /**
   * `redis://` or `rediss://` (TLS) URL, with credentials and database if any;
   * `redis+cluster://host:port,...` for a Cluster, `redis+sentinel://host:port,.../master`
   * for a Sentinel group (target.ts).
   */
  readonly url: string;
  /** Starts every key and pub/sub channel of this deployment; nodes sharing it form one cluster. */
  readonly prefix: string;
  /** This node's id, shown in the connection names. */
  readonly nodeId: string;
  readonly logger?: RedisLogger;
  /**
   * SPUBLISH / SSUBSCRIBE (Redis 7) instead of PUBLISH / SUBSCRIBE: on a Cluster, a
   * publication then travels only within its channel's shard instead of to every node of
   * the Cluster. Every node of a deployment must use the same mode. Redis has no sharded
   * pattern subscription: `subscribePattern` then rejects with NOT_AVAILABLE. Always on
   * for a Cluster URL.
   */
  readonly shardedPubSub?: boolean;
  /**
   * Replicas that must hold a publication's history write (WAIT) before its publish
   * resolves, so that a failover to a replica loses nothing acknowledged; 0 (default): no
   * WAIT. A publish not confirmed within `replicaAckTimeoutMs` rejects with
   * BROKER_UNAVAILABLE (it may have been published: retry with the idempotency key).
   */
  readonly replicaAcks?: number;
  /** Longest WAIT for the replicas, ms; default 500. */
  readonly replicaAckTimeoutMs?: number;
  /** Longest a command may wait for its reply, ms; default 5000. */
  readonly commandTimeoutMs?: number;
  /** Longest `start` waits for Redis, ms; default 5000. */
  readonly connectTimeoutMs?: number;
  /** Interval of the pings that detect silently dead connections, ms; default 5000, 0 turns them off. */
  readonly healthCheckIntervalMs?: number;
}

/** Meta TTL of a stream created by a read, before a publish sets its namespace's own. */
const READ_CREATED_META_TTL_MS = 24 * 3_600_000;
const DEFAULT_IDEMPOTENT_RESULT_TTL_MS = 300_000;
/** Cluster: resubscription rounds closer together than this cause one resync. */
const RESYNC_COALESCE_MS = 500;

function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * The broker of multi-instance deployments: Redis Pub/Sub for fan-out, Redis Streams with
 * Lua for offsets and history.
 *
 * Contract, beyond Broker's:
 * - One bus message per publication, whatever the number of nodes and subscribers: the
 *   publish script (scripts.ts, PUBLISH) assigns the offset, appends to history and
 *   publishes in one atomic step, so every node sees a channel's offsets in order and
 *   history only holds what was published.
 * - Two connections per node: one for commands, one subscriber. Neither queues commands
 *   while Redis is unreachable: a publish then rejects at once with BROKER_UNAVAILABLE
 *   (temporary), never resolves late. A publish whose connection dropped while its reply
 *   was in flight also rejects, though it may have been published: retry with an
 *   idempotency key to be safe.
 * - Both connections reconnect by themselves. When the subscriber connection comes back,
 *   the broker resubscribes every channel, then calls `handleResync` so that the node sends
 *   its positioned subscribers through recovery (publications sent while it was away are
 *   not delivered live, but are in history). Patterns are resubscribed with the channels.
 * - Patterns (classic pub/sub only): one PSUBSCRIBE of `<prefix>.{<glob>}.pub` per pattern
 *   (keys.ts `busPattern`), whose matches are checked with compileGlob before delivery.
 *   Redis matches every PUBLISH against every pattern of every connection, a cost per
 *   publish that grows with the patterns subscribed cluster-wide. A channel both subscribed
 *   and matched is sent by Redis once per subscription, back to back: BusCopies hands only
 *   one copy to the handler. In sharded mode `subscribePattern` rejects with NOT_AVAILABLE:
 *   there is no SPSUBSCRIBE, and a pattern cannot name one shard.
 * - `start` rejects with BROKER_UNAVAILABLE when Redis does not answer within
 *   `connectTimeoutMs`.
 */
export class RedisBroker implements Broker {
  readonly kind = 'redis';
  private readonly options: RedisBrokerOptions;
  private readonly keys: RedisKeys;
  private readonly logger: RedisLogger;
  private readonly sharded: boolean;
  private readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly publishCommand: 'publish' | 'spublish';
  private readonly target: RedisTarget;
  private readonly publishQueue: PublishQueue;
  private commands: RedisClient | undefined;
  private subscriber: RedisClient | undefined;
  private handler: BrokerEventHandler | undefined;
  private readonly subscriptions: BusSubscriptions;
  private readonly copies = new BusCopies();
  private state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  private stopHealthChecks: (() => void)[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(options: RedisBrokerOptions) {
    this.target = parseRedisUrl(options.url);
    this.options = options;
    this.keys = new RedisKeys(options.prefix);
    this.logger = options.logger ?? silentLogger;
    // Classic pub/sub on a Cluster sends every message to every node of the Cluster.
    this.sharded = this.target.kind === 'cluster' || (options.shardedPubSub ?? false);
    this.publishCommand = this.sharded ? 'spublish' : 'publish';
    this.commandTimeoutMs = options.commandTimeoutMs ?? 5000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.subscriptions = new BusSubscriptions(() => this.subscriber, this.sharded);
    const acks: ReplicaAcks = { replicas: Math.max(0, Math.floor(options.replicaAcks ?? 0)), timeoutMs: Math.max(1, Math.floor(options.replicaAckTimeoutMs ?? 500)) };
    this.publishQueue = new PublishQueue(() => this.running('publish'), PUBLISH, PUBLISH_BATCH, acks, this.target.kind === 'cluster', this.publishCommand);
  }

  async start(handler: BrokerEventHandler): Promise<void> {
    if (this.state !== 'new') throw new Error(`redis broker cannot start: it is ${this.state}`);
    this.state = 'starting';
    this.handler = handler;
    const { url, nodeId, prefix } = this.options;
    const connection = { commandTimeoutMs: this.commandTimeoutMs, connectTimeoutMs: this.connectTimeoutMs };
    const commands = createConnection(this.target, { ...connection, name: `${prefix}:${nodeId}:cmd` });
    const subscriber = createConnection(this.target, { ...connection, name: `${prefix}:${nodeId}:sub`, subscriber: true });
    this.commands = commands;
    this.subscriber = subscriber;
    watchConnection(commands, 'commands', url, this.logger);
    watchConnection(subscriber, 'subscriber', url, this.logger);
    subscriber.on('message', this.onMessage);
    subscriber.on('smessage', this.onMessage);
    subscriber.on('pmessage', this.onPmessage);
    try {
      // The socket's own connect timeout covers a silent host; this deadline also covers a
      // Redis that accepts the connection but never answers the ready check.
      const deadline = this.connectTimeoutMs + 1000;
      await Promise.all([connectWithin(commands, deadline), connectWithin(subscriber, deadline)]);
      await this.subscriptions.send('subscribe', [this.keys.control]);
    } catch (err) {
      this.state = 'closed';
      commands.disconnect();
      subscriber.disconnect();
      this.commands = undefined;
      this.subscriber = undefined;
      throw new RelaisError('BROKER_UNAVAILABLE', `redis unreachable at ${redactUrl(url)}`, { cause: err });
    }
    if (this.closed()) throw new RelaisError('BROKER_UNAVAILABLE', 'redis broker closed while starting');
    const interval = this.options.healthCheckIntervalMs ?? 5000;
    if (this.target.kind === 'cluster') {
      // ioredis keeps one subscriber per master and subscribes its channels again itself
      // whenever the slots move (a failover) or a subscriber connection is replaced; then
      // the node resyncs through history.
      // ioredis announces one such round per slots refresh, several a second while a master
      // is down: one resync per RESYNC_COALESCE_MS covers them.
      subscriber.on('subscribersReady', () => {
        this.resyncTimer ??= setTimeout(() => {
          this.resyncTimer = undefined;
          this.resync();
        }, RESYNC_COALESCE_MS);
      });
      this.stopHealthChecks = [startHealthCheck(commands, interval, 'commands', this.logger)];
    } else {
      // Registered only now: the first `ready` was start's own.
      subscriber.on('ready', () => void this.resubscribe());
      this.stopHealthChecks = [
        startHealthCheck(commands, interval, 'commands', this.logger),
        startHealthCheck(subscriber, interval, 'subscriber', this.logger),
      ];
    }
    this.state = 'running';
  }

  async publish(channel: string, data: JsonText, options: PublishOptions): Promise<StreamPosition> {
    const commands = this.running('publish');
    const tail = publicationTail(data, options.info, options.tags);
    const bus = this.keys.bus(channel);
    const historySize = Math.max(0, Math.floor(options.historySize));
    if (options.position) {
      const { offset, epoch, time } = options.position;
      try {
        await commands.call(this.publishCommand, bus, publicationHead(offset, epoch, time) + tail);
      } catch (err) {
        throw unavailable('publish', err);
      }
      return { offset, epoch };
    }
    if (historySize === 0 && options.idempotencyKey === undefined) {
      // Nothing to assign or remember: a plain publish, timed by this node's clock (the
      // script times publications by the Redis clock, which their history TTL is checked on).
      try {
        await commands.call(this.publishCommand, bus, publicationHead(0, '', Date.now()) + tail);
      } catch (err) {
        throw unavailable('publish', err);
      }
      return { offset: 0, epoch: '' };
    }
    const keys = [this.keys.stream(channel), this.keys.meta(channel)];
    if (options.idempotencyKey !== undefined) keys.push(this.keys.idempotency(channel, options.idempotencyKey));
    const reply = await this.publishQueue.run(channel, bus, keys, [
        this.publishCommand,
        bus,
        tail,
        historySize,
        Math.max(0, Math.floor(options.historyTtlMs)),
        Math.floor(options.historyMetaTtlMs),
        newEpoch(),
        Math.max(1, Math.floor(options.idempotentResultTtlMs ?? DEFAULT_IDEMPOTENT_RESULT_TTL_MS)),
      ]);
    return positionOf(reply);
  }

  publishJoin(channel: string, info: ClientInfo): Promise<void> {
    return this.fanOut('join', this.keys.bus(channel), encodeJoinLeave('join', info));
  }

  publishLeave(channel: string, info: ClientInfo): Promise<void> {
    return this.fanOut('leave', this.keys.bus(channel), encodeJoinLeave('leave', info));
  }

  publishControl(message: ControlMessage): Promise<void> {
    return this.fanOut('control', this.keys.control, encodeControl(message));
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    this.running('subscribe');
    try {
      await this.subscriptions.subscribe(channels.map((channel) => [channel, this.keys.bus(channel)] as const));
    } catch (err) {
      throw unavailable('subscribe', err);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    if (this.state !== 'running') return;
    try {
      await this.subscriptions.unsubscribe(channels.map((channel) => this.keys.bus(channel)));
    } catch (err) {
      throw unavailable('unsubscribe', err);
    }
  }

  async subscribePattern(pattern: string): Promise<void> {
    if (this.sharded) {
      throw new RelaisError('NOT_AVAILABLE', 'redis sharded pub/sub has no pattern subscription: use classic pub/sub for glob subscriptions');
    }
    this.running('subscribePattern');
    try {
      await this.subscriptions.subscribePattern(pattern, this.keys.busPattern(pattern));
    } catch (err) {
      throw unavailable('subscribePattern', err);
    }
  }

  async unsubscribePattern(pattern: string): Promise<void> {
    if (this.state !== 'running') return;
    try {
      await this.subscriptions.unsubscribePattern(pattern);
    } catch (err) {
      throw unavailable('unsubscribePattern', err);
    }
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const commands = this.running('history');
    const since = query.since;
    let reply: unknown;
    try {
      reply = await HISTORY.run(
        commands,
        [this.keys.stream(channel), this.keys.meta(channel)],
        [
          newEpoch(),
          READ_CREATED_META_TTL_MS,
          Math.max(0, Math.floor(query.limit)),
          query.reverse ? '1' : '0',
          since ? Math.max(0, Math.floor(since.offset)) : '',
          since ? since.epoch : '',
        ],
      );
    } catch (err) {
      throw unavailable('history', err);
    }
    if (!Array.isArray(reply) || reply.length < 2) throw new RelaisError('INTERNAL', 'unexpected history script reply');
    const [offset, epoch, ...frames] = reply as unknown[];
    const publications: Publication[] = [];
    for (const frame of frames) {
      if (typeof frame !== 'string') throw new RelaisError('INTERNAL', 'unexpected history entry');
      publications.push(decodePublication(frame));
    }
    return { publications, position: positionOf([offset, epoch]) };
  }

  async removeHistory(channel: string): Promise<void> {
    const commands = this.running('removeHistory');
    try {
      // The meta key (offset and epoch) stays: the next publish continues the lineage.
      await commands.del(this.keys.stream(channel));
    } catch (err) {
      throw unavailable('removeHistory', err);
    }
  }

  async streamChannels(pattern: string): Promise<string[]> {
    const commands = this.running('streamChannels');
    const match = compileGlob(pattern);
    const found = new Set<string>();
    // On a Cluster every master holds its own slots' keys: each is scanned.
    const servers = 'nodes' in commands ? commands.nodes('master') : [commands];
    try {
      for (const server of servers) {
        let cursor = '0';
        do {
          const [next, keys] = await server.scan(cursor, 'MATCH', this.keys.metaScanPattern(pattern), 'COUNT', 1000);
          cursor = next;
          for (const key of keys) {
            const channel = this.keys.channelOfMeta(key);
            if (channel !== undefined && match(channel)) found.add(channel);
          }
        } while (cursor !== '0');
      }
    } catch (err) {
      throw unavailable('streamChannels', err);
    }
    return [...found];
  }

  async ping(): Promise<void> {
    const commands = this.running('ping');
    try {
      await commands.ping();
    } catch (err) {
      throw unavailable('ping', err);
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.handler = undefined;
    for (const stop of this.stopHealthChecks) stop();
    clearTimeout(this.resyncTimer);
    this.subscriptions.clear(new RelaisError('BROKER_UNAVAILABLE', 'redis broker closed'));
    const connections = [this.commands, this.subscriber].filter((c): c is RedisClient => c !== undefined);
    this.commands = undefined;
    this.subscriber = undefined;
    await Promise.all(connections.map((c) => closeConnection(c, this.commandTimeoutMs)));
  }

  /** A method, not a field read: `close` may change the state while `start` awaits. */
  private closed(): boolean {
    return this.state === 'closed';
  }

  private running(operation: string): RedisClient {
    if (this.state !== 'running' || !this.commands) {
      throw new RelaisError('BROKER_UNAVAILABLE', `redis ${operation}: the broker is ${this.state === 'closed' ? 'closed' : 'not started'}`);
    }
    return this.commands;
  }

  /**
   * Joins, leaves and control messages. In sharded mode control is a shard channel too: one
   * subscriber connection then holds only shard subscriptions, whose count Redis reports
   * apart from classic ones; mixing both, the SUNSUBSCRIBE of the last channel replies 0 and
   * ioredis leaves subscriber mode while control messages still arrive, corrupting its reply
   * queue. (On a Cluster, control then lives on the shard of its slot.)
   */
  private async fanOut(what: string, bus: string, message: string): Promise<void> {
    const commands = this.running(what);
    try {
      await commands.call(this.publishCommand, bus, message);
    } catch (err) {
      throw unavailable(what, err);
    }
  }

  /** After a reconnect of the subscriber: wanted channels and patterns back first, then the node resyncs. */
  private async resubscribe(): Promise<void> {
    const subscriber = this.subscriber;
    if (this.state !== 'running' || !subscriber) return;
    this.copies.reset();
    try {
      await Promise.all([
        this.subscriptions.send('subscribe', [this.keys.control, ...this.subscriptions.busChannels]),
        this.subscriptions.send('psubscribe', this.subscriptions.busPatterns),
      ]);
    } catch (err) {
      if (this.state !== 'running' || subscriber.status !== 'ready') return; // the next `ready` retries
      // Connected but not resubscribed: drop the link so that the next `ready` tries again,
      // rather than stay up and deaf.
      this.logger.error({ err }, 'redis resubscribe failed; reconnecting');
      subscriber.disconnect(true);
      return;
    }
    this.resync();
  }

  private resync(): void {
    if (this.state !== 'running') return;
    try {
      this.handler?.handleResync();
    } catch (err) {
      this.logger.error({ err }, 'resync handler threw');
    }
  }

  // Arrow properties: registered as ioredis listeners, which must never throw into ioredis'
  // reply parser.
  private readonly onMessage = (busChannel: string, text: string): void => this.receive(undefined, busChannel, text);
  private readonly onPmessage = (pattern: string, busChannel: string, text: string): void => this.receive(pattern, busChannel, text);

  /** One bus message, or one copy of it (`pattern` set: it came through that PSUBSCRIBE). */
  private receive(pattern: string | undefined, busChannel: string, text: string): void {
    const handler = this.handler;
    if (!handler) return;
    try {
      if (busChannel === this.keys.control) {
        // No copy of a channel's message ever comes after this one: copies are back to back.
        this.copies.reset();
        if (pattern === undefined) handler.handleControl(decodeControl(text));
        return;
      }
      if (this.copies.isHandledCopy(pattern, busChannel, text)) return;
      const channel = this.wantedChannel(busChannel);
      if (channel === undefined) return; // unsubscribed while the message was in flight, or not matched
      this.copies.markHandled();
      const message = decodeBusMessage(text);
      if (message.type === 'pub') handler.handlePublication(channel, message.publication);
      else if (message.type === 'join') handler.handleJoin(channel, message.info);
      else handler.handleLeave(channel, message.info);
    } catch (err) {
      this.logger.warn({ err, busChannel }, 'dropped a bus message that could not be handled');
    }
  }

  /** The channel of a bus channel this node wants, subscribed or matched by a wanted pattern. */
  private wantedChannel(busChannel: string): string | undefined {
    const subscribed = this.subscriptions.channelOf(busChannel);
    if (subscribed !== undefined || !this.subscriptions.hasPatterns) return subscribed;
    const channel = this.keys.channelOfBus(busChannel);
    return channel !== undefined && this.subscriptions.matchesPattern(channel) ? channel : undefined;
  }
}

/** `{offset, epoch, ...}` from a script reply. */
function positionOf(reply: unknown): StreamPosition {
  if (Array.isArray(reply)) {
    const [offset, epoch] = reply as unknown[];
    if (typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 && typeof epoch === 'string') {
      return { offset, epoch };
    }
  }
  throw new RelaisError('INTERNAL', 'unexpected reply from the redis publish script');
}

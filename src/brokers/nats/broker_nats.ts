import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { compileGlob, type GlobMatcher } from '../../core/channel.js';
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
import { ChannelHistory } from './channel_history.js';
import { decodeFanOut, encodeFanOut, type FanOutMessage } from './codec.js';
import { JetStreamHistory } from './history_store.js';
import { IdempotencyStore } from './idempotency.js';
import { natsNames, type NatsNames } from './names.js';
import { OrderedDelivery } from '../../core/ordered_delivery.js';
import { forEachLimit, silentLogger, unavailable, withTimeout, type NatsLogger } from './util.js';

export interface NatsBrokerOptions {
  /** NATS server URL(s), `nats://host:port`. */
  readonly servers: string | readonly string[];
  /** Names every subject, stream and bucket this broker uses; see names.ts. */
  readonly prefix: string;
  /** This node's id, for the connection name in NATS monitoring. */
  readonly nodeId: string;
  readonly logger?: NatsLogger;
  /** JetStream replicas of the history stream and buckets (1, 3 or 5). Default 1. */
  readonly replicas?: number;
  /** Bound on the first connection at start, ms. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Bound on one JetStream request, ms. Default 2000. */
  readonly requestTimeoutMs?: number;
  /** Bound on a whole publish, retries included, ms. Default 4000. */
  readonly publishTimeoutMs?: number;
  /**
   * Pause between reconnect attempts, ms (attempts are unbounded). Default 500: until the node
   * is back on the bus its subscribers are not sent through recovery nor new subscribes served.
   */
  readonly reconnectTimeWaitMs?: number;
  /** How long a publication waits for a missing predecessor, ms. Default 200. */
  readonly reorderHoldMs?: number;
  /**
   * Stream-wide cap on messages per channel (`max_msgs_per_subject`), a server-side safety
   * net above the largest namespace `history_size`; -1 (default) leaves trimming to the broker.
   */
  readonly maxHistorySize?: number;
  /**
   * Stream-wide `max_age`, ms: no history TTL and no position (offset, epoch) outlives it.
   * Default 30 days, the default `history_meta_ttl`.
   */
  readonly maxHistoryAgeMs?: number;
  /** Longest idempotent result kept, ms: the KV bucket's max age and the duplicate window. Default 5 min. */
  readonly idempotencyTtlMs?: number;
}

interface Settings {
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly publishTimeoutMs: number;
  readonly reconnectTimeWaitMs: number;
  readonly reorderHoldMs: number;
  readonly maxHistorySize: number;
  readonly maxHistoryAgeMs: number;
  readonly idempotencyTtlMs: number;
  readonly replicas: number;
}

interface Connection {
  readonly nc: NatsConnection;
  readonly history: ChannelHistory;
  readonly idempotency: IdempotencyStore;
}

const RESYNC_CONCURRENCY = 32;
const MAX_HELD_PER_CHANNEL = 1000;
const DRAIN_TIMEOUT_MS = 5000;
/** A channel received only through a pattern keeps its ordering state while it has traffic within this, ms. */
const PATTERN_CHANNEL_IDLE_MS = 5 * 60_000;
/** Channels received only through patterns whose ordering state is kept at most; the oldest go first. */
const MAX_PATTERN_CHANNELS = 100_000;
const PATTERN_SWEEP_INTERVAL_MS = 60_000;
const CONTROL_TYPES: ReadonlySet<string> = new Set(['disconnect', 'subscribe', 'unsubscribe', 'message', 'node', 'survey', 'survey_reply', 'emulation', 'feature']);

/**
 * The NATS broker: core NATS subjects for fan-out, JetStream for offsets and history.
 *
 * Contract (see Broker):
 * - Offsets are per channel, contiguous from 1, assigned by JetStream itself: the next
 *   offset is the last stored one plus one, written with `Nats-Expected-Last-Subject-Sequence`
 *   so that of two concurrent writers (any nodes) exactly one wins and the other re-reads
 *   and retries. A resolved publish is stored in JetStream (acknowledged); a rejected one
 *   (BROKER_UNAVAILABLE, within `publishTimeoutMs`) was not acknowledged — after an ack
 *   timeout it may still have been stored, which an idempotency key makes safe to retry.
 * - Each channel's epoch is stored in its history messages, in the same stream as the
 *   data: losing the stream loses the epoch with it, so a recreated stream gets a new one.
 * - Every node receives a channel's publications in offset order: the fan-out happens after
 *   the JetStream ack, and OrderedDelivery holds back a publication whose predecessor has
 *   not arrived yet, fetching it from history if it does not come within `reorderHoldMs`.
 * - After a reconnect, each subscribed channel's position is re-read and
 *   `handleResync` is called: publications missed while disconnected come from recovery.
 * - Join, leave and control messages are core NATS only: at most once, no history.
 * - Patterns: core NATS wildcards match whole tokens and a channel is one escaped token,
 *   so no subject narrower than `<prefix>.pub.*` holds a glob's channels. A node with any
 *   pattern subscription subscribes to that (once, whatever its number of patterns), decodes
 *   each message's subject and drops, before reading the payload, the channels that no
 *   pattern matches (compileGlob) and that are not subscribed. The cost: such a node
 *   receives the fan-out of every channel of the deployment, network and CPU in proportion
 *   to the whole cluster's traffic rather than to its own interest.
 * - Every fan-out subscription of a node (its channels and its pattern subject) is in one
 *   queue group of its own: NATS hands each message to only one of them, so a channel both
 *   subscribed and matched by a pattern arrives once, and its publications go through one
 *   ordering. Unsubscribing drains rather than drops, so that a message NATS already handed
 *   to the subscription being removed still reaches whichever interest remains.
 * - A channel first received through a pattern has no position to start ordering from: its
 *   arrivals are held for `reorderHoldMs` (a predecessor whose fan-out crossed may still
 *   come), then ordering starts at the lowest; an arrival at offset 1 starts it at once. Its
 *   ordering state is forgotten after `PATTERN_CHANNEL_IDLE_MS` without traffic, and at a
 *   reconnect (the node then resyncs its pattern subscribers through recovery).
 */
export class NatsBroker implements Broker {
  readonly kind = 'nats';
  private readonly names: NatsNames;
  private readonly servers: string[];
  private readonly logger: NatsLogger;
  private readonly settings: Settings;
  private state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  private conn: Connection | undefined;
  private handler: BrokerEventHandler | undefined;
  /** False between a disconnect and the reconnect: publishes fail fast instead of timing out. */
  private connected = false;
  private readonly subs = new Map<string, Subscription>();
  private readonly order: OrderedDelivery;
  /** Queue group of all this node's fan-out subscriptions; see the class comment. */
  private readonly queue: string;
  private readonly patterns = new Map<string, GlobMatcher>();
  /** The subscription to every channel's fan-out, while there are patterns. */
  private wide: Subscription | undefined;
  /** Channels ordered because a pattern matched them (not subscribed) -> when one last arrived. */
  private readonly patternChannels = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NatsBrokerOptions) {
    this.names = natsNames(options.prefix);
    this.queue = `${options.prefix}_node_${randomBytes(8).toString('hex')}`;
    this.servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers];
    this.logger = options.logger ?? silentLogger;
    this.settings = {
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      requestTimeoutMs: options.requestTimeoutMs ?? 2000,
      publishTimeoutMs: options.publishTimeoutMs ?? 4000,
      reconnectTimeWaitMs: options.reconnectTimeWaitMs ?? 500,
      reorderHoldMs: options.reorderHoldMs ?? 200,
      maxHistorySize: options.maxHistorySize ?? -1,
      maxHistoryAgeMs: options.maxHistoryAgeMs ?? 30 * 24 * 3_600_000,
      idempotencyTtlMs: options.idempotencyTtlMs ?? 5 * 60_000,
      replicas: options.replicas ?? 1,
    };
    this.order = new OrderedDelivery({
      holdMs: this.settings.reorderHoldMs,
      maxHeld: MAX_HELD_PER_CHANNEL,
      deliver: (channel, pub) => this.deliver(channel, pub),
      fetch: (channel, epoch, from, to) => this.fetchRange(channel, epoch, from, to),
      onLoss: (channel, from, to, cause) =>
        this.logger.warn({ err: cause, channel, from, to }, 'publications missed on this node are gone from history; subscribers go through recovery'),
    });
  }

  /** The live NATS connection, to share with NatsPresenceManager; undefined before start. */
  get connection(): NatsConnection | undefined {
    return this.conn?.nc;
  }

  async start(handler: BrokerEventHandler): Promise<void> {
    if (this.state !== 'new') throw new Error(`NatsBroker cannot start: it is ${this.state}`);
    this.state = 'starting';
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: this.servers,
        name: `relais:${this.options.nodeId}`,
        timeout: this.settings.connectTimeoutMs,
        // The client owns reconnection: unbounded attempts, subscriptions restored by it.
        maxReconnectAttempts: -1,
        reconnectTimeWait: this.settings.reconnectTimeWaitMs,
        // A half-open TCP connection is noticed within about a minute, not the default 4.
        pingInterval: 20_000,
        maxPingOut: 3,
      });
    } catch (err) {
      this.state = 'new';
      throw unavailable(err, `cannot connect to NATS at ${this.servers.join(', ')}`);
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: this.settings.requestTimeoutMs });
      const js = jetstream(nc, { timeout: this.settings.requestTimeoutMs });
      const history = new ChannelHistory(new JetStreamHistory(nc, js, jsm, this.names, this.settings.requestTimeoutMs), {
        limits: {
          maxMsgsPerSubject: this.settings.maxHistorySize > 0 ? this.settings.maxHistorySize : -1,
          maxAgeMs: this.settings.maxHistoryAgeMs,
          duplicateWindowMs: this.settings.idempotencyTtlMs,
          replicas: this.settings.replicas,
        },
        writeTimeoutMs: this.settings.publishTimeoutMs,
        logger: this.logger,
        isConnected: () => this.connected,
      });
      await history.ensureStream();
      const idempotency = new IdempotencyStore(js, this.names, this.settings.idempotencyTtlMs, this.settings.replicas, this.settings.requestTimeoutMs);
      nc.subscribe(this.names.controlSubject, { callback: (err, msg) => this.onControl(err, msg) });
      await withTimeout(nc.flush(), this.settings.requestTimeoutMs, 'NATS flush');
      if (this.state !== 'starting') throw new Error('closed while starting');
      this.conn = { nc, history, idempotency };
    } catch (err) {
      await nc.close().catch(() => undefined);
      if (this.state === 'starting') this.state = 'new';
      throw unavailable(err, 'NATS JetStream is not usable (is the server running with -js?)');
    }
    this.handler = handler;
    this.connected = true;
    this.state = 'started';
    this.sweepTimer = setInterval(() => this.sweepPatternChannels(), PATTERN_SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    void this.watchStatus(nc);
  }

  async publish(channel: string, data: JsonText, options: PublishOptions): Promise<StreamPosition> {
    const deadline = Date.now() + this.settings.publishTimeoutMs;
    const conn = this.usable();
    const key = options.idempotencyKey;
    try {
      if (key !== undefined) {
        const known = await withTimeout(conn.idempotency.lookup(channel, key), this.settings.publishTimeoutMs, 'idempotency lookup');
        if (known) return known;
      }
      const msgId = key !== undefined ? conn.idempotency.msgId(channel, key) : undefined;
      const position =
        options.historySize > 0
          ? await conn.history.append(channel, data, options, msgId, deadline, (pub) => this.fanOutStored(conn, channel, pub))
          : await this.publishLive(conn, channel, data, options, deadline);
      if (key !== undefined) {
        const ttl = Math.min(options.idempotentResultTtlMs ?? this.settings.idempotencyTtlMs, this.settings.idempotencyTtlMs);
        // The publication is out: failing to remember it only weakens dedup to the duplicate window.
        await conn.idempotency
          .remember(channel, key, position, ttl)
          .catch((err: unknown) => this.logger.warn({ err, channel }, 'idempotent publish result not stored'));
      }
      return position;
    } catch (err) {
      throw unavailable(err, 'publication not accepted by NATS JetStream, retry');
    }
  }

  publishJoin(channel: string, info: ClientInfo): Promise<void> {
    return this.fanOutNow(channel, { type: 'join', info });
  }

  publishLeave(channel: string, info: ClientInfo): Promise<void> {
    return this.fanOutNow(channel, { type: 'leave', info });
  }

  publishControl(message: ControlMessage): Promise<void> {
    try {
      this.usable().nc.publish(this.names.controlSubject, JSON.stringify(message));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(unavailable(err, 'control message not sent'));
    }
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    const conn = this.usable();
    const added: string[] = [];
    const toPosition: string[] = [];
    for (const channel of new Set(channels)) {
      if (this.subs.has(channel)) continue;
      const sub = conn.nc.subscribe(this.names.fanOutSubject(channel), {
        queue: this.queue,
        callback: (err, msg) => this.onFanOut(channel, err, msg),
      });
      this.subs.set(channel, sub);
      added.push(channel);
      // Already ordered from a pattern's arrivals, with nothing missed: restarting from a
      // position read now would drop arrivals held meanwhile.
      if (this.patternChannels.delete(channel)) continue;
      this.order.track(channel);
      toPosition.push(channel);
    }
    if (added.length === 0) return;
    try {
      // Once the server has the subscription, every later publication's fan-out reaches us;
      // the position read after that tells where ordering starts.
      await withTimeout(conn.nc.flush(), this.settings.requestTimeoutMs, 'NATS flush');
      await forEachLimit(toPosition, RESYNC_CONCURRENCY, async (channel) => {
        const position = await conn.history.position(channel);
        // A pattern wanted this channel before: what arrived meanwhile is not to be dropped.
        if (this.subs.has(channel)) this.order.start(channel, position, this.matchesPattern(channel));
      });
    } catch (err) {
      for (const channel of added) this.dropSubscription(channel);
      throw unavailable(err, 'subscription not established on NATS');
    }
  }

  unsubscribe(channels: readonly string[]): Promise<void> {
    for (const channel of channels) this.dropSubscription(channel);
    return Promise.resolve();
  }

  async subscribePattern(pattern: string): Promise<void> {
    const conn = this.usable();
    const added = !this.patterns.has(pattern);
    if (added) this.patterns.set(pattern, compileGlob(pattern));
    this.wide ??= conn.nc.subscribe(this.names.fanOutWildcard, {
      queue: this.queue,
      callback: (err, msg) => this.onWideFanOut(err, msg),
    });
    try {
      // Even when the pattern was there already: its first call may not have been flushed yet.
      await withTimeout(conn.nc.flush(), this.settings.requestTimeoutMs, 'NATS flush');
    } catch (err) {
      if (added) this.dropPattern(pattern);
      throw unavailable(err, 'pattern subscription not established on NATS');
    }
  }

  unsubscribePattern(pattern: string): Promise<void> {
    this.dropPattern(pattern);
    return Promise.resolve();
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const conn = this.usable();
    try {
      return await conn.history.read(channel, query);
    } catch (err) {
      throw unavailable(err, 'history unavailable on NATS JetStream, retry');
    }
  }

  async removeHistory(channel: string): Promise<void> {
    const conn = this.usable();
    try {
      await conn.history.remove(channel);
    } catch (err) {
      throw unavailable(err, 'history removal failed on NATS JetStream');
    }
  }

  async streamChannels(pattern: string): Promise<string[]> {
    const conn = this.usable();
    const match = compileGlob(pattern);
    try {
      return (await conn.history.channels()).filter(match);
    } catch (err) {
      throw unavailable(err, 'stream listing unavailable on NATS JetStream');
    }
  }

  /** A round trip to the server (readiness probe): rejects while NATS is unreachable. */
  async ping(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.nc.isClosed()) throw unavailable(new Error('not connected'), 'NATS not connected');
    try {
      await withTimeout(conn.nc.flush(), this.settings.requestTimeoutMs, 'NATS ping');
    } catch (err) {
      throw unavailable(err, 'NATS does not answer');
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.connected = false;
    this.order.close();
    const conn = this.conn;
    this.conn = undefined;
    this.handler = undefined;
    this.subs.clear();
    this.patterns.clear();
    this.patternChannels.clear();
    this.wide = undefined;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (!conn) return;
    await conn.history.settle();
    try {
      // Drain delivers what is already buffered, flushes our writes, then closes.
      await withTimeout(conn.nc.drain(), DRAIN_TIMEOUT_MS, 'NATS drain');
    } catch {
      await conn.nc.close().catch(() => undefined);
    }
  }

  // --- publishing ------------------------------------------------------------

  /** Without history: fan-out only, resolved once the server has it (flush). */
  /** A publication without history: fan-out only, unpositioned or positioned upstream. */
  private async publishLive(conn: Connection, channel: string, data: JsonText, options: PublishOptions, deadline: number): Promise<StreamPosition> {
    const preset = options.position;
    const publication: Publication = {
      offset: preset?.offset ?? 0,
      epoch: preset?.epoch ?? '',
      data,
      time: preset?.time ?? Date.now(),
      ...(options.info ? { info: options.info } : {}),
      ...(options.tags ? { tags: options.tags } : {}),
    };
    conn.nc.publish(this.names.fanOutSubject(channel), encodeFanOut({ type: 'pub', publication, ...(preset ? { upstream: true } : {}) }));
    await withTimeout(conn.nc.flush(), Math.max(1, deadline - Date.now()), 'NATS flush');
    return { offset: publication.offset, epoch: publication.epoch };
  }

  private fanOutNow(channel: string, message: FanOutMessage): Promise<void> {
    try {
      this.usable().nc.publish(this.names.fanOutSubject(channel), encodeFanOut(message));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(unavailable(err, 'message not sent on NATS'));
    }
  }

  /**
   * Fan-out of a stored publication. A failure here loses nothing that matters: the
   * publication is in history, and subscribers fetch it when the next one shows the gap,
   * or through recovery after the reconnect.
   */
  private fanOutStored(conn: Connection, channel: string, publication: Publication): void {
    try {
      conn.nc.publish(this.names.fanOutSubject(channel), encodeFanOut({ type: 'pub', publication }));
    } catch (err) {
      this.logger.warn({ err, channel }, 'fan-out of a stored publication failed');
    }
  }

  /** Publications of one lineage in [from, to] still stored, for OrderedDelivery. */
  private fetchRange(channel: string, epoch: string, from: number, to: number): Promise<Publication[]> {
    const conn = this.conn;
    if (!conn || !this.connected) return Promise.reject(new Error('NATS connection lost'));
    return conn.history.fetch(channel, epoch, from, to);
  }

  // --- receiving -------------------------------------------------------------

  /** A message of a subscribed channel's own subject. */
  private onFanOut(channel: string, err: Error | null, msg: Msg): void {
    if (err) {
      this.logger.warn({ err, channel }, 'NATS subscription error');
      return;
    }
    // Past an unsubscribe, a message still drained from the subscription is for the patterns.
    const subscribed = this.subs.has(channel);
    if (!subscribed && !this.matchesPattern(channel)) return;
    this.receive(channel, subscribed, msg);
  }

  /** A message of any channel, through the pattern subscription. */
  private onWideFanOut(err: Error | null, msg: Msg): void {
    if (err) {
      this.logger.warn({ err }, 'NATS pattern subscription error');
      return;
    }
    const channel = this.names.channelOfFanOutSubject(msg.subject);
    if (channel === undefined) return;
    const subscribed = this.subs.has(channel);
    if (!subscribed && !this.matchesPattern(channel)) return;
    this.receive(channel, subscribed, msg);
  }

  /** A fan-out message of a wanted channel; NATS gave it to one subscription of this node only. */
  private receive(channel: string, subscribed: boolean, msg: Msg): void {
    let message;
    try {
      message = decodeFanOut(msg.data);
    } catch (decodeErr) {
      this.logger.warn({ err: decodeErr, channel }, 'unreadable fan-out message dropped');
      return;
    }
    const handler = this.handler;
    if (!handler) return;
    try {
      if (message.type === 'pub') {
        if (message.upstream === true) {
          handler.handlePublication(channel, message.publication);
          return;
        }
        if (!subscribed && message.publication.offset > 0) this.notePatternChannel(channel);
        this.order.push(channel, message.publication);
      } else if (message.type === 'join') handler.handleJoin(channel, message.info);
      else handler.handleLeave(channel, message.info);
    } catch (handlerErr) {
      this.logger.error({ err: handlerErr, channel }, 'broker event handler threw');
    }
  }

  private matchesPattern(channel: string): boolean {
    for (const match of this.patterns.values()) if (match(channel)) return true;
    return false;
  }

  /** A positioned publication of a channel received through a pattern only: keeps it ordered. */
  private notePatternChannel(channel: string): void {
    if (!this.patternChannels.has(channel)) {
      if (this.patternChannels.size >= MAX_PATTERN_CHANNELS) {
        const oldest = this.patternChannels.keys().next();
        if (!oldest.done) this.forgetPatternChannel(oldest.value);
      }
      this.order.trackFromArrivals(channel);
    }
    this.patternChannels.set(channel, Date.now());
  }

  private forgetPatternChannel(channel: string): void {
    if (this.patternChannels.delete(channel)) this.order.untrack(channel);
  }

  private sweepPatternChannels(): void {
    const idleSince = Date.now() - PATTERN_CHANNEL_IDLE_MS;
    for (const [channel, lastArrival] of this.patternChannels) if (lastArrival < idleSince) this.forgetPatternChannel(channel);
  }

  private dropPattern(pattern: string): void {
    if (!this.patterns.delete(pattern)) return;
    for (const channel of this.patternChannels.keys()) if (!this.matchesPattern(channel)) this.forgetPatternChannel(channel);
    const wide = this.wide;
    if (this.patterns.size > 0 || !wide) return;
    this.wide = undefined;
    // Drained: what NATS handed it for a subscribed channel (one queue group) still arrives.
    wide.drain().catch(() => undefined);
  }

  private deliver(channel: string, pub: Publication): void {
    try {
      this.handler?.handlePublication(channel, pub);
    } catch (err) {
      this.logger.error({ err, channel }, 'broker event handler threw');
    }
  }

  private onControl(err: Error | null, msg: Msg): void {
    if (err) {
      this.logger.warn({ err }, 'NATS control subscription error');
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(new TextDecoder().decode(msg.data));
    } catch (parseErr) {
      this.logger.warn({ err: parseErr }, 'unreadable control message dropped');
      return;
    }
    const type = typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined;
    if (typeof type !== 'string' || !CONTROL_TYPES.has(type)) {
      this.logger.warn({ type }, 'unknown control message dropped');
      return;
    }
    try {
      this.handler?.handleControl(message as ControlMessage);
    } catch (handlerErr) {
      this.logger.error({ err: handlerErr }, 'broker event handler threw');
    }
  }

  // --- connection ------------------------------------------------------------

  private async watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const status of nc.status()) {
        switch (status.type) {
          case 'disconnect':
            this.connected = false;
            this.logger.warn({ server: status.server }, 'NATS connection lost; reconnecting');
            break;
          case 'reconnect':
            this.connected = true;
            this.logger.warn({ server: status.server }, 'NATS connection restored; resyncing subscribed channels');
            void this.resync();
            break;
          case 'ldm':
            this.logger.warn({ server: status.server }, 'NATS server entering lame duck mode');
            break;
          case 'error':
            this.logger.warn({ err: status.error }, 'NATS async error');
            break;
          default:
            break;
        }
      }
    } catch (err) {
      this.logger.error({ err }, 'NATS status stream failed');
    }
  }

  /**
   * After a reconnect: the client has already restored the core subscriptions, so
   * re-reading each channel's position gives where ordering resumes; then the node sends
   * its positioned subscribers through recovery for what was missed meanwhile.
   */
  private async resync(): Promise<void> {
    const conn = this.conn;
    if (!conn) return;
    conn.history.forgetPositions();
    // Nothing to re-read for these: they start again from their next arrivals.
    for (const channel of [...this.patternChannels.keys()]) this.forgetPatternChannel(channel);
    const channels = [...this.subs.keys()];
    for (const channel of channels) this.order.track(channel);
    await forEachLimit(channels, RESYNC_CONCURRENCY, async (channel) => {
      try {
        const position = await conn.history.position(channel);
        if (this.subs.has(channel)) this.order.start(channel, position);
      } catch (err) {
        this.logger.warn({ err, channel }, 'position not read after reconnect; ordering resumes at the next publication');
        this.order.startAtFirstArrival(channel);
      }
    });
    if (this.state !== 'started') return;
    try {
      this.handler?.handleResync();
    } catch (err) {
      this.logger.error({ err }, 'broker event handler threw');
    }
  }

  private dropSubscription(channel: string): void {
    const sub = this.subs.get(channel);
    if (!sub) return;
    this.subs.delete(channel);
    if (this.matchesPattern(channel) && this.order.has(channel)) {
      // Still wanted through a pattern: its ordering goes on (started now if its position
      // read was still in flight, which would otherwise never start it).
      this.patternChannels.set(channel, Date.now());
      this.order.startAtFirstArrival(channel);
    } else {
      this.order.untrack(channel);
    }
    // Drained, not just unsubscribed: a message NATS handed to this subscription rather than
    // to the pattern one (one queue group) still arrives, for the patterns to take.
    sub.drain().catch(() => undefined);
  }

  private usable(): Connection {
    const conn = this.conn;
    if (this.state !== 'started' || !conn) {
      throw new RelaisError('BROKER_UNAVAILABLE', this.state === 'closed' ? 'NATS broker is closed' : 'NATS broker is not started');
    }
    this.assertConnected();
    return conn;
  }

  private assertConnected(): void {
    if (!this.connected) throw new RelaisError('BROKER_UNAVAILABLE', 'NATS connection lost; reconnecting');
  }
}

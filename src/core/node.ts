import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type {
  Broker,
  BrokerEventHandler,
  ControlMessage,
  HistoryQuery,
  HistoryResult,
  NodeInfo,
  PresenceManager,
  PresenceStats,
  PublishOptions,
} from '../brokers/broker.js';
import type { RelaisConfig } from '../config/schema.js';
import type { Store } from '../stores/store.js';
import { authorize, type AsyncAccessRule, type ChannelAction, type ChannelAuthorizer } from './access.js';
import type { ConnectionClaims, TokenVerifier } from './auth.js';
import type { ClientProxies } from './client_proxy.js';
import { CircuitBreaker } from './circuit_breaker.js';
import { ClusterView } from './cluster.js';
import { ChannelResolver, historyRetention, keepsHistory, memoryWindow, type ResolvedChannel, type ResolvedPattern } from './channel.js';
import { Disconnects, RelaisError, type Disconnect } from './errors.js';
import { Hub, type ChannelSubscriber, type RecentOptions } from './hub.js';
import { jsonByteLength, type JsonText } from './json.js';
import { EXCLUDE_CLIENT_TAG, withExclusion, type ClientInfo, type Publication, type StreamPosition } from './publication.js';
import { ChannelInterest } from './channel_interest.js';
import { PersistentChannels } from './persistent_channels.js';
import { mergeRecovery } from './recovery.js';
import { mergeLatest } from './latest.js';
import { SnapshotCache, type Snapshot } from './snapshot_cache.js';
import { LocalUserRateLimiter, type UserRateLimiter } from './rate_limit.js';
import type { RpcHandler } from './rpc.js';
import { NodeStats } from './stats.js';
import type { StreamSubscriber } from './stream_subscriber.js';

export type { ConnectionGate, SubscriptionGate, ConnectionObserver, SubscriptionObserver, JoinRequest, JoinResult, NodeClient, PublishInput, PublishNext, PublishStep } from './node_api.js';
import type { ConnectionGate, SubscriptionGate, ConnectionObserver, SubscriptionObserver, JoinRequest, JoinResult, NodeClient, PublishInput, PublishNext, PublishStep } from './node_api.js';

export interface NodeDeps {
  readonly config: Readonly<RelaisConfig>;
  readonly broker: Broker;
  readonly presence: PresenceManager;
  readonly tokens: TokenVerifier;
  readonly logger: Logger;
  readonly version: string;
  readonly rpc?: RpcHandler;
  /** The app backend's hooks on client events (connect, refresh, subscribe, sub_refresh, publish). */
  readonly proxies?: ClientProxies;
  /** This node's id; a random UUID by default. */
  readonly id?: string;
  /** Per-user rate limit; per node by default, shared through the bus where it can be. */
  readonly userLimiter?: UserRateLimiter;
  /** The durable store: history and sequencing of persistent namespaces (and features' records). */
  readonly store?: Store;
  /** The checks of asynchronous access rules (`members`); a rule without one refuses everyone. */
  readonly authorizers?: Readonly<Partial<Record<AsyncAccessRule, ChannelAuthorizer>>>;
}


function internalSet(set: string): string {
  if (!set.startsWith('$') || set.startsWith('$conn:')) throw new Error(`cluster set "${set}" must start with $ (and not $conn:)`);
  return set;
}


/**
 * The composition of one Relais node: hub, broker, presence, token verification and the
 * clients connected here. Transports and the server API call it; it never touches sockets.
 */
export class Node implements BrokerEventHandler {
  readonly id: string;
  readonly name: string;
  readonly config: Readonly<RelaisConfig>;
  readonly channels: ChannelResolver;
  readonly broker: Broker;
  readonly presence: PresenceManager;
  readonly tokens: TokenVerifier;
  readonly logger: Logger;
  readonly version: string;
  readonly rpc: RpcHandler | undefined;
  readonly proxies: ClientProxies | undefined;
  readonly stats = new NodeStats();
  readonly hub = new Hub(this.stats);
  readonly userLimiter: UserRateLimiter;
  readonly breaker: CircuitBreaker;
  private readonly authorizers: Readonly<Partial<Record<AsyncAccessRule, ChannelAuthorizer>>>;
  /** Persistent namespaces' channels; undefined without a store. */
  private readonly persistent: PersistentChannels | undefined;
  private readonly interest: ChannelInterest;
  private readonly snapshots: SnapshotCache;
  private readonly startedAt = Date.now();
  private readonly clients = new Map<string, NodeClient>();
  /** Connections by user: the connection itself for a user with one (the common case), else a Set. */
  private readonly users = new Map<string, NodeClient | Set<NodeClient>>();
  private readonly cluster: ClusterView;
  private readonly timers: NodeJS.Timeout[] = [];
  private closing = false;
  private readonly connectionObservers: ConnectionObserver[] = [];
  private readonly connectionGates: ConnectionGate[] = [];
  private readonly subscriptionGates: SubscriptionGate[] = [];
  private readonly subscriptionObservers: SubscriptionObserver[] = [];
  private readonly publishSteps = new Map<string, PublishStep>();
  private readonly featureTopics = new Map<string, (data: JsonText) => void>();
  private emulationHandler: ((session: string, data: string) => void) | undefined;

  constructor(deps: NodeDeps) {
    this.id = deps.id ?? randomUUID();
    this.config = deps.config;
    this.broker = deps.broker;
    this.presence = deps.presence;
    this.tokens = deps.tokens;
    this.logger = deps.logger;
    this.version = deps.version;
    this.rpc = deps.rpc;
    this.proxies = deps.proxies;
    this.authorizers = deps.authorizers ?? {};
    this.name = deps.config.node_name ?? `${hostname()}:${deps.config.port}`;
    this.channels = new ChannelResolver(deps.config);
    this.cluster = new ClusterView({
      id: this.id,
      logger: this.logger,
      selfInfo: () => this.selfInfo(),
      channelCounts: () => this.hub.channelCounts(),
      control: (message) => this.control(message),
    });
    this.userLimiter = deps.userLimiter ?? new LocalUserRateLimiter(deps.config.rate_limit.user);
    this.breaker = new CircuitBreaker({
      failureThreshold: deps.config.circuit_breaker.failure_threshold,
      openMs: deps.config.circuit_breaker.open_duration,
      onStateChange: (state) =>
        state === 'closed' ? this.logger.info('message bus circuit closed: publishing again') : this.logger.warn({ state }, 'message bus circuit breaker'),
    });
    this.persistent = deps.store
      ? new PersistentChannels({
          store: deps.store,
          broker: deps.broker,
          breaker: this.breaker,
          stats: this.stats,
          logger: deps.logger,
          deliver: (channel, pub) => this.hub.handlePublication(channel, pub),
        })
      : undefined;
    this.interest = new ChannelInterest({
      hub: this.hub,
      broker: this.broker,
      logger: this.logger,
      lingerMs: deps.config.client.channel_linger,
      persistentFor: (channel) => this.persistentFor(channel),
    });
    this.snapshots = new SnapshotCache({
      hub: this.hub,
      stats: this.stats,
      attach: (channel, subscriber, recent) => this.attach(channel, subscriber, recent),
      detach: (channel, subscriber) => this.detach(channel, subscriber),
      readLatest: (channel) => this.readHistory(this.channels.resolve(channel), { limit: 1, reverse: true }),
      ttlMs: deps.config.latest_cache.ttl,
      size: deps.config.latest_cache.size,
    });
  }

  async start(): Promise<void> {
    await this.broker.start(this);
    this.every(1000, () => this.tick());
    this.every(Math.max(1000, Math.floor(this.config.presence_ttl / 3)), () => void this.refreshPresence());
    if (this.distributed) {
      this.every(this.cluster.heartbeatMs, () => void this.cluster.heartbeat());
      await this.cluster.heartbeat();
    }
  }

  /** Disconnects every client with `disconnect`, then closes the broker and presence. */
  async shutdown(disconnect: Disconnect): Promise<void> {
    this.closing = true;
    this.interest.stopLingering();
    for (const t of this.timers) clearInterval(t);
    this.snapshots.clear();
    for (const client of [...this.clients.values()]) client.disconnect(disconnect);
    await this.interest.settled();
    this.persistent?.close();
    await this.broker.close();
    await this.presence.close();
    await this.userLimiter.close?.();
  }

  get isClosing(): boolean {
    return this.closing;
  }

  // --- clients -------------------------------------------------------------

  registerClient(client: NodeClient): void {
    const known = this.clients.get(client.id) === client;
    this.clients.set(client.id, client);
    if (!known) this.notify((o) => o.connected(client.info));
    const current = this.users.get(client.user);
    if (current === undefined) this.users.set(client.user, client);
    else if (current instanceof Set) current.add(client);
    else if (current !== client) this.users.set(client.user, new Set([current, client]));
  }

  /** A client is gone; `disconnect` says why (a transport closed by the other side: connection closed). */
  unregisterClient(client: NodeClient, disconnect: Disconnect = Disconnects.connectionClosed): void {
    if (this.clients.get(client.id) === client) {
      this.clients.delete(client.id);
      this.notify((o) => o.disconnected(client.info, disconnect));
    }
    const current = this.users.get(client.user);
    if (current === client) {
      this.users.delete(client.user);
    } else if (current instanceof Set) {
      current.delete(client);
      if (current.size === 1) this.users.set(client.user, current.values().next().value as NodeClient);
    }
  }

  /** Adds an observer of this node's connections (see ConnectionObserver). */
  observeConnections(observer: ConnectionObserver): void {
    this.connectionObservers.push(observer);
  }

  /** Adds an observer of this node's client subscriptions (see SubscriptionObserver). */
  observeSubscriptions(observer: SubscriptionObserver): void {
    this.subscriptionObservers.push(observer);
  }

  /** A client subscription went live (called by the client's session). */
  subscriptionStarted(channel: string, info: ClientInfo): void {
    for (const observer of this.subscriptionObservers) this.guarded(() => observer.subscribed(channel, info));
  }

  /** A subscription reported by subscriptionStarted ended. */
  subscriptionEnded(channel: string, info: ClientInfo): void {
    for (const observer of this.subscriptionObservers) this.guarded(() => observer.unsubscribed(channel, info));
  }

  private guarded(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.logger.error({ err }, 'subscription observer failed');
    }
  }

  /** Adds a check that every connect and token refresh passes (see ConnectionGate). */
  useConnectionGate(gate: ConnectionGate): void {
    this.connectionGates.push(gate);
  }

  /** The disconnect refusing a connection with these claims, or undefined when every gate admits it. */
  connectionRefusal(claims: ConnectionClaims): Disconnect | undefined {
    for (const gate of this.connectionGates) {
      const refusal = gate.refusal(claims);
      if (refusal) return refusal;
    }
    return undefined;
  }

  /** Adds a check that every subscription token passes, at subscribe and sub_refresh (see SubscriptionGate). */
  useSubscriptionGate(gate: SubscriptionGate): void {
    this.subscriptionGates.push(gate);
  }

  /** Why a subscription token is refused, or undefined when every gate admits it. */
  subscriptionRefusal(user: string, channel: string, issuedAt: number | undefined): string | undefined {
    for (const gate of this.subscriptionGates) {
      const refusal = gate.refusal(user, channel, issuedAt);
      if (refusal) return refusal;
    }
    return undefined;
  }

  /** Asks this node's connections of `user` to end their token subscription to `channel` if the gates now refuse it. */
  recheckSubscriptions(user: string, channel: string): void {
    for (const client of this.targets(user, undefined)) client.recheckSubscription?.(channel);
  }

  /** Disconnects this node's connections that `match` selects; resolves with how many. */
  disconnectMatching(match: (client: NodeClient) => boolean, disconnect: Disconnect): number {
    let count = 0;
    for (const client of [...this.clients.values()]) {
      if (!match(client)) continue;
      client.disconnect(disconnect);
      count++;
    }
    return count;
  }

  /** A connected client sent a command: tells the observers its user is active. */
  clientActive(info: ClientInfo): void {
    if (this.connectionObservers.length === 0) return;
    const now = Date.now();
    this.notify((o) => o.active(info, now));
  }

  private notify(call: (observer: ConnectionObserver) => void): void {
    for (const observer of this.connectionObservers) {
      try {
        call(observer);
      } catch (err) {
        this.logger.error({ err }, 'connection observer failed');
      }
    }
  }

  /** The connections of a user on this node. */
  private connectionsOf(user: string): NodeClient[] {
    const current = this.users.get(user);
    if (current === undefined) return [];
    return current instanceof Set ? [...current] : [current];
  }

  /** Whether other nodes share this node's bus (anything but the memory broker). */
  get distributed(): boolean {
    return this.broker.kind !== 'memory';
  }

  /** The presence set counting a user's connections across the cluster (`$` keeps it apart from channels). */
  userConnectionsChannel(user: string): string {
    return `$conn:${user}`;
  }

  /** Counts a connection of `info.user` cluster-wide; resolves with the user's count, this one included. */
  async claimUserConnection(info: ClientInfo): Promise<number> {
    const channel = this.userConnectionsChannel(info.user);
    await this.viaBus(() => this.presence.add(channel, info, this.config.presence_ttl), 'presence');
    return (await this.viaBus(() => this.presence.stats(channel), 'presence')).numClients;
  }

  releaseUserConnection(info: ClientInfo): void {
    this.presence
      .remove(this.userConnectionsChannel(info.user), info.client)
      .catch((err: unknown) => this.logger.warn({ err }, 'connection count not released; the entry will expire'));
  }

  /** Connections of a user on this node. */
  userConnectionCount(user: string): number {
    const current = this.users.get(user);
    return current === undefined ? 0 : current instanceof Set ? current.size : 1;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get userCount(): number {
    return this.users.size;
  }

  // --- channel interest ----------------------------------------------------

  /**
   * Adds a local subscriber and makes sure the broker delivers the channel to this node.
   * Resolves once publications of the channel reach the hub.
   */
  attach(channel: string, subscriber: ChannelSubscriber, recent?: RecentOptions): Promise<void> {
    return this.interest.attach(channel, subscriber, recent);
  }

  /** Removes a local subscriber (the channel lingers: see ChannelInterest.detach). */
  detach(channel: string, subscriber: ChannelSubscriber): void {
    this.interest.detach(channel, subscriber);
  }

  /**
   * Adds a local subscriber to every channel matching a glob and makes sure the broker
   * delivers those channels to this node. Resolves once they reach the hub.
   */
  attachPattern(pattern: string, subscriber: ChannelSubscriber): Promise<void> {
    return this.interest.attachPattern(pattern, subscriber);
  }

  detachPattern(pattern: string, subscriber: ChannelSubscriber): void {
    this.interest.detachPattern(pattern, subscriber);
  }

  /** The persistent channels' sequencer when `channel` belongs to a persistent namespace. */
  private persistentFor(channel: string): PersistentChannels | undefined {
    return this.persistent && this.channels.optionsOf(channel)?.persist ? this.persistent : undefined;
  }

  /**
   * Joins `subscriber` to a channel's stream: attaches it (buffering), reads history, and
   * hands `onJoined` what it must deliver before live publications — the missed ones when
   * it recovers, and what arrived during the read — with no gap and no duplicate.
   * `onJoined` runs synchronously with the switch to live delivery: whatever it writes
   * (the subscribe reply) goes out before any live publication.
   */
  async joinStream(
    channel: ResolvedChannel,
    subscriber: StreamSubscriber,
    request: JoinRequest,
    onJoined: (result: JoinResult) => void,
  ): Promise<void> {
    const history = keepsHistory(channel.options);
    const max = channel.options.recovery_max_publications;
    const recent = history ? memoryWindow(channel.options) : undefined;
    try {
      await this.attach(channel.name, subscriber, recent);
    } catch (err) {
      this.detach(channel.name, subscriber);
      throw new RelaisError('BROKER_UNAVAILABLE', 'cannot subscribe on the message bus', { cause: err });
    }
    if (!history) {
      onJoined({ recovered: false, publications: subscriber.goLive().map((f) => f.event) });
      return;
    }
    if (channel.options.force_recovery_mode === 'cache') {
      await this.joinLatest(channel, subscriber, request, onJoined);
      return;
    }
    // A channel this node already follows answers from memory, in this very tick: what
    // arrived while attaching is in that memory too (the hub records before it delivers).
    const onJoin = request.recover ? 0 : channel.options.history_on_join;
    const since = request.recover ? request.since : onJoin > 0 ? this.latestFrom(channel.name, onJoin) : undefined;
    const fromMemory = since === null ? undefined : this.hub.recent(channel.name, since, max);
    if (fromMemory && !subscriber.sawGap) {
      const unpositioned = subscriber
        .goLive()
        .map((f) => f.event)
        .filter((p) => p.offset === 0);
      onJoined({ position: fromMemory.position, recovered: request.recover && since !== undefined, publications: [...fromMemory.publications, ...unpositioned] });
      return;
    }
    let result: JoinResult;
    try {
      const query: HistoryQuery =
        request.recover && request.since ? { since: request.since, limit: max + 1 } : onJoin > 0 ? { limit: onJoin, reverse: true } : { limit: 0 };
      const read = await this.readHistory(channel, query);
      if (subscriber.sawGap) throw new RelaisError('BROKER_UNAVAILABLE', 'stream interrupted during subscribe, retry');
      // From here to onJoined nothing awaits: no publication can slip between.
      const outcome = mergeRecovery({
        recover: request.recover,
        ...(request.since ? { since: request.since } : {}),
        maxPublications: max,
        history: read,
        buffered: subscriber.goLive().map((f) => f.event),
        ...(onJoin > 0 ? { latest: [...read.publications].reverse() } : {}),
      });
      if (!outcome.ok) throw new RelaisError('BROKER_UNAVAILABLE', `${outcome.reason}, retry`);
      if (request.recover && !outcome.recovered && request.rejectUnrecovered) throw new RelaisError('UNRECOVERABLE_POSITION');
      result = { position: outcome.position, recovered: outcome.recovered, publications: outcome.publications };
    } catch (err) {
      this.detach(channel.name, subscriber);
      throw err;
    }
    onJoined(result);
  }

  /**
   * joinStream in cache recovery mode: the channel's latest publication first (from memory when
   * this node follows the channel, else read from history), then the live stream; a resume
   * replays what it missed when history holds it all (see mergeLatest).
   */
  private async joinLatest(
    channel: ResolvedChannel,
    subscriber: StreamSubscriber,
    request: JoinRequest,
    onJoined: (result: JoinResult) => void,
  ): Promise<void> {
    const max = channel.options.recovery_max_publications;
    const since = request.recover ? (request.since ?? { offset: 0, epoch: '' }) : undefined;
    const resume = request.resume === true && since !== undefined;
    const window = resume ? memoryWindow(channel.options).size : 1;
    // Memory answers the latest, or a resume it holds all of, in this very tick (see joinStream).
    const top = this.hub.recent(channel.name, undefined, 0)?.position;
    if (top && !subscriber.sawGap) {
      const resumable = resume && since && (since.epoch === '' || since.epoch === top.epoch) && since.offset <= top.offset;
      const fromMemory = resumable ? this.hub.recent(channel.name, since, max) : this.hub.recent(channel.name, { offset: top.offset - 1, epoch: top.epoch }, 1);
      if (fromMemory) {
        const unpositioned = subscriber
          .goLive()
          .map((f) => f.event)
          .filter((p) => p.offset === 0);
        const latest = fromMemory.publications;
        const recovered = since !== undefined && (since.epoch === '' || since.epoch === top.epoch) && (resumable === true || latest.length > 0);
        onJoined({ position: fromMemory.position, recovered, publications: [...latest, ...unpositioned] });
        return;
      }
    }
    let result: JoinResult;
    try {
      const read = await this.readHistory(channel, { limit: Math.max(1, Math.min(window, max)), reverse: true });
      if (subscriber.sawGap) throw new RelaisError('BROKER_UNAVAILABLE', 'stream interrupted during subscribe, retry');
      // From here to onJoined nothing awaits: no publication can slip between.
      const outcome = mergeLatest({ ...(since ? { since } : {}), resume, history: read, buffered: subscriber.goLive().map((f) => f.event) });
      if (!outcome.ok) throw new RelaisError('BROKER_UNAVAILABLE', `${outcome.reason}, retry`);
      result = { position: outcome.position, recovered: outcome.recovered, publications: outcome.publications };
    } catch (err) {
      this.detach(channel.name, subscriber);
      throw err;
    }
    onJoined(result);
  }

  /**
   * The position `count` publications before the top of a channel this node follows, for
   * history_on_join from memory; null when memory knows no top (history is read instead).
   */
  private latestFrom(channel: string, count: number): StreamPosition | null {
    const top = this.hub.recent(channel, undefined, 0)?.position;
    if (!top) return null;
    return { offset: Math.max(0, top.offset - count), epoch: top.epoch };
  }

  // --- operations ----------------------------------------------------------

  /**
   * Whether a client's `user` may subscribe to (and so read the history and presence of) or
   * publish in `channel`, by its namespace's rule. Rejects with FORBIDDEN when not.
   */
  authorize(action: ChannelAction, user: string, channel: ResolvedChannel): Promise<void> {
    return authorize(this.authorizers, action, user, channel);
  }

  /** Runs `step` for every publish to a channel of `namespace` ('' for the default namespace); one step per namespace. */
  usePublishStep(namespace: string, step: PublishStep): void {
    if (this.publishSteps.has(namespace)) throw new Error(`namespace "${namespace}" already has a publish step`);
    this.publishSteps.set(namespace, step);
  }

  async publish(channel: ResolvedChannel, data: JsonText, input: PublishInput = {}): Promise<StreamPosition> {
    if (jsonByteLength(data) > this.config.client.max_publication_bytes) {
      throw new RelaisError('LIMIT_EXCEEDED', `publication data larger than ${this.config.client.max_publication_bytes} bytes`);
    }
    // The exclusion rides as a tag: every bus and store carries tags already (see withExclusion).
    if (input.excludeClient !== undefined) input = { ...input, tags: { ...input.tags, [EXCLUDE_CLIENT_TAG]: input.excludeClient } };
    const step = this.publishSteps.size > 0 ? this.publishSteps.get(channel.namespace) : undefined;
    if (step) return step.publish(channel, data, input, this.publishNext);
    return this.publishNext(channel, data, input);
  }

  /** The default path of a publish (see PublishNext). */
  private readonly publishNext: PublishNext = async (channel, data, input) => {
    const options = channel.options;
    if (options.persist) {
      const started = performance.now();
      const position = await this.requirePersistent(channel).publish(channel.name, data, input);
      this.stats.observePublishLatency(performance.now() - started);
      return position;
    }
    const history = keepsHistory(options) && !input.skipHistory;
    const publishOptions: PublishOptions = {
      historySize: history ? options.history_size : 0,
      historyTtlMs: history ? options.history_ttl : 0,
      historyMetaTtlMs: options.history_meta_ttl,
      ...(input.info ? { info: input.info } : {}),
      ...(input.tags ? { tags: input.tags } : {}),
      ...(input.idempotencyKey !== undefined
        ? { idempotencyKey: input.idempotencyKey, idempotentResultTtlMs: this.config.idempotency_ttl }
        : {}),
    };
    const started = performance.now();
    try {
      const position = await this.breaker.run(() => this.broker.publish(channel.name, data, publishOptions));
      this.stats.observePublishLatency(performance.now() - started);
      return position;
    } catch (err) {
      NodeStats.inc(this.stats.brokerErrors, 'publish');
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('BROKER_UNAVAILABLE', 'publication not accepted by the message bus, retry', { cause: err });
    }
  };

  async history(channel: ResolvedChannel, query: HistoryQuery): Promise<HistoryResult> {
    if (!keepsHistory(channel.options)) throw new RelaisError('NOT_AVAILABLE', `channel "${channel.name}" keeps no history`);
    return this.readHistory(channel, query);
  }

  /**
   * A channel's current value: its latest publication (none when history holds none, or only
   * past its TTL) and position, from this node's memory when it can (see SnapshotCache).
   */
  async latest(channel: ResolvedChannel): Promise<Snapshot> {
    if (!keepsHistory(channel.options)) throw new RelaisError('NOT_AVAILABLE', `channel "${channel.name}" keeps no history, so no latest value`);
    return this.snapshots.get({ name: channel.name, ttlMs: historyRetention(channel.options).ttlMs, recent: memoryWindow(channel.options) });
  }

  /** Removes a channel's history: from the bus, or for a persistent channel from the store (a new epoch). */
  async removeHistory(channel: ResolvedChannel): Promise<void> {
    if (channel.options.persist) {
      await this.requirePersistent(channel).clear(channel.name);
      return;
    }
    try {
      await this.broker.removeHistory(channel.name);
    } catch (err) {
      throw new RelaisError('BROKER_UNAVAILABLE', 'history removal failed on the message bus', { cause: err });
    }
  }

  private requirePersistent(channel: ResolvedChannel): PersistentChannels {
    if (!this.persistent) throw new RelaisError('NOT_AVAILABLE', `channel "${channel.name}" is persistent but Relais runs without a store`);
    return this.persistent;
  }

  private async readHistory(channel: ResolvedChannel, query: HistoryQuery): Promise<HistoryResult> {
    const result = await this.readHistoryTagged(channel, query);
    if (!result.publications.some((p) => p.tags?.[EXCLUDE_CLIENT_TAG] !== undefined)) return result;
    return { ...result, publications: result.publications.map(withExclusion) };
  }

  private async readHistoryTagged(channel: ResolvedChannel, query: HistoryQuery): Promise<HistoryResult> {
    if (channel.options.persist) return this.requirePersistent(channel).history(channel.name, query);
    try {
      return await this.broker.history(channel.name, query);
    } catch (err) {
      NodeStats.inc(this.stats.brokerErrors, 'history');
      throw new RelaisError('BROKER_UNAVAILABLE', 'history unavailable on the message bus, retry', { cause: err });
    }
  }

  async presenceOf(channel: ResolvedChannel): Promise<Record<string, ClientInfo>> {
    if (!channel.options.presence) throw new RelaisError('NOT_AVAILABLE', `channel "${channel.name}" has no presence`);
    return this.viaBus(() => this.presence.get(channel.name), 'presence');
  }

  async presenceStats(channel: ResolvedChannel): Promise<PresenceStats> {
    if (!channel.options.presence) throw new RelaisError('NOT_AVAILABLE', `channel "${channel.name}" has no presence`);
    return this.viaBus(() => this.presence.stats(channel.name), 'presence stats');
  }

  /**
   * Adds a presence entry and publishes the join, each where the channel's options want it
   * (a subscription's options may differ from its namespace's: the subscribe proxy's override).
   */
  async enterChannel(channel: ResolvedChannel, info: ClientInfo): Promise<void> {
    if (channel.options.presence) await this.viaBus(() => this.presence.add(channel.name, info, this.config.presence_ttl), 'presence');
    if (channel.options.join_leave) await this.viaBus(() => this.broker.publishJoin(channel.name, info), 'join');
  }

  /** Removes a presence entry and publishes the leave, as `enterChannel` added them; failures are logged, not thrown. */
  leaveChannel(channel: ResolvedChannel, info: ClientInfo): void {
    if (!channel.options.presence && !channel.options.join_leave) return;
    const work = async (): Promise<void> => {
      if (channel.options.presence) await this.presence.remove(channel.name, info.client);
      if (channel.options.join_leave) await this.broker.publishLeave(channel.name, info);
    };
    work().catch((err: unknown) => this.logger.warn({ err, channel: channel.name }, 'presence removal failed; the entry will expire'));
  }

  /** Sends a control message to every node (this one included). */
  async control(message: ControlMessage): Promise<void> {
    await this.viaBus(() => this.broker.publishControl(message), 'control');
  }

  /**
   * Receives the `feature` control messages of `topic` (sent with `control`) on this node, in
   * the order the bus delivers them; at most once, and none while the bus is down. One
   * handler per topic; it must not throw.
   */
  onFeatureMessage(topic: string, handler: (data: JsonText) => void): void {
    if (this.featureTopics.has(topic)) throw new Error(`feature topic "${topic}" already has a handler`);
    this.featureTopics.set(topic, handler);
  }

  /**
   * Receives the commands of emulated connections sent to this node by `sendEmulation` on
   * others, in the order the bus delivers them; at most once. One handler; it must not throw.
   */
  onEmulation(handler: (session: string, data: string) => void): void {
    this.emulationHandler = handler;
  }

  /**
   * Forwards an emulated connection's commands to node `to`, which holds its session.
   * Resolves once the bus took them (not once they ran); rejects BROKER_UNAVAILABLE.
   */
  async sendEmulation(to: string, session: string, data: string): Promise<void> {
    await this.control({ type: 'emulation', to, session, data });
  }

  /** Whether `id` is this node or a peer heard from recently. */
  knowsNode(id: string): boolean {
    return id === this.id || this.cluster.nodes().some((n) => n.id === id);
  }

  /**
   * Cluster-wide keyed entries of a feature (the chat's per-node user states): a presence set
   * named `set` (starting with `$`, a name no channel can take), one entry per `info.client`.
   * An entry expires after presence_ttl unless set again: its setter refreshes it, and the
   * entries of a node that died disappear.
   */
  async setClusterEntry(set: string, info: ClientInfo): Promise<void> {
    await this.viaBus(() => this.presence.add(internalSet(set), info, this.config.presence_ttl), 'presence');
  }

  async removeClusterEntry(set: string, key: string): Promise<void> {
    await this.viaBus(() => this.presence.remove(internalSet(set), key), 'presence');
  }

  /** The live entries of a set, keyed by `info.client`. */
  async clusterEntries(set: string): Promise<Record<string, ClientInfo>> {
    return this.viaBus(() => this.presence.get(internalSet(set)), 'presence');
  }

  private async viaBus<T>(op: () => Promise<T>, what: string): Promise<T> {
    try {
      return await op();
    } catch (err) {
      NodeStats.inc(this.stats.brokerErrors, what);
      if (err instanceof RelaisError) throw err;
      throw new RelaisError('BROKER_UNAVAILABLE', `${what} unavailable on the message bus, retry`, { cause: err });
    }
  }

  /**
   * Channels of a glob that have a stream (history or a position): in the store for a
   * persistent namespace, else on the bus. For the recovery of glob streams.
   */
  async streamChannels(pattern: ResolvedPattern): Promise<string[]> {
    if (pattern.options.persist && this.persistent) return this.persistent.channels(pattern.pattern, pattern.matcher);
    try {
      return await this.broker.streamChannels(pattern.pattern);
    } catch (err) {
      NodeStats.inc(this.stats.brokerErrors, 'history');
      throw new RelaisError('BROKER_UNAVAILABLE', 'channel list unavailable on the message bus, retry', { cause: err });
    }
  }

  /** Active channels matching a glob, with subscriber counts summed over the cluster. */
  activeChannels(pattern: string): Promise<Record<string, number>> {
    return this.cluster.activeChannels(pattern);
  }

  /** This node and the live peers that sent a heartbeat recently. */
  nodes(): NodeInfo[] {
    return this.cluster.nodes();
  }

  selfInfo(): NodeInfo {
    return {
      id: this.id,
      name: this.name,
      version: this.version,
      numClients: this.clients.size,
      numUsers: this.users.size,
      numSubs: this.hub.subscriptionCount,
      numChannels: this.hub.channelCount,
      uptimeSeconds: Math.floor((Date.now() - this.startedAt) / 1000),
    };
  }

  // --- broker events -------------------------------------------------------

  handlePublication(channel: string, publication: Publication): void {
    if (publication.offset > 0 && this.persistent?.follows(channel)) this.persistent.receive(channel, publication);
    else this.hub.handlePublication(channel, publication);
  }

  handleJoin(channel: string, info: ClientInfo): void {
    this.hub.handleJoin(channel, info);
  }

  handleLeave(channel: string, info: ClientInfo): void {
    this.hub.handleLeave(channel, info);
  }

  handleResync(): void {
    this.logger.warn('message bus reconnected: positioned subscribers go through recovery');
    this.interest.resync();
    this.hub.resyncAll();
  }

  handleControl(message: ControlMessage): void {
    switch (message.type) {
      case 'disconnect':
        for (const client of this.targets(message.user, message.client)) {
          if (message.whitelist?.includes(client.id)) continue;
          client.disconnect({ code: message.code, reason: message.reason });
        }
        return;
      case 'subscribe':
        for (const client of this.targets(message.user, message.client)) client.serverSubscribe(message.channel, message.chanInfo);
        return;
      case 'unsubscribe':
        for (const client of this.targets(message.user, message.client)) client.serverUnsubscribe(message.channel);
        return;
      case 'message':
        for (const client of this.targets(message.user, message.client)) client.sendMessage(message.data);
        return;
      case 'node':
      case 'survey':
      case 'survey_reply':
        this.cluster.handle(message);
        return;
      case 'emulation':
        if (message.to !== this.id) return;
        try {
          this.emulationHandler?.(message.session, message.data);
        } catch (err) {
          this.logger.error({ err }, 'emulation handler failed');
        }
        return;
      case 'feature': {
        const handler = this.featureTopics.get(message.topic);
        try {
          handler?.(message.data);
        } catch (err) {
          this.logger.error({ err, topic: message.topic }, 'feature message handler failed');
        }
        return;
      }
    }
  }

  private *targets(user: string, client: string | undefined): Iterable<NodeClient> {
    if (client !== undefined && client !== '') {
      const c = this.clients.get(client);
      if (c && c.user === user) yield c;
      return;
    }
    yield* this.connectionsOf(user);
  }

  // --- clocks --------------------------------------------------------------

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private tick(): void {
    const now = Date.now();
    for (const client of this.clients.values()) client.tick(now);
    this.interest.tick(now);
    this.snapshots.sweep(now);
  }

  private async refreshPresence(): Promise<void> {
    const work: Promise<void>[] = [];
    for (const client of this.clients.values()) {
      for (const [channel, info] of client.presenceEntries()) work.push(this.presence.add(channel, info, this.config.presence_ttl));
      if (work.length >= 1000) await Promise.allSettled(work.splice(0));
    }
    await Promise.allSettled(work);
  }
}

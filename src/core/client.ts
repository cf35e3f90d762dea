import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DecodedCommand, EncodedMessage, ProtocolCodec } from '../protocol/codec.js';
import { UnsubscribeCode } from '../protocol/codes.js';
import type {
  Command,
  ConnectRequest,
  ConnectResultWire,
  RefreshRequest,
  RefreshResultWire,
  ReplyResult,
  SubRefreshRequest,
  SubscribeRequest,
  SubscribeResultWire,
} from '../protocol/types.js';
import { TokenError, type ConnectionClaims, type TokenIdentity } from './auth.js';
import { namespaceProxy, pickHeaders, type ConnectProxyResult, type ProxyCaller } from './client_proxy.js';
import { keepsHistory, type ResolvedChannel } from './channel.js';
import { ClientSubscription, subscribeReplyFields } from './client_subscription.js';
import { handleChannelCommand } from './client_commands.js';
import { DisconnectError, Disconnects, RelaisError, toRelaisError, type Disconnect } from './errors.js';
import { toJsonText, type JsonText } from './json.js';
import type { Node, NodeClient } from './node.js';
import type { ClientInfo } from './publication.js';
import type { PreparedPush, PublicationEncoders } from './push_encoders.js';
import { TokenBucket, type RateLimit } from './rate_limit.js';
import { REPLIED } from './replied.js';
import { NodeStats } from './stats.js';

export type { PreparedPush } from './push_encoders.js';

/** The kinds of connection a Client runs over. */
export type TransportName = 'websocket' | 'http_stream' | 'sse';

/**
 * Where a client's messages go: one WebSocket connection, or one streamed HTTP response whose
 * commands arrive through the emulation endpoint (HTTP-streaming, SSE).
 */
export interface ClientTransport {
  readonly name: TransportName;
  /**
   * Set on emulated transports only: the secret id the client quotes in its emulation
   * requests (with the node id) to reach this connection. Never the client id, which
   * presence shows to other users. The connect reply carries it.
   */
  readonly session?: string;
  /** The protocol this connection speaks: it decodes the client's frames and encodes every message to it. */
  readonly codec: ProtocolCodec;
  /**
   * Encode publication pushes for this protocol and this kind of transport. One set per
   * (protocol, kind), never closures per connection: the hub's FrameCache encodes once per
   * publication per function.
   */
  readonly publicationEncoders: PublicationEncoders;
  /**
   * Queues one protocol message. Each message leaves in a frame of its own, in the order
   * written; a transport may gather the frames of one tick into one socket write.
   */
  write(message: EncodedMessage | PreparedPush): void;
  /** Sends what is queued, then closes with the disconnect's code and reason. */
  close(disconnect: Disconnect): void;
}

type Status = 'connecting' | 'connected' | 'closed';

/** The HTTP request that opened a connection: its headers, of which the proxies forward the configured ones. */
export interface ConnectionRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}


/** Commands that count against rate limits; subscriptions are bounded by max_channels_per_connection instead. */
const RATE_LIMITED_METHODS: ReadonlySet<string> = new Set(['publish', 'history', 'presence', 'presence_stats', 'rpc', 'send']);
/** Commands that do not make a user active (chat status: away after chat.away_after without others). */
const PASSIVE_METHODS: ReadonlySet<string> = new Set(['connect', 'ping', 'pong', 'refresh', 'sub_refresh']);
/** Time a client has to refresh an expired token before it is disconnected. */
const EXPIRY_GRACE_MS = 10_000;
/** After a refresh proxy call that failed (backend down), the next try comes this much later. */
const PROXY_REFRESH_RETRY_MS = 5_000;
const RESOLVED = Promise.resolve();
/** Shared by every connection that forwards no header: an idle connection holds no object of its own. */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * One connected client of the Centrifugo protocol: its identity, subscriptions and the
 * commands it sends. Commands of a connection run one after the other, in order.
 */
export class Client implements NodeClient {
  readonly id = randomUUID();
  user = '';
  info: ClientInfo = { user: '', client: this.id };
  token: TokenIdentity | undefined;
  readonly subscriptions = new Map<string, ClientSubscription>();
  private childLogger: Logger | undefined;
  private status: Status = 'connecting';
  private chain: Promise<void> = RESOLVED;
  private expiresAt = 0;
  private readonly connectDeadline: number;
  private nextPingAt = 0;
  private pongDeadline = 0;
  // Created on first use: an idle connection carries no bucket.
  private bucket: TokenBucket | undefined;
  private namespaceBuckets: Map<string, TokenBucket> | undefined;
  private refusals = 0;
  private countedInCluster = false;
  /** The request headers the proxies forward; empty without proxies. */
  private readonly proxyHeaders: Readonly<Record<string, string>>;
  private emulatedHeaders: Readonly<Record<string, string>> | undefined;
  /** The connect proxy's meta for this connection. */
  private meta: JsonText | undefined;
  /** The connect proxy authenticated this connection: its expiry is extended by the refresh proxy, not by a token. */
  private proxied = false;
  private refreshing = false;

  constructor(
    readonly node: Node,
    private readonly transport: ClientTransport,
    private readonly baseLogger: Logger,
    request?: ConnectionRequest,
  ) {
    this.connectDeadline = Date.now() + node.config.client.connect_timeout;
    NodeStats.inc(node.stats.activeConnections, transport.name);
    const names = node.proxies?.httpHeaders ?? [];
    this.proxyHeaders = request && names.length > 0 ? pickHeaders(request.headers, names) : NO_HEADERS;
  }

  /** Who this connection is, for a request to the app backend's proxies. */
  proxyCaller(): ProxyCaller {
    return {
      client: this.id,
      transport: this.transport.name,
      protocol: this.transport.codec.name,
      user: this.user,
      headers: this.proxyHeaders,
      ...(this.emulatedHeaders ? { emulatedHeaders: this.emulatedHeaders } : {}),
      ...(this.meta !== undefined ? { meta: this.meta } : {}),
    };
  }

  /** Created on first use: most connections never log, and a child logger per idle connection costs memory. */
  get logger(): Logger {
    this.childLogger ??= this.baseLogger.child({ clientId: this.id, userId: this.user, transport: this.transport.name });
    return this.childLogger;
  }

  get connected(): boolean {
    return this.status === 'connected';
  }

  get closed(): boolean {
    return this.status === 'closed';
  }

  /** The protocol this connection speaks. */
  get codec(): ProtocolCodec {
    return this.transport.codec;
  }

  /** A frame from the transport: one or more commands of the connection's protocol. */
  handleFrame(frame: string | Uint8Array): void {
    if (this.status === 'closed') return;
    for (const decoded of this.transport.codec.decodeFrame(frame)) {
      if (decoded.kind === 'malformed') {
        this.logger.info({ reason: decoded.message }, 'malformed frame');
        this.disconnect(Disconnects.badRequest);
        return;
      }
      if (decoded.kind === 'command' && decoded.command.method === 'pong') {
        this.pongDeadline = 0;
        continue;
      }
      const receivedAt = performance.now();
      this.chain = this.chain.then(() => this.dispatch(decoded, receivedAt));
    }
  }

  /** Resolves once every command received so far has been handled. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** The transport closed (either side). */
  handleClose(): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    NodeStats.inc(this.node.stats.disconnections, 'connection closed');
    this.cleanup(Disconnects.connectionClosed);
  }

  write(message: EncodedMessage | PreparedPush): void {
    if (this.status !== 'closed') this.transport.write(message);
  }

  /** Writes the reply to command `id`. */
  reply(id: number, reply: ReplyResult): void {
    this.write(this.transport.codec.encodeReply(id, reply));
  }

  get publicationEncoders(): PublicationEncoders {
    return this.transport.publicationEncoders;
  }

  disconnect(disconnect: Disconnect): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    NodeStats.inc(this.node.stats.disconnections, disconnect.reason);
    if (disconnect.code === Disconnects.slow.code) this.node.stats.slowConsumerDisconnects++;
    this.transport.close(disconnect);
    this.cleanup(disconnect);
  }

  private cleanup(disconnect: Disconnect): void {
    NodeStats.inc(this.node.stats.activeConnections, this.transport.name, -1);
    this.node.unregisterClient(this, disconnect);
    if (this.countedInCluster) this.node.releaseUserConnection(this.info);
    for (const sub of this.subscriptions.values()) sub.end();
    this.subscriptions.clear();
  }

  private async dispatch(decoded: Exclude<DecodedCommand, { kind: 'malformed' }>, receivedAt: number): Promise<void> {
    if (this.status === 'closed') return;
    const stats = this.node.stats;
    if (decoded.kind === 'invalid') {
      NodeStats.inc(stats.messagesIn, 'invalid');
      const code = decoded.code === 'method_not_found' ? 'METHOD_NOT_FOUND' : decoded.code === 'unsupported' ? 'UNSUPPORTED' : 'BAD_REQUEST';
      const err = new RelaisError(code, decoded.message);
      this.replyError(decoded.id, err);
      return;
    }
    const command = decoded.command;
    NodeStats.inc(stats.messagesIn, command.method);
    if (this.status === 'connecting' && command.method !== 'connect') {
      this.logger.info({ method: command.method }, 'command before connect');
      this.disconnect(Disconnects.badRequest);
      return;
    }
    if (this.status === 'connected' && command.method === 'connect') {
      this.disconnect(Disconnects.badRequest);
      return;
    }
    // Commands the SDK sends on its own (token refreshes) say nothing of the user's activity.
    if (!PASSIVE_METHODS.has(command.method)) this.node.clientActive(this.info);
    if (RATE_LIMITED_METHODS.has(command.method) && !(await this.admit(command.method))) {
      if (!this.closed && command.id > 0) this.replyError(command.id, new RelaisError('RATE_LIMITED'));
      return;
    }
    try {
      const result = await this.execute(command);
      if (result !== REPLIED && command.id > 0) this.reply(command.id, { method: command.method, result } as ReplyResult);
      NodeStats.inc(stats.messagesOut, 'reply');
      stats.observeCommandLatency(command.method, performance.now() - receivedAt);
    } catch (err) {
      if (err instanceof DisconnectError) {
        this.disconnect(err.disconnect);
        return;
      }
      const error = toRelaisError(err);
      if (error.code === 'INTERNAL') this.logger.error({ err, method: command.method }, 'command failed');
      if (command.id > 0) this.replyError(command.id, error);
    }
  }

  /**
   * Rate limits of message commands: the connection's bucket and its user's. Refusals in a
   * row past `rate_limit.disconnect_after` are abuse: the connection ends (3013).
   */
  private async admit(method: string): Promise<boolean> {
    const limits = this.node.config.rate_limit;
    const now = Date.now();
    let scope: string | undefined;
    if (limits.connection.per_second > 0) {
      this.bucket ??= new TokenBucket(limits.connection.burst, limits.connection.per_second, now);
      if (!this.bucket.take(now)) scope = 'connection';
    }
    if (scope === undefined && this.user !== '' && limits.user.per_second > 0 && !(await this.node.userLimiter.take(this.user))) scope = 'user';
    if (scope === undefined) {
      this.refusals = 0;
      return true;
    }
    NodeStats.inc(this.node.stats.rateLimited, scope);
    this.refusals++;
    if (this.refusals > limits.disconnect_after) {
      this.logger.warn({ method, refusals: this.refusals }, 'rate limit exceeded repeatedly: disconnecting');
      this.disconnect(Disconnects.tooManyRequests);
    }
    return false;
  }

  /** A per-connection bucket for publishing into a namespace with its own rate limit. */
  namespaceBucket(namespace: string, limit: RateLimit): TokenBucket {
    this.namespaceBuckets ??= new Map();
    let bucket = this.namespaceBuckets.get(namespace);
    if (!bucket) {
      bucket = new TokenBucket(limit.burst, limit.per_second);
      this.namespaceBuckets.set(namespace, bucket);
    }
    return bucket;
  }

  replyError(id: number, error: RelaisError): void {
    this.write(this.transport.codec.encodeError(id, { code: error.wireCode, message: error.message, ...(error.temporary ? { temporary: true } : {}) }));
  }

  private async execute(command: Command): Promise<ReplyResult['result'] | typeof REPLIED> {
    switch (command.method) {
      case 'connect':
        return this.connect(command.id, command.request);
      case 'refresh':
        return this.refresh(command.request);
      case 'sub_refresh':
        return this.subRefresh(command.request);
      case 'ping':
        return {};
      case 'pong':
        return REPLIED;
      default:
        return handleChannelCommand(this, command);
    }
  }

  // --- connection ----------------------------------------------------------

  private async verifyConnectionToken(token: string): Promise<ConnectionClaims> {
    try {
      return await this.node.tokens.verifyConnection(token);
    } catch (err) {
      if (err instanceof TokenError && err.reason === 'expired') throw new RelaisError('TOKEN_EXPIRED');
      this.logger.info({ reason: err instanceof Error ? err.message : String(err) }, 'invalid connection token');
      throw new DisconnectError(Disconnects.invalidToken, { cause: err });
    }
  }

  private async connect(id: number, request: ConnectRequest): Promise<typeof REPLIED> {
    let claims: ConnectionClaims;
    let proxied: ConnectProxyResult | undefined;
    const connectProxy = this.node.proxies?.connect;
    const emulated = this.node.proxies?.emulatedHeaders ?? [];
    if (emulated.length > 0 && request.headers) {
      const lowercase = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v]));
      this.emulatedHeaders = pickHeaders(lowercase, emulated);
    }
    if (request.token !== undefined && request.token !== '') {
      claims = await this.verifyConnectionToken(request.token);
    } else if (connectProxy) {
      proxied = await connectProxy(this.proxyCaller(), {
        ...(request.name ? { name: request.name } : {}),
        ...(request.version ? { version: request.version } : {}),
        ...(request.data !== undefined ? { data: toJsonText(request.data) } : {}),
      });
      claims = {
        user: proxied.user,
        channels: [...proxied.channels, ...Object.keys(proxied.subs).filter((c) => !proxied?.channels.includes(c))],
        ...(proxied.expiresAt !== undefined ? { expiresAt: proxied.expiresAt } : {}),
        ...(proxied.info !== undefined ? { info: proxied.info } : {}),
      };
    } else if (this.node.config.allow_anonymous) {
      claims = { user: '' };
    } else {
      throw new RelaisError('UNAUTHORIZED', 'a connection token is required');
    }
    if (this.status !== 'connecting') return REPLIED;
    this.refuseRevoked(claims);
    const maxPerUser = this.node.config.client.max_connections_per_user;
    if (maxPerUser > 0 && claims.user !== '' && this.node.userConnectionCount(claims.user) >= maxPerUser) {
      this.logger.info({ user: claims.user, limit: maxPerUser }, 'connection limit of the user reached');
      throw new DisconnectError(Disconnects.connectionLimit);
    }
    const info: ClientInfo = { user: claims.user, client: this.id, ...(claims.info !== undefined ? { connInfo: claims.info } : {}) };
    if (maxPerUser > 0 && claims.user !== '' && this.node.distributed) {
      // Across the cluster: the user's connections are counted in a presence set of their own.
      // With the bus down the limit is not checked rather than refusing every connection.
      const count = await this.node.claimUserConnection(info).catch((err: unknown) => {
        this.logger.warn({ err }, 'connection limit not checked across the cluster: bus unavailable');
        return 0;
      });
      this.countedInCluster = count > 0;
      if (count > maxPerUser || this.status !== 'connecting') {
        if (this.countedInCluster) this.node.releaseUserConnection(info);
        this.countedInCluster = false;
        if (this.status !== 'connecting') return REPLIED;
        this.logger.info({ user: claims.user, limit: maxPerUser }, 'connection limit of the user reached across the cluster');
        throw new DisconnectError(Disconnects.connectionLimit);
      }
    }
    this.user = claims.user;
    this.info = info;
    this.token = tokenIdentity(claims);
    this.childLogger = undefined;
    this.expiresAt = claims.expiresAt ?? 0;
    this.proxied = proxied !== undefined;
    this.meta = proxied?.meta;
    this.status = 'connected';
    this.node.registerClient(this);
    this.nextPingAt = Date.now() + this.node.config.client.ping_interval;

    const subs: Record<string, SubscribeResultWire> = {};
    for (const name of claims.channels ?? []) {
      const options = proxied?.subs[name];
      const result = await this.joinServerSide(name, request.subs?.[name], options?.info, false, options?.data);
      if (result !== undefined) subs[name] = result;
      if (this.status !== 'connected') return REPLIED;
    }
    const reply: ConnectResultWire = {
      client: this.id,
      version: this.node.version,
      node: this.node.id,
      ...(this.transport.session !== undefined ? { session: this.transport.session } : {}),
      ...this.expiry(),
      ...(this.node.config.client.ping_interval > 0
        ? { ping: Math.round(this.node.config.client.ping_interval / 1000), pong: true }
        : {}),
      ...(Object.keys(subs).length > 0 ? { subs } : {}),
      ...(proxied?.data !== undefined ? { data: proxied.data } : {}),
    };
    this.reply(id, { method: 'connect', result: reply });
    for (const sub of this.subscriptions.values()) sub.flushPending();
    return REPLIED;
  }

  /** Blocked users and revoked tokens end here, whatever the token's signature says. */
  private refuseRevoked(claims: ConnectionClaims): void {
    const refusal = this.node.connectionRefusal(claims);
    if (!refusal) return;
    this.logger.info({ user: claims.user, reason: refusal.reason }, 'connection refused');
    throw new DisconnectError(refusal);
  }

  private expiry(): { expires?: true; ttl?: number } {
    // A proxied connection has no token to refresh: the server asks the refresh proxy itself.
    if (this.expiresAt === 0 || this.proxied) return {};
    return { expires: true, ttl: Math.max(1, Math.ceil((this.expiresAt - Date.now()) / 1000)) };
  }

  private async refresh(request: RefreshRequest): Promise<RefreshResultWire> {
    let claims: ConnectionClaims;
    try {
      claims = await this.node.tokens.verifyConnection(request.token);
    } catch (err) {
      if (err instanceof TokenError && err.reason === 'expired') throw new DisconnectError(Disconnects.expired, { cause: err });
      throw new DisconnectError(Disconnects.invalidToken, { cause: err });
    }
    if (claims.user !== this.user) throw new DisconnectError(Disconnects.invalidToken);
    this.refuseRevoked(claims);
    this.token = tokenIdentity(claims);
    this.expiresAt = claims.expiresAt ?? 0;
    return { client: this.id, version: this.node.version, ...this.expiry() };
  }

  private async subRefresh(request: SubRefreshRequest): Promise<{ expires?: true; ttl?: number }> {
    const sub = this.subscriptions.get(request.channel);
    if (!sub) throw new RelaisError('BAD_REQUEST', `not subscribed to "${request.channel}"`);
    const claims = await sub.verifyToken(request.token);
    sub.expiresAt = claims.expiresAt ?? 0;
    sub.token = { issuedAt: claims.issuedAt };
    return sub.expiry();
  }

  // --- server-side subscriptions -------------------------------------------

  /**
   * Subscribes this connection to a channel on the server's initiative (token `channels`
   * claim, server API): no permission check. Returns the subscribe result for the connect
   * reply, or pushes `subscribe` when `push` is set.
   */
  async joinServerSide(
    name: string,
    request: SubscribeRequest | undefined,
    chanInfo: JsonText | undefined,
    push: boolean,
    data?: JsonText,
  ): Promise<SubscribeResultWire | undefined> {
    if (this.subscriptions.has(name)) return undefined;
    let channel: ResolvedChannel;
    try {
      channel = this.node.channels.resolve(name);
    } catch (err) {
      this.logger.warn({ err, channel: name }, 'server-side subscription to an invalid channel ignored');
      return undefined;
    }
    const sub = new ClientSubscription(this, channel, { serverSide: true, ...(chanInfo !== undefined ? { chanInfo } : {}) });
    this.subscriptions.set(name, sub);
    const recover = keepsHistory(channel.options) && request?.recover === true;
    let fields: SubscribeResultWire | undefined;
    try {
      await this.node.joinStream(
        channel,
        sub,
        { recover, ...(recover ? { since: { offset: request?.offset ?? 0, epoch: request?.epoch ?? '' } } : {}) },
        (result) => {
          fields = subscribeReplyFields(channel, result, { recover, recoverable: true, positioned: true });
          if (data !== undefined) fields.data = data;
          sub.startAt(result.position);
          if (push) {
            // A subscribe push carries no publications: replayed ones follow it as pushes.
            const { publications: _replayed, ...rest } = fields;
            this.write(this.transport.codec.encodePush({ type: 'subscribe', channel: name, sub: rest }));
            sub.writePublications(result.publications);
          } else {
            // Replayed publications ride in the connect reply; live ones wait until it is written.
            sub.hold();
          }
        },
      );
    } catch (err) {
      this.subscriptions.delete(name);
      this.logger.warn({ err, channel: name }, 'server-side subscription failed');
      return undefined;
    }
    if (this.status === 'closed') return undefined;
    await sub.enter();
    return fields;
  }

  serverSubscribe(channel: string, chanInfo?: JsonText): void {
    if (this.status !== 'connected') return;
    this.chain = this.chain.then(async () => {
      if (this.status === 'connected') await this.joinServerSide(channel, undefined, chanInfo, true);
    });
  }

  serverUnsubscribe(channel: string): void {
    this.chain = this.chain.then(() => {
      const sub = this.subscriptions.get(channel);
      if (!sub) return;
      this.removeSubscription(sub);
      this.write(this.transport.codec.encodePush({ type: 'unsubscribe', channel, code: UnsubscribeCode.server, reason: 'server unsubscribe' }));
    });
  }

  recheckSubscription(channel: string): void {
    this.chain = this.chain.then(() => {
      const sub = this.subscriptions.get(channel);
      if (!sub?.token) return;
      const refusal = this.node.subscriptionRefusal(this.user, channel, sub.token.issuedAt);
      if (!refusal) return;
      this.removeSubscription(sub);
      // Code 2501 (expired): the SDK subscribes again, and with a refused token fetches a new one.
      this.write(this.transport.codec.encodePush({ type: 'unsubscribe', channel, code: UnsubscribeCode.expired, reason: `subscription ${refusal}` }));
    });
  }

  removeSubscription(sub: ClientSubscription): void {
    if (this.subscriptions.get(sub.channel.name) === sub) this.subscriptions.delete(sub.channel.name);
    sub.end();
  }

  sendMessage(data: JsonText): void {
    this.write(this.transport.codec.encodePush({ type: 'message', data }));
  }

  *presenceEntries(): Iterable<readonly [string, ClientInfo]> {
    if (this.countedInCluster) yield [this.node.userConnectionsChannel(this.user), this.info];
    for (const sub of this.subscriptions.values()) if (sub.live && sub.channel.options.presence) yield [sub.channel.name, sub.info];
  }

  // --- clock -----------------------------------------------------------------

  tick(now: number): void {
    if (this.status === 'connecting') {
      if (now > this.connectDeadline) this.disconnect(Disconnects.stale);
      return;
    }
    if (this.status !== 'connected') return;
    if (this.proxied && this.expiresAt > 0 && now >= this.expiresAt) {
      this.refreshThroughProxy(now);
    } else if (this.expiresAt > 0 && now > this.expiresAt + EXPIRY_GRACE_MS) {
      this.disconnect(Disconnects.expired);
      return;
    }
    const ping = this.node.config.client.ping_interval;
    if (ping > 0) {
      if (this.pongDeadline > 0 && now > this.pongDeadline) {
        this.disconnect(Disconnects.noPong);
        return;
      }
      if (now >= this.nextPingAt) {
        this.write(this.transport.codec.ping);
        this.nextPingAt = now + ping;
        if (this.pongDeadline === 0) this.pongDeadline = now + this.node.config.client.pong_timeout;
      }
    }
    for (const sub of this.subscriptions.values()) {
      if (sub.expiresAt === 0) continue;
      if (sub.refreshedByProxy) {
        if (now >= sub.expiresAt) this.refreshSubscriptionThroughProxy(sub, now);
      } else if (now > sub.expiresAt + EXPIRY_GRACE_MS) {
        this.expireSubscription(sub);
      }
    }
  }

  private expireSubscription(sub: ClientSubscription): void {
    this.removeSubscription(sub);
    this.write(this.transport.codec.encodePush({ type: 'unsubscribe', channel: sub.channel.name, code: UnsubscribeCode.expired, reason: 'subscription expired' }));
  }

  /**
   * The connection's expiry came: the refresh proxy prolongs it or ends it. Without a refresh
   * proxy it ends. A backend that cannot answer is asked again later: its downtime does not
   * end connections.
   */
  private refreshThroughProxy(now: number): void {
    const refresh = this.node.proxies?.refresh;
    if (!refresh) {
      this.disconnect(Disconnects.expired);
      return;
    }
    if (this.refreshing) return;
    this.refreshing = true;
    refresh(this.proxyCaller())
      .then((result) => {
        if (result.expired) return this.disconnect(Disconnects.expired);
        this.expiresAt = result.expiresAt ?? 0;
        if (result.info !== undefined) this.info = { ...this.info, connInfo: result.info };
      })
      .catch((err: unknown) => {
        if (err instanceof DisconnectError) return this.disconnect(err.disconnect);
        this.logger.warn({ err }, 'refresh proxy failed: asking again later');
        this.expiresAt = now + PROXY_REFRESH_RETRY_MS;
      })
      .finally(() => {
        this.refreshing = false;
      });
  }

  /** Like refreshThroughProxy, for a subscription the subscribe proxy gave an expiry; `expired` unsubscribes it. */
  private refreshSubscriptionThroughProxy(sub: ClientSubscription, now: number): void {
    const subRefresh = namespaceProxy(this.node.proxies, 'subRefresh', sub.channel.options);
    if (!subRefresh) {
      this.expireSubscription(sub);
      return;
    }
    if (sub.refreshing) return;
    sub.refreshing = true;
    subRefresh(this.proxyCaller(), sub.channel.name)
      .then((result) => {
        if (sub.isEnded) return;
        if (result.expired) return this.expireSubscription(sub);
        sub.expiresAt = result.expiresAt ?? 0;
      })
      .catch((err: unknown) => {
        if (err instanceof DisconnectError) return this.disconnect(err.disconnect);
        this.logger.warn({ err, channel: sub.channel.name }, 'sub_refresh proxy failed: asking again later');
        sub.expiresAt = now + PROXY_REFRESH_RETRY_MS;
      })
      .finally(() => {
        sub.refreshing = false;
      });
  }

}

function tokenIdentity(claims: ConnectionClaims): TokenIdentity | undefined {
  if (claims.user === '' && claims.tokenId === undefined) return undefined;
  return {
    user: claims.user,
    ...(claims.tokenId !== undefined ? { tokenId: claims.tokenId } : {}),
    ...(claims.issuedAt !== undefined ? { issuedAt: claims.issuedAt } : {}),
  };
}

import type {
  Command,
  HistoryRequest,
  HistoryResultWire,
  ReplyResult,
  RpcRequest,
  SendRequest,
  SubscribeRequest,
} from '../protocol/types.js';
import { keepsHistory, type ResolvedChannel } from './channel.js';
import type { Client } from './client.js';
import { REPLIED } from './replied.js';
import { NodeStats } from './stats.js';
import { ClientSubscription, subscribeReplyFields, verifySubscriptionToken } from './client_subscription.js';
import { DELTA_TYPES } from './delta.js';
import { namespaceProxy, type SubscriptionOverride } from './client_proxy.js';
import { RelaisError } from './errors.js';
import { compileTagFilter, type TagFilter } from './tag_filter.js';
import { toJsonText, type JsonText } from './json.js';
import type { PublishInput } from './node_api.js';
import type { ClientInfo, StreamPosition } from './publication.js';

const FLAG_CHANNEL_COMPACTION = 1;
const FLAG_REJECT_UNRECOVERED = 2;

type ChannelCommand = Exclude<Command, { method: 'connect' | 'refresh' | 'sub_refresh' | 'ping' | 'pong' }>;

/** Commands about channels and messages, for a connected client. */
export async function handleChannelCommand(client: Client, command: ChannelCommand): Promise<ReplyResult['result'] | typeof REPLIED> {
  switch (command.method) {
    case 'subscribe':
      return subscribe(client, command.id, command.request);
    case 'unsubscribe': {
      const sub = client.subscriptions.get(command.request.channel);
      if (sub) client.removeSubscription(sub);
      return {};
    }
    case 'publish':
      await publish(client, command.request.channel, command.request.data, false);
      return {};
    case 'history':
      return history(client, command.request);
    case 'presence': {
      const channel = await readableChannel(client, command.request.channel, 'presence');
      const entries = await client.node.presenceOf(channel);
      const ids = Object.keys(entries);
      if (ids.length > client.node.config.client.presence_max_size) {
        throw new RelaisError('LIMIT_EXCEEDED', `presence has ${ids.length} entries, more than presence_max_size`);
      }
      const presence: Record<string, ClientInfo> = {};
      for (const id of ids) presence[id] = entries[id] as ClientInfo;
      return { presence };
    }
    case 'presence_stats': {
      const channel = await readableChannel(client, command.request.channel, 'presence');
      const stats = await client.node.presenceStats(channel);
      return { num_clients: stats.numClients, num_users: stats.numUsers };
    }
    case 'rpc':
      return rpc(client, command.request);
    case 'send':
      send(client, command.request);
      return REPLIED;
  }
}

/**
 * What a subscribe request asks beyond a plain stream, checked against what the channel
 * allows: anything Relais would not do as asked is refused (docs/errors.md), never served
 * differently.
 */
function subscriptionFeatures(request: SubscribeRequest, allowedDelta: readonly string[]): { delta: boolean; filter: TagFilter | undefined } {
  if (request.type !== undefined && request.type !== 0) {
    throw new RelaisError('UNSUPPORTED', `subscription type ${request.type}: only stream subscriptions (type 0) are supported`);
  }
  const flags = request.flag ?? 0;
  if ((flags & ~(FLAG_CHANNEL_COMPACTION | FLAG_REJECT_UNRECOVERED)) !== 0) {
    throw new RelaisError('UNSUPPORTED', `subscription flag ${flags}: only 1 (channel compaction, may be ignored) and 2 (reject unrecovered) are known`);
  }
  const deltaType = request.delta ?? '';
  if (deltaType !== '') {
    if (!(DELTA_TYPES as readonly string[]).includes(deltaType)) throw new RelaisError('UNSUPPORTED', `delta type "${deltaType}": only "fossil" is supported`);
    if (!allowedDelta.includes(deltaType)) throw new RelaisError('BAD_REQUEST', `delta type "${deltaType}" is not allowed in this namespace (allowed_delta_types)`);
  }
  const filter = request.tf ? compileTagFilter(request.tf) : undefined;
  if (filter && deltaType !== '') throw new RelaisError('BAD_REQUEST', 'delta compression and a tags filter cannot be used together');
  return { delta: deltaType !== '', filter };
}

/**
 * The channel as one subscription sees it: the namespace's options with the subscribe
 * proxy's `override` applied, and whether this subscriber receives join and leave events.
 */
function withOverride(channel: ResolvedChannel, override: SubscriptionOverride | undefined): { channel: ResolvedChannel; pushJoinLeave: boolean } {
  if (!override) return { channel, pushJoinLeave: channel.options.join_leave };
  const o = channel.options;
  const joinLeave = override.joinLeave ?? o.join_leave;
  const options = {
    ...o,
    presence: override.presence ?? o.presence,
    join_leave: joinLeave,
    force_recovery: override.forceRecovery ?? o.force_recovery,
    force_positioning: override.forcePositioning ?? o.force_positioning,
  };
  return { channel: { ...channel, options }, pushJoinLeave: override.forcePushJoinLeave ?? joinLeave };
}

async function subscribe(client: Client, id: number, request: SubscribeRequest): Promise<typeof REPLIED> {
  const node = client.node;
  let channel = node.channels.resolve(request.channel);
  let pushJoinLeave = channel.options.join_leave;
  const features = subscriptionFeatures(request, channel.options.allowed_delta_types);
  if (client.subscriptions.has(channel.name)) throw new RelaisError('ALREADY_SUBSCRIBED');
  if (client.subscriptions.size >= node.config.client.max_channels_per_connection) {
    throw new RelaisError('LIMIT_EXCEEDED', `more than ${node.config.client.max_channels_per_connection} channels on one connection`);
  }
  let chanInfo: JsonText | undefined;
  let expiresAt = 0;
  let replyData: JsonText | undefined;
  let token: { issuedAt: number | undefined } | undefined;
  const subscribeProxy = namespaceProxy(node.proxies, 'subscribe', channel.options);
  if (request.token !== undefined && request.token !== '') {
    const claims = await verifySubscriptionToken(client, channel, request.token);
    chanInfo = claims.info;
    expiresAt = claims.expiresAt ?? 0;
    token = { issuedAt: claims.issuedAt };
  } else if (subscribeProxy) {
    // The app backend decides instead of the namespace's allow_subscribe rule.
    const result = await subscribeProxy(client.proxyCaller(), channel.name, request.data === undefined ? undefined : toJsonText(request.data));
    chanInfo = result.info;
    expiresAt = result.expiresAt ?? 0;
    replyData = result.data;
    ({ channel, pushJoinLeave } = withOverride(channel, result.override));
    if (client.closed) return REPLIED;
  } else {
    await node.authorize('subscribe', client.user, channel);
  }
  const join = (): Promise<ClientSubscription> => joinChannel(client, id, request, channel, { chanInfo, expiresAt, replyData, proxied: subscribeProxy !== undefined, pushJoinLeave, token, features });
  const sub = await withBusWait(client, join);
  if (client.closed || sub.isEnded) {
    sub.end();
    return REPLIED;
  }
  await sub.enter();
  return REPLIED;
}

/** Between two tries of a subscribe that met the bus down. */
const BUS_RETRY_MS = 200;

/**
 * Runs `join` again while it fails with BROKER_UNAVAILABLE, for up to the configured
 * `client.subscribe_bus_wait`: a bus that comes back within it (a restart, a failover)
 * costs the client no refusal, and so none of its SDK's resubscribe backoff.
 */
async function withBusWait<T>(client: Client, join: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + client.node.config.client.subscribe_bus_wait;
  for (;;) {
    try {
      return await join();
    } catch (err) {
      const retry = err instanceof RelaisError && err.code === 'BROKER_UNAVAILABLE' && Date.now() + BUS_RETRY_MS < deadline && !client.closed && !client.node.isClosing;
      if (!retry) throw err;
      await new Promise((resolve) => setTimeout(resolve, BUS_RETRY_MS));
      if (client.closed) throw err;
    }
  }
}

interface JoinOptions {
  readonly chanInfo: JsonText | undefined;
  readonly expiresAt: number;
  readonly replyData: JsonText | undefined;
  readonly proxied: boolean;
  readonly pushJoinLeave: boolean;
  readonly token: { issuedAt: number | undefined } | undefined;
  readonly features: { delta: boolean; filter: TagFilter | undefined };
}

/** One try at joining the channel's stream: the subscription, its history and the reply. */
async function joinChannel(client: Client, id: number, request: SubscribeRequest, channel: ResolvedChannel, options: JoinOptions): Promise<ClientSubscription> {
  const node = client.node;
  const { chanInfo, expiresAt, replyData, features } = options;
  if (client.subscriptions.has(channel.name)) throw new RelaisError('ALREADY_SUBSCRIBED');
  const sub = new ClientSubscription(client, channel, {
    expiresAt,
    refreshedByProxy: options.proxied && expiresAt > 0,
    pushJoinLeave: options.pushJoinLeave,
    ...(options.token ? { token: options.token } : {}),
    delta: features.delta,
    ...(features.filter ? { filter: features.filter } : {}),
    ...(chanInfo !== undefined ? { chanInfo } : {}),
  });
  client.subscriptions.set(channel.name, sub);

  const history = keepsHistory(channel.options);
  const recoverable = history && (channel.options.force_recovery || request.recoverable === true);
  const positioned = history && (channel.options.force_positioning || request.positioned === true || recoverable);
  const recover = recoverable && request.recover === true;
  try {
    await node.joinStream(
      channel,
      sub,
      {
        recover,
        ...(recover ? { since: { offset: request.offset ?? 0, epoch: request.epoch ?? '' } } : {}),
        rejectUnrecovered: ((request.flag ?? 0) & FLAG_REJECT_UNRECOVERED) !== 0,
      },
      (result) => {
        const fields = subscribeReplyFields(channel, result, { recover, recoverable, positioned, ...features });
        sub.startAt(result.position);
        client.reply(id, { method: 'subscribe', result: { ...sub.expiry(), ...fields, ...(replyData !== undefined ? { data: replyData } : {}) } });
      },
    );
  } catch (err) {
    if (client.subscriptions.get(channel.name) === sub) client.subscriptions.delete(channel.name);
    throw err;
  }
  return sub;
}

/**
 * A client publication: the namespace's rule or its publish proxy, its rate limit, then the
 * node. `toOthers`: the publisher does not receive it live (Pusher's `toOthers`).
 */
async function publish(client: Client, channelName: string, clientData: unknown, toOthers: boolean): Promise<StreamPosition> {
  const channel = client.node.channels.resolvePublishTarget(channelName);
  const publishProxy = namespaceProxy(client.node.proxies, 'publish', channel.options);
  // With a publish proxy the app backend decides instead of the allow_publish rule.
  if (!publishProxy) await client.node.authorize('publish', client.user, channel);
  const limit = channel.options.rate_limit;
  if (limit && limit.per_second > 0 && !client.namespaceBucket(channel.namespace, limit).take()) {
    NodeStats.inc(client.node.stats.rateLimited, 'namespace');
    throw new RelaisError('RATE_LIMITED', `publishing into "${channel.namespace}" too fast`);
  }
  let data = toJsonText(clientData);
  // As in Centrifugo, a publication carries the publisher's channel info when it is subscribed.
  const info = client.subscriptions.get(channel.name)?.info ?? client.info;
  let input: PublishInput = { info, ...(toOthers ? { excludeClient: client.id } : {}) };
  if (publishProxy) {
    // Nothing reaches the channel unless the backend allowed it; its data replaces the client's.
    const result = await publishProxy(client.proxyCaller(), channel.name, data);
    if (result.data !== undefined) data = result.data;
    input = { ...input, ...(result.skipHistory ? { skipHistory: true } : {}), ...(result.tags ? { tags: result.tags } : {}) };
  }
  return client.node.publish(channel, data, input);
}

/** The rpc method by which a client publishes without receiving its own publication (docs/protocol.md). */
export const PUBLISH_TO_OTHERS_METHOD = 'relais.publish_to_others';

/** `rpc relais.publish_to_others {channel, data}`: a publish whose publisher is left out; replies `{offset, epoch}` when positioned. */
async function publishToOthers(client: Client, params: unknown): Promise<{ data?: string }> {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new RelaisError('BAD_REQUEST', `${PUBLISH_TO_OTHERS_METHOD} takes {"channel": string, "data": any}`);
  }
  const { channel, data } = params as Record<string, unknown>;
  if (typeof channel !== 'string' || data === undefined) throw new RelaisError('BAD_REQUEST', `${PUBLISH_TO_OTHERS_METHOD} takes {"channel": string, "data": any}`);
  const position = await publish(client, channel, data, true);
  return { data: position.offset > 0 ? JSON.stringify({ offset: position.offset, epoch: position.epoch }) : '{}' };
}

/** A channel the client may read history or presence of: subscribed to it, or allowed to subscribe. */
async function readableChannel(client: Client, name: string, what: 'history' | 'presence'): Promise<ResolvedChannel> {
  const channel = client.node.channels.resolve(name);
  const allowed = what === 'history' ? channel.options.allow_history : channel.options.allow_presence;
  if (!allowed) throw new RelaisError('FORBIDDEN', `clients may not read ${what} of "${channel.name}"`);
  if (!client.subscriptions.has(channel.name)) await client.node.authorize('subscribe', client.user, channel);
  return channel;
}

async function history(client: Client, request: HistoryRequest): Promise<HistoryResultWire> {
  const channel = await readableChannel(client, request.channel, 'history');
  const max = client.node.config.client.history_max_limit;
  const limit = request.limit === undefined ? 0 : request.limit < 0 ? max : Math.min(request.limit, max);
  const since = request.since ? { offset: request.since.offset ?? 0, epoch: request.since.epoch ?? '' } : undefined;
  const result = await client.node.history(channel, { limit, ...(since ? { since } : {}), ...(request.reverse ? { reverse: true } : {}) });
  return {
    publications: result.publications,
    epoch: result.position.epoch,
    offset: result.position.offset,
  };
}

async function rpc(client: Client, request: RpcRequest): Promise<{ data?: string }> {
  if (request.method === PUBLISH_TO_OTHERS_METHOD) return publishToOthers(client, request.data);
  const handler = client.node.rpc;
  if (!handler) throw new RelaisError('METHOD_NOT_FOUND', 'no rpc handler configured (proxy.rpc_url)');
  const caller = { client: client.id, user: client.user, info: client.info, proxy: client.proxyCaller() };
  const data = await handler.rpc(caller, request.method ?? '', toJsonText(request.data ?? null));
  return data === undefined ? {} : { data };
}

function send(client: Client, request: SendRequest): void {
  const handler = client.node.rpc;
  if (!handler) return;
  let data: JsonText;
  try {
    data = toJsonText(request.data ?? null);
  } catch {
    return;
  }
  handler.send({ client: client.id, user: client.user, proxy: client.proxyCaller() }, data).catch((err: unknown) => client.logger.warn({ err }, 'send proxy failed'));
}

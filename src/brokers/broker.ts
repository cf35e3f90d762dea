import type { JsonText } from '../core/json.js';
import type { ClientInfo, Publication, StreamPosition } from '../core/publication.js';

/** History options of one publish, from the channel's namespace. */
export interface PublishOptions {
  /** Publications kept; 0 keeps none and assigns no offset (the publication has offset 0). */
  readonly historySize: number;
  /** How long a publication stays in history, ms. */
  readonly historyTtlMs: number;
  /** How long the stream's offset and epoch outlive its last publication, ms. */
  readonly historyMetaTtlMs: number;
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
  /**
   * A publish repeated with the same key within `idempotentResultTtlMs` is not published
   * again: it resolves with the position of the first one.
   */
  readonly idempotencyKey?: string;
  readonly idempotentResultTtlMs?: number;
  /**
   * A position assigned before the broker (a persistent channel's store is its sequencer):
   * the broker fans the publication out with this offset, epoch and time, keeps no history
   * and assigns nothing (`historySize` must be 0). It does not reorder these publications
   * either: the node receiving them does (publishers on several nodes may cross).
   */
  readonly position?: PresetPosition;
}

/** A publication's position and time assigned upstream of the broker. */
export interface PresetPosition extends StreamPosition {
  readonly time: number;
}

export interface HistoryQuery {
  /**
   * Publications after this position (before it with `reverse`). When its epoch is not the
   * stream's current epoch (and is not ''), the stream cannot serve it: `publications` is
   * empty and the caller compares epochs to tell.
   */
  readonly since?: StreamPosition;
  /** Most publications returned; 0 returns only the position. */
  readonly limit: number;
  /**
   * Newest first. With `since`, pages backwards: the publications before `since.offset`,
   * newest first (how a client loads older messages).
   */
  readonly reverse?: boolean;
}

export interface HistoryResult {
  /** In offset order (descending when `reverse`). */
  readonly publications: readonly Publication[];
  /** The stream's current top: offset of its last publication and epoch. */
  readonly position: StreamPosition;
}

/** Cluster-wide commands that every node applies to its own connections. */
export type ControlMessage =
  | { readonly type: 'disconnect'; readonly user: string; readonly client?: string; readonly code: number; readonly reason: string; readonly whitelist?: readonly string[] }
  | { readonly type: 'subscribe'; readonly user: string; readonly channel: string; readonly client?: string; readonly chanInfo?: JsonText }
  | { readonly type: 'unsubscribe'; readonly user: string; readonly channel: string; readonly client?: string }
  | { readonly type: 'message'; readonly user: string; readonly client?: string; readonly data: JsonText }
  | { readonly type: 'node'; readonly node: NodeInfo }
  | { readonly type: 'survey'; readonly id: string; readonly from: string; readonly op: 'channels'; readonly pattern: string }
  | { readonly type: 'survey_reply'; readonly id: string; readonly to: string; readonly from: string; readonly channels: Readonly<Record<string, number>> }
  /**
   * Commands of an emulated connection (HTTP-streaming, SSE) that reached another node's
   * emulation endpoint, for the connection of `session` held by node `to`: `data` as the
   * client sent it (JSON protocol lines).
   */
  | { readonly type: 'emulation'; readonly to: string; readonly session: string; readonly data: string }
  /** A feature's own message to every node (the chat's membership changes), routed by topic. */
  | { readonly type: 'feature'; readonly topic: string; readonly data: JsonText };

/** What one node reports of itself, for the `info` API. */
export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  readonly version: string;
  readonly numClients: number;
  readonly numUsers: number;
  readonly numSubs: number;
  readonly numChannels: number;
  readonly uptimeSeconds: number;
}

/**
 * Receives what the broker delivers to this node. Handlers must not throw; a broker that
 * gets a throw anyway logs it and goes on: the publish that caused it still resolves with
 * its position, the event still reaches the other nodes, and later events still come.
 * Channel events come for channels subscribed exactly or matched by a subscribed pattern,
 * each one once per node however many of these subscriptions match its channel; possibly
 * also for other channels (see `Broker.subscribePattern`), which the handler ignores.
 */
export interface BrokerEventHandler {
  /** A publication; per channel in offset order. */
  handlePublication(channel: string, publication: Publication): void;
  handleJoin(channel: string, info: ClientInfo): void;
  handleLeave(channel: string, info: ClientInfo): void;
  handleControl(message: ControlMessage): void;
  /**
   * The broker lost its connection and may have missed publications of subscribed
   * channels and patterns (none for the memory broker). The node sends its positioned
   * subscribers back through recovery.
   */
  handleResync(): void;
}

/** Where a broker reports what it handles itself (a throwing handler, a dropped message): a pino logger fits. */
export interface BrokerLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Fan-out between nodes, offset assignment and history.
 * Implementations: memory (one process), redis, nats. All pass broker.contract.ts.
 */
export interface Broker {
  readonly kind: 'memory' | 'redis' | 'nats' | 'ipc';

  /** Connects and starts delivering events to `handler`. Rejects when the bus is unreachable. */
  start(handler: BrokerEventHandler): Promise<void>;

  /**
   * Publishes to every node subscribed to `channel`, this one included.
   * With history (`historySize > 0`), appending to history, assigning the next offset
   * and publishing happen atomically: the resolved position is the publication's own, no
   * node ever sees offsets out of order, and a publication in history is one every
   * subscribed node was sent. Resolving means the publication is accepted and will not be
   * dropped by the broker; rejecting means it was not published (a retry is safe with an
   * idempotency key). A publish made while the bus is down rejects: never resolved and dropped.
   */
  publish(channel: string, data: JsonText, options: PublishOptions): Promise<StreamPosition>;

  /** Join and leave events: fan-out only, never kept in history. */
  publishJoin(channel: string, info: ClientInfo): Promise<void>;
  publishLeave(channel: string, info: ClientInfo): Promise<void>;

  /** A control message to every node, this one included. */
  publishControl(message: ControlMessage): Promise<void>;

  /**
   * This node's interest in channels. After `subscribe` resolves, every publication made
   * later reaches the handler. Idempotent per channel; the node keeps reference counts.
   */
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;

  /**
   * This node's interest in every channel matching a glob: `*` any run of characters (none
   * included), `?` exactly one, everything else literal (compileGlob's reading). After
   * `subscribePattern` resolves, every publication, join and leave of a matching channel
   * made later reaches the handler, publications per channel in offset order, as for
   * `subscribe`. A broker may also deliver channels the pattern does not match (one whose
   * bus cannot select that finely): the handler filters with its own matcher.
   *
   * Idempotent per pattern, without reference counts (the node keeps them): one
   * `unsubscribePattern` ends it. A channel wanted through several subscriptions (exact and
   * patterns, or overlapping patterns) is still delivered once: no publication, join or
   * leave reaches the handler twice on one node because more than one subscription matches
   * its channel, including while those subscriptions come and go.
   *
   * Rejects with BROKER_UNAVAILABLE (temporary) when the bus is down, and with NOT_AVAILABLE
   * (permanent) when this broker cannot subscribe to patterns at all (Redis in sharded
   * pub/sub mode).
   */
  subscribePattern(pattern: string): Promise<void>;

  /**
   * Stops delivery through `pattern`. Channels subscribed exactly, or matched by another
   * subscribed pattern, keep being delivered without a gap. A pattern not subscribed is a
   * no-op.
   */
  unsubscribePattern(pattern: string): Promise<void>;

  /** Reads history; see HistoryQuery. Always returns the stream's current position. */
  history(channel: string, query: HistoryQuery): Promise<HistoryResult>;

  /** Drops a channel's publications; its offset and epoch stay. */
  removeHistory(channel: string): Promise<void>;

  /** Channels with a stream (publications or position), for glob recovery of SSE streams. */
  streamChannels(pattern: string): Promise<string[]>;

  /** Checks the bus answers (readiness probe); absent for the memory broker. */
  ping?(): Promise<void>;

  /** Stops delivering events and releases connections. */
  close(): Promise<void>;
}

export interface PresenceStats {
  readonly numClients: number;
  readonly numUsers: number;
}

/**
 * Who is subscribed to a channel, cluster-wide. Entries carry an expiry so that those of a
 * dead node disappear: a node refreshes its own entries well within `ttlMs`.
 */
export interface PresenceManager {
  add(channel: string, info: ClientInfo, ttlMs: number): Promise<void>;
  remove(channel: string, clientId: string): Promise<void>;
  /** Live entries keyed by client id. */
  get(channel: string): Promise<Record<string, ClientInfo>>;
  stats(channel: string): Promise<PresenceStats>;
  close(): Promise<void>;
}

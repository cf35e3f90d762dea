/**
 * What the node offers and asks of the code around it: the connections it applies
 * cluster-wide commands to, the inputs and results of publish and join, and the seams
 * features attach to (connection observers, publish steps).
 */
import type { ConnectionClaims, TokenIdentity } from './auth.js';
import type { JsonText } from './json.js';
import type { ResolvedChannel } from './channel.js';
import type { Disconnect } from './errors.js';
import type { ClientInfo, Publication, StreamPosition } from './publication.js';

/** What the node needs of a connected client to apply cluster-wide commands to it. */
export interface NodeClient {
  readonly id: string;
  readonly user: string;
  readonly info: ClientInfo;
  /** The token the connection was opened (or last refreshed) with; undefined for an anonymous one. */
  readonly token?: TokenIdentity | undefined;
  /** Its presence entries (channel and the info recorded there), refreshed before they expire. */
  presenceEntries(): Iterable<readonly [channel: string, info: ClientInfo]>;
  disconnect(disconnect: Disconnect): void;
  serverSubscribe(channel: string, chanInfo?: JsonText): void;
  serverUnsubscribe(channel: string): void;
  /** Ends its subscription to `channel` when it was made with a subscription token the node's gates now refuse. */
  recheckSubscription?(channel: string): void;
  sendMessage(data: JsonText): void;
  /** Called once a second by the node's clock: pings, expiries, timeouts. */
  tick(now: number): void;
}


export interface PublishInput {
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
  readonly idempotencyKey?: string;
  /** A client's temporary id for an optimistic send (persistent channels: stored, and broadcast as tag `temp_id`). */
  readonly tempId?: string;
  /** Publish without keeping the publication in history (and without an offset). */
  readonly skipHistory?: boolean;
  /** A client id that does not receive this publication live (the publisher, publishing to the others). */
  readonly excludeClient?: string;
}

/**
 * What a feature learns of this node's connections (the chat's user status). Calls come
 * synchronously from the connection's own work: they must not throw or block.
 */
export interface ConnectionObserver {
  /** A connection of `info.user` is established on this node (WebSocket after connect, SSE stream). */
  connected(info: ClientInfo): void;
  /** A connection that `connected` reported has ended, with the disconnect that ended it. */
  disconnected(info: ClientInfo, disconnect: Disconnect): void;
  /** The connection sent a command other than connect, ping and pong: its user is active at `now` (Unix ms). */
  active(info: ClientInfo, now: number): void;
}

/**
 * What a feature learns of this node's client subscriptions (lifecycle webhooks). Calls come
 * synchronously from the connection's own work: they must not throw or block.
 */
export interface SubscriptionObserver {
  /** A connection's subscription to `channel` is live (its subscribe reply is out). */
  subscribed(channel: string, info: ClientInfo): void;
  /** A subscription that `subscribed` reported has ended (unsubscribe, server, expiry, disconnect). */
  unsubscribed(channel: string, info: ClientInfo): void;
}

/**
 * A check of verified connection claims before a connection is admitted or its token
 * refreshed (blocked users, revoked tokens). Synchronous: it reads memory only, since it runs
 * on every connect.
 */
export interface ConnectionGate {
  /** The disconnect that refuses these claims, or undefined to admit them. */
  refusal(claims: ConnectionClaims): Disconnect | undefined;
}

/**
 * A check of a verified subscription token before a subscription is admitted or its token
 * refreshed, and of live subscriptions when `recheckSubscriptions` asks (invalidated channel
 * tokens). Synchronous, memory only.
 */
export interface SubscriptionGate {
  /** Why a subscription token of `user` for `channel` issued at `issuedAt` (Unix ms; undefined: no `iat`) is refused, or undefined. */
  refusal(user: string, channel: string, issuedAt: number | undefined): string | undefined;
}

/** The default path of a publish, without publish steps: the store then the bus for a persistent namespace, the bus otherwise. */
export type PublishNext = (channel: ResolvedChannel, data: JsonText, input: PublishInput) => Promise<StreamPosition>;

/**
 * A feature's step between a publish (client or server API) and its namespace's default path:
 * the chat's direct messages. It runs instead of that path for every publish to a channel of
 * its namespace, after the size check, and calls `next` (for this channel or others) to
 * publish; `next` never runs a step. Resolves with the position to acknowledge; rejects with a
 * RelaisError the publisher gets as it is.
 */
export interface PublishStep {
  publish(channel: ResolvedChannel, data: JsonText, input: PublishInput, next: PublishNext): Promise<StreamPosition>;
}

export interface JoinRequest {
  readonly recover: boolean;
  readonly since?: StreamPosition;
  /** Answer UNRECOVERABLE_POSITION instead of `recovered: false`. */
  readonly rejectUnrecovered?: boolean;
  /**
   * In a cache recovery mode namespace, replay what `since` missed when history still holds
   * all of it, instead of the latest publication only (SSE resumes: nothing lost, nothing repeated).
   */
  readonly resume?: boolean;
}

export interface JoinResult {
  /** Set for channels with history: the position after `publications`. */
  readonly position?: StreamPosition;
  readonly recovered: boolean;
  readonly publications: Publication[];
}

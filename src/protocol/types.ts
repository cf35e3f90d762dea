/**
 * Wire shapes of the Centrifugo client protocol v2, JSON flavour (client.proto of
 * centrifugal/protocol). Field names are as on the wire. Only what Relais reads or writes.
 */

export interface StreamPositionWire {
  offset?: number;
  epoch?: string;
}

export interface ConnectRequest {
  token?: string;
  data?: unknown;
  subs?: Record<string, SubscribeRequest>;
  name?: string;
  version?: string;
  headers?: Record<string, string>;
}

export interface SubscribeRequest {
  channel: string;
  token?: string;
  recover?: boolean;
  epoch?: string;
  offset?: number;
  data?: unknown;
  positioned?: boolean;
  recoverable?: boolean;
  join_leave?: boolean;
  flag?: number;
  /** Delta compression asked for: '' (none) or 'fossil'. */
  delta?: string;
  /** Server-side filter on publication tags. */
  tf?: FilterNode;
  /** Subscription kind; only 0 (a stream subscription) is served. */
  type?: number;
}

/**
 * A filter on publication tags (Centrifugo's FilterNode): a leaf compares one tag (`op`
 * empty), or `and` / `or` / `not` combine child nodes.
 */
export interface FilterNode {
  op?: string;
  key?: string;
  cmp?: string;
  val?: string;
  vals?: string[];
  nodes?: FilterNode[];
}

export interface UnsubscribeRequest {
  channel: string;
}

export interface PublishRequest {
  channel: string;
  data: unknown;
}

export interface ChannelRequest {
  channel: string;
}

export interface HistoryRequest {
  channel: string;
  limit?: number;
  since?: StreamPositionWire;
  reverse?: boolean;
}

export interface RpcRequest {
  method?: string;
  data?: unknown;
}

export interface SendRequest {
  data?: unknown;
}

export interface RefreshRequest {
  token: string;
}

export interface SubRefreshRequest {
  channel: string;
  token: string;
}

/** A decoded command: its id (0 for `send` and pongs) and exactly one request. */
export type Command =
  | { id: number; method: 'connect'; request: ConnectRequest }
  | { id: number; method: 'subscribe'; request: SubscribeRequest }
  | { id: number; method: 'unsubscribe'; request: UnsubscribeRequest }
  | { id: number; method: 'publish'; request: PublishRequest }
  | { id: number; method: 'presence'; request: ChannelRequest }
  | { id: number; method: 'presence_stats'; request: ChannelRequest }
  | { id: number; method: 'history'; request: HistoryRequest }
  | { id: number; method: 'ping'; request: Record<string, never> }
  | { id: number; method: 'send'; request: SendRequest }
  | { id: number; method: 'rpc'; request: RpcRequest }
  | { id: number; method: 'refresh'; request: RefreshRequest }
  | { id: number; method: 'sub_refresh'; request: SubRefreshRequest }
  | { id: 0; method: 'pong'; request: Record<string, never> };

export type CommandMethod = Command['method'];

export const COMMAND_METHODS = [
  'connect',
  'subscribe',
  'unsubscribe',
  'publish',
  'presence',
  'presence_stats',
  'history',
  'ping',
  'send',
  'rpc',
  'refresh',
  'sub_refresh',
] as const;

export interface ClientInfoWire {
  user: string;
  client: string;
  conn_info?: unknown;
  chan_info?: unknown;
}

/** Who a connection is on the wire: `connInfo` and `chanInfo` are JSON text. */
export interface WireClientInfo {
  readonly user: string;
  readonly client: string;
  readonly connInfo?: string;
  readonly chanInfo?: string;
}

/** A publication as the protocol carries it; `data` is JSON text. Relais' Publication matches it. */
export interface WirePublication {
  readonly data: string;
  readonly offset: number;
  readonly info?: WireClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
}

/** A SubscribeResult (also the body of a `subscribe` push, and of each connect `subs` entry). */
export interface SubscribeResultWire {
  expires?: boolean;
  ttl?: number;
  recoverable?: boolean;
  positioned?: boolean;
  epoch?: string;
  offset?: number;
  publications?: readonly WirePublication[];
  recovered?: boolean;
  was_recovering?: boolean;
  /**
   * Delta compression is on for this subscription: publications' data may be deltas, and
   * the JSON protocol carries every payload as a JSON string.
   */
  delta?: boolean;
  /** Custom data for the client (the subscribe proxy's `data`), JSON text. */
  data?: string;
}

export interface ConnectResultWire {
  client: string;
  version: string;
  node?: string;
  /** Over bidirectional emulation: the id the client quotes in its emulation requests. */
  session?: string;
  expires?: boolean;
  ttl?: number;
  ping?: number;
  pong?: boolean;
  subs?: Record<string, SubscribeResultWire>;
  /** Custom data for the client (the connect proxy's `data`), JSON text. */
  data?: string;
}

export interface RefreshResultWire {
  client: string;
  version: string;
  expires?: boolean;
  ttl?: number;
}

export interface HistoryResultWire {
  publications: readonly WirePublication[];
  epoch: string;
  offset: number;
}

/** The result of a command, by method: what a codec encodes in a reply. */
export type ReplyResult =
  | { readonly method: 'connect'; readonly result: ConnectResultWire }
  | { readonly method: 'subscribe'; readonly result: SubscribeResultWire }
  | { readonly method: 'unsubscribe' | 'publish' | 'ping'; readonly result: Record<string, never> }
  | { readonly method: 'presence'; readonly result: { readonly presence: Readonly<Record<string, WireClientInfo>> } }
  | { readonly method: 'presence_stats'; readonly result: { readonly num_clients: number; readonly num_users: number } }
  | { readonly method: 'history'; readonly result: HistoryResultWire }
  | { readonly method: 'rpc'; readonly result: { readonly data?: string } }
  | { readonly method: 'refresh'; readonly result: RefreshResultWire }
  | { readonly method: 'sub_refresh'; readonly result: { readonly expires?: boolean; readonly ttl?: number } };

/**
 * An asynchronous message from the server. A publication push says how its data is
 * carried: `plain` (JSON as is), `full` (a subscription with delta compression: the whole
 * payload, which the JSON protocol carries as a JSON string) or `delta` (a fossil delta
 * against the subscriber's previous publication).
 */
export type PushMessage =
  | { readonly type: 'pub'; readonly channel: string; readonly pub: WirePublication; readonly form: 'plain' | 'full' }
  | { readonly type: 'pub'; readonly channel: string; readonly pub: WirePublication; readonly form: 'delta'; readonly patch: Uint8Array }
  | { readonly type: 'join' | 'leave'; readonly channel: string; readonly info: WireClientInfo }
  | { readonly type: 'unsubscribe'; readonly channel: string; readonly code: number; readonly reason: string }
  | { readonly type: 'subscribe'; readonly channel: string; readonly sub: SubscribeResultWire }
  | { readonly type: 'message'; readonly data: string }
  | { readonly type: 'disconnect'; readonly code: number; readonly reason: string }
  | { readonly type: 'refresh'; readonly expires: boolean; readonly ttl: number };

export interface ErrorWire {
  code: number;
  message: string;
  temporary?: boolean;
}

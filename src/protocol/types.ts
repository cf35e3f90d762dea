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

export interface ErrorWire {
  code: number;
  message: string;
  temporary?: boolean;
}

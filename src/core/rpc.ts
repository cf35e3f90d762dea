import type { ProxyCaller } from './client_proxy.js';
import type { JsonText } from './json.js';
import type { ClientInfo } from './publication.js';

/** Who sent an rpc or send command. */
export interface CallerContext {
  readonly client: string;
  readonly user: string;
  /** The connection as publications carry it (user, client, connection info): a feature that publishes for the caller uses it. */
  readonly info?: ClientInfo;
  /** The connection as the app backend's proxies describe it (transport, forwarded headers, meta). */
  readonly proxy?: ProxyCaller;
}

/**
 * Handles client `rpc` and `send` commands (the app backend, through the HTTP proxy).
 * `rpc` resolves with the reply data or throws a RelaisError for the client.
 */
export interface RpcHandler {
  rpc(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined>;
  send(caller: CallerContext, data: JsonText): Promise<void>;
}

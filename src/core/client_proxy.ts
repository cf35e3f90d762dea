/**
 * The app backend's say over client events (Centrifugo's proxy hooks): connect, refresh,
 * subscribe, sub_refresh and publish. Core asks; the server's HTTP implementation
 * (src/server/proxy.ts) answers with Centrifugo's request and result shapes.
 *
 * Every call resolves with the backend's result, or rejects with:
 * - a RelaisError the client gets as it is: the backend's own `error {code, message}`
 *   (PROXY_REFUSED, with the backend's wire code), or PROXY_UNAVAILABLE (temporary: timeout,
 *   backend down, non-2xx answer, answer that is not the expected JSON);
 * - a DisconnectError when the backend answered `disconnect {code, reason}`.
 * A call never waits past the proxy's timeout.
 */
import type { NamespaceOptions } from '../config/schema.js';
import { RelaisError } from './errors.js';
import type { JsonText } from './json.js';

/** Who is asking: the fields every proxy request carries. */
export interface ProxyCaller {
  readonly client: string;
  /** `websocket`, or `sse`. */
  readonly transport: string;
  /** The client protocol of the connection; `json` when absent. Payloads are JSON in both. */
  readonly protocol?: 'json' | 'protobuf';
  /** '' before connect and for anonymous connections. */
  readonly user: string;
  /** Headers of the connection's HTTP request kept for the proxy (lowercase names). */
  readonly headers: Readonly<Record<string, string>>;
  /** Headers the client sent in its connect command (headers emulation), kept for the proxy. */
  readonly emulatedHeaders?: Readonly<Record<string, string>>;
  /** Meta the connect proxy attached to the connection (never shown to clients). */
  readonly meta?: JsonText;
}

export interface ConnectProxyRequest {
  readonly name?: string;
  readonly version?: string;
  /** Custom data of the connect command. */
  readonly data?: JsonText;
}

/** Options of a server-side subscription made at connect (Centrifugo's SubscribeOptions). */
export interface ProxySubscribeOptions {
  readonly info?: JsonText;
  readonly data?: JsonText;
}

export interface ConnectProxyResult {
  /** '' accepts the connection as anonymous. */
  readonly user: string;
  /** Unix ms when the connection must be refreshed (through the refresh proxy); undefined: never. */
  readonly expiresAt?: number;
  readonly info?: JsonText;
  /** Sent to the client in the connect reply. */
  readonly data?: JsonText;
  /** Server-side subscriptions: `channels` and the keys of `subs`. */
  readonly channels: readonly string[];
  readonly subs: Readonly<Record<string, ProxySubscribeOptions>>;
  readonly meta?: JsonText;
}

export interface RefreshProxyResult {
  /** The connection ends (disconnect `expired`). */
  readonly expired: boolean;
  /** New expiry, Unix ms; undefined: never expires again. */
  readonly expiresAt?: number;
  readonly info?: JsonText;
}

/**
 * Namespace options the subscribe proxy overrides for one subscription (Centrifugo's
 * `override`); an absent field keeps the namespace's value.
 */
export interface SubscriptionOverride {
  /** This subscriber is in the channel's presence. */
  readonly presence?: boolean;
  /** This subscriber's join and leave are published, and it receives join and leave events. */
  readonly joinLeave?: boolean;
  /** This subscriber receives join and leave events (whether its own are published or not). */
  readonly forcePushJoinLeave?: boolean;
  readonly forceRecovery?: boolean;
  readonly forcePositioning?: boolean;
}

export interface SubscribeProxyResult {
  /** Channel info: carried in presence, join/leave and the client's publications. */
  readonly info?: JsonText;
  /** Sent to the client in the subscribe reply. */
  readonly data?: JsonText;
  /** Unix ms when the subscription is refreshed (through the sub_refresh proxy); undefined: never. */
  readonly expiresAt?: number;
  readonly override?: SubscriptionOverride;
}

export interface PublishProxyResult {
  /** Replaces the client's data when set. */
  readonly data?: JsonText;
  readonly skipHistory: boolean;
  /** Publication tags stamped by the backend. */
  readonly tags?: Readonly<Record<string, string>>;
}

/** The hooks a namespace routes to a proxy of its choice. */
export type NamespaceHook = 'subscribe' | 'publish' | 'subRefresh';

/** The hooks of one named proxy (Centrifugo's `proxies`): its endpoint answers whichever a namespace routes to it. */
export type NamedProxyHooks = Required<Pick<ClientProxies, NamespaceHook>>;

/** The proxies configured; an absent one leaves the event to Relais' own rules. */
export interface ClientProxies {
  readonly connect?: (caller: ProxyCaller, request: ConnectProxyRequest) => Promise<ConnectProxyResult>;
  readonly refresh?: (caller: ProxyCaller) => Promise<RefreshProxyResult>;
  readonly subscribe?: (caller: ProxyCaller, channel: string, data: JsonText | undefined) => Promise<SubscribeProxyResult>;
  readonly subRefresh?: (caller: ProxyCaller, channel: string) => Promise<RefreshProxyResult>;
  readonly publish?: (caller: ProxyCaller, channel: string, data: JsonText) => Promise<PublishProxyResult>;
  /** Named proxies by name (`subscribe_proxy_name` and the like choose them); the hooks above are "default". */
  readonly named?: Readonly<Record<string, NamedProxyHooks>>;
  /** Names of the connection request headers to keep for the proxies, every proxy's (lowercase). */
  readonly httpHeaders: readonly string[];
  /** Names of the connect command's headers to keep for the proxies (lowercase). */
  readonly emulatedHeaders: readonly string[];
}

/** Keeps the headers named in `names` (lowercase) of a request's headers, joined when repeated. */
export function pickHeaders(headers: Readonly<Record<string, string | string[] | undefined>>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined) picked[name] = Array.isArray(value) ? value.join(name === 'cookie' ? '; ' : ', ') : value;
  }
  return picked;
}

/**
 * The proxy a namespace's hook asks: undefined when the namespace does not turn the hook on,
 * or turns it on without a default proxy (its own rules apply; start-up refuses that
 * configuration). A name the configuration does not define was refused at start-up too;
 * should one still come here, the hook answers NOT_AVAILABLE rather than fall back to the
 * namespace's rule.
 */
export function namespaceProxy<H extends NamespaceHook>(proxies: ClientProxies | undefined, hook: H, options: NamespaceOptions): ClientProxies[H] | undefined {
  const [on, name] =
    hook === 'subscribe'
      ? [options.proxy_subscribe, options.subscribe_proxy_name]
      : hook === 'publish'
        ? [options.proxy_publish, options.publish_proxy_name]
        : [options.proxy_sub_refresh, options.sub_refresh_proxy_name];
  if (!on) return undefined;
  if (name === undefined || name === 'default') return proxies?.[hook];
  const named: Partial<Pick<ClientProxies, NamespaceHook>> | undefined = proxies?.named?.[name];
  return named?.[hook] ?? unavailable;
}

function unavailable(): Promise<never> {
  return Promise.reject(new RelaisError('NOT_AVAILABLE', 'the proxy this namespace names is not configured'));
}

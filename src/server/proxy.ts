import type { RelaisConfig } from '../config/schema.js';
import type {
  ClientProxies,
  ConnectProxyResult,
  NamedProxyHooks,
  ProxyCaller,
  ProxySubscribeOptions,
  PublishProxyResult,
  RefreshProxyResult,
  SubscribeProxyResult,
  SubscriptionOverride,
} from '../core/client_proxy.js';
import { RelaisError } from '../core/errors.js';
import { parseJsonText, toJsonText, type JsonText } from '../core/json.js';
import type { CallerContext, RpcHandler } from '../core/rpc.js';
import type { RpcMethods } from '../core/rpc_router.js';
import { ProxyTransport, type ProxyKind } from './proxy_http.js';

export { ProxyStats } from './proxy_http.js';

function bad(proxy: ProxyKind, why: string): RelaisError {
  return new RelaisError('PROXY_UNAVAILABLE', `app backend answered the ${proxy} proxy with an unexpected shape: ${why}`);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A payload member of a result (`data`, `info`) as JsonText; undefined when absent or null.
 * Its `b64` twin (`b64data`: base64 of the payload's bytes, Centrifugo's binary form) wins when
 * it is a non-empty string; the bytes must be UTF-8 JSON, as every payload Relais carries.
 */
function jsonField(result: Record<string, unknown>, name: string, proxy: ProxyKind): JsonText | undefined {
  const b64 = result[`b64${name}`];
  if (b64 !== undefined && b64 !== null && b64 !== '') {
    if (typeof b64 !== 'string' || !BASE64.test(b64)) throw bad(proxy, `\`b64${name}\` is not base64`);
    try {
      return parseJsonText(strictUtf8.decode(Buffer.from(b64, 'base64')));
    } catch {
      throw bad(proxy, `\`b64${name}\` is not the base64 of UTF-8 JSON (Relais carries JSON payloads)`);
    }
  }
  const value = result[name];
  return value === undefined || value === null ? undefined : toJsonText(value);
}

/** `expire_at` (Unix seconds) as Unix ms; undefined when absent or 0 (never expires). */
function expiry(proxy: ProxyKind, result: Record<string, unknown>): number | undefined {
  const value = result['expire_at'];
  if (value === undefined || value === null || value === 0) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(proxy, '`expire_at` is not Unix seconds');
  return value * 1000;
}

function stringField(proxy: ProxyKind, result: Record<string, unknown>, name: string): string {
  const value = result[name];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw bad(proxy, `\`${name}\` is not a string`);
  return value;
}

function parseConnect(result: Record<string, unknown>): ConnectProxyResult {
  const channels = result['channels'] ?? [];
  if (!Array.isArray(channels) || !channels.every((c): c is string => typeof c === 'string')) throw bad('connect', '`channels` is not an array of strings');
  const rawSubs = result['subs'] ?? {};
  if (typeof rawSubs !== 'object' || rawSubs === null || Array.isArray(rawSubs)) throw bad('connect', '`subs` is not an object');
  const subs: Record<string, ProxySubscribeOptions> = {};
  for (const [channel, options] of Object.entries(rawSubs as Record<string, unknown>)) {
    const o = typeof options === 'object' && options !== null ? (options as Record<string, unknown>) : {};
    const info = jsonField(o, 'info', 'connect');
    const data = jsonField(o, 'data', 'connect');
    subs[channel] = { ...(info !== undefined ? { info } : {}), ...(data !== undefined ? { data } : {}) };
  }
  const expiresAt = expiry('connect', result);
  const info = jsonField(result, 'info', 'connect');
  const data = jsonField(result, 'data', 'connect');
  const meta = jsonField(result, 'meta', 'connect');
  return {
    user: stringField('connect', result, 'user'),
    channels,
    subs,
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(info !== undefined ? { info } : {}),
    ...(data !== undefined ? { data } : {}),
    ...(meta !== undefined ? { meta } : {}),
  };
}

function parseRefresh(proxy: ProxyKind, result: Record<string, unknown>): RefreshProxyResult {
  const expiresAt = expiry(proxy, result);
  const info = jsonField(result, 'info', proxy);
  return { expired: result['expired'] === true, ...(expiresAt !== undefined ? { expiresAt } : {}), ...(info !== undefined ? { info } : {}) };
}

/** Centrifugo's override field names, each a `{"value": bool}`. */
const OVERRIDE_FIELDS = {
  presence: 'presence',
  join_leave: 'joinLeave',
  force_push_join_leave: 'forcePushJoinLeave',
  force_recovery: 'forceRecovery',
  force_positioning: 'forcePositioning',
} as const satisfies Record<string, keyof SubscriptionOverride>;

function parseOverride(raw: unknown): SubscriptionOverride | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('subscribe', '`override` is not an object');
  const override: { -readonly [K in keyof SubscriptionOverride]: boolean } = {};
  for (const [field, key] of Object.entries(OVERRIDE_FIELDS)) {
    const wrapped = (raw as Record<string, unknown>)[field];
    if (wrapped === undefined || wrapped === null) continue;
    const value = typeof wrapped === 'object' && !Array.isArray(wrapped) ? (wrapped as Record<string, unknown>)['value'] : 'not an object';
    // Protobuf's BoolValue leaves a false value out of its JSON: `{}` means false.
    if (value !== undefined && typeof value !== 'boolean') throw bad('subscribe', `\`override.${field}\` is not {"value": boolean}`);
    override[key] = value === true;
  }
  return Object.keys(override).length > 0 ? override : undefined;
}

function parseSubscribe(result: Record<string, unknown>): SubscribeProxyResult {
  const expiresAt = expiry('subscribe', result);
  const info = jsonField(result, 'info', 'subscribe');
  const data = jsonField(result, 'data', 'subscribe');
  const override = parseOverride(result['override']);
  return {
    ...(expiresAt !== undefined ? { expiresAt } : {}),
    ...(info !== undefined ? { info } : {}),
    ...(data !== undefined ? { data } : {}),
    ...(override ? { override } : {}),
  };
}

function parsePublish(result: Record<string, unknown>): PublishProxyResult {
  const data = jsonField(result, 'data', 'publish');
  const rawTags = result['tags'];
  let tags: Record<string, string> | undefined;
  if (rawTags !== undefined && rawTags !== null) {
    if (typeof rawTags !== 'object' || Array.isArray(rawTags) || !Object.values(rawTags).every((v) => typeof v === 'string')) {
      throw bad('publish', '`tags` is not a map of strings');
    }
    tags = rawTags as Record<string, string>;
  }
  return { skipHistory: result['skip_history'] === true, ...(data !== undefined ? { data } : {}), ...(tags ? { tags } : {}) };
}

const user = (caller: ProxyCaller): { user?: string } => (caller.user !== '' ? { user: caller.user } : {});

function subscribeHook(transport: ProxyTransport, url: string): NamedProxyHooks['subscribe'] {
  return async (caller, channel, data) => {
    const body = transport.body(caller, { ...user(caller), channel }, { data });
    return parseSubscribe((await transport.call('subscribe', url, caller, body)).result);
  };
}

function subRefreshHook(transport: ProxyTransport, url: string): NamedProxyHooks['subRefresh'] {
  return async (caller, channel) => {
    const body = transport.body(caller, { ...user(caller), channel });
    return parseRefresh('sub_refresh', (await transport.call('sub_refresh', url, caller, body)).result);
  };
}

function publishHook(transport: ProxyTransport, url: string): NamedProxyHooks['publish'] {
  return async (caller, channel, data) => {
    const body = transport.body(caller, { ...user(caller), channel }, { data });
    return parsePublish((await transport.call('publish', url, caller, body)).result);
  };
}

/** A named proxy (top-level `proxies`): its endpoint, the headers it forwards, its own transport. */
export interface NamedProxy {
  readonly name: string;
  readonly endpoint: string;
  readonly httpHeaders: readonly string[];
  readonly transport: ProxyTransport;
}

/** The client event proxies configured in `proxy.*` over `transport`, and the named ones over theirs. */
export function createClientProxies(proxy: RelaisConfig['proxy'], transport: ProxyTransport, namedProxies: readonly NamedProxy[] = []): ClientProxies | undefined {
  const { connect_url, refresh_url, subscribe_url, sub_refresh_url, publish_url } = proxy;
  // Without hooks the headers may still be wanted: the rpc proxy forwards them too.
  if (
    !connect_url &&
    !refresh_url &&
    !subscribe_url &&
    !sub_refresh_url &&
    !publish_url &&
    namedProxies.length === 0 &&
    proxy.http_headers.length === 0 &&
    proxy.emulated_headers.length === 0
  ) {
    return undefined;
  }
  const named: Record<string, NamedProxyHooks> = {};
  for (const p of namedProxies) {
    named[p.name] = { subscribe: subscribeHook(p.transport, p.endpoint), publish: publishHook(p.transport, p.endpoint), subRefresh: subRefreshHook(p.transport, p.endpoint) };
  }
  // A connection keeps the headers any proxy forwards; each transport sends its own.
  const httpHeaders = new Set([...proxy.http_headers, ...namedProxies.flatMap((p) => p.httpHeaders)].map((h) => h.toLowerCase()));
  return {
    httpHeaders: [...httpHeaders],
    emulatedHeaders: proxy.emulated_headers.map((h) => h.toLowerCase()),
    ...(namedProxies.length > 0 ? { named } : {}),
    ...(connect_url
      ? {
          connect: async (caller, request) => {
            const fields = { ...(request.name ? { name: request.name } : {}), ...(request.version ? { version: request.version } : {}) };
            const body = transport.body({ ...caller, meta: undefined }, fields, { data: request.data });
            return parseConnect((await transport.call('connect', connect_url, caller, body)).result);
          },
        }
      : {}),
    ...(refresh_url
      ? {
          refresh: async (caller) => parseRefresh('refresh', (await transport.call('refresh', refresh_url, caller, transport.body(caller, user(caller)))).result),
        }
      : {}),
    ...(subscribe_url ? { subscribe: subscribeHook(transport, subscribe_url) } : {}),
    ...(sub_refresh_url ? { subRefresh: subRefreshHook(transport, sub_refresh_url) } : {}),
    ...(publish_url ? { publish: publishHook(transport, publish_url) } : {}),
  };
}

export interface HttpProxyOptions {
  readonly rpcUrl?: string;
  readonly sendUrl?: string;
  readonly transport: ProxyTransport;
}

/**
 * Forwards client `rpc` and `send` commands to the app backend over HTTP (Centrifugo's
 * proxy shapes): POST `{client, user, method, data}`; an rpc answer is
 * `{"result": {"data": ...}}` or `{"error": {"code", "message"}}`.
 */
export class HttpProxy implements RpcHandler, RpcMethods {
  constructor(private readonly options: HttpProxyOptions) {}

  async rpc(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined> {
    if (!this.options.rpcUrl) throw new RelaisError('METHOD_NOT_FOUND', 'no rpc handler configured (proxy.rpc_url)');
    const transport = this.options.transport;
    const body = transport.body(caller.proxy, { ...(caller.proxy ? {} : { client: caller.client }), user: caller.user, method }, { data });
    const { result } = await transport.call('rpc', this.options.rpcUrl, caller.proxy, body);
    return jsonField(result, 'data', 'rpc');
  }

  /** As the route of an rpc namespace (`proxy.rpc_namespaces`). */
  call(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined> {
    return this.rpc(caller, method, data);
  }

  async send(caller: CallerContext, data: JsonText): Promise<void> {
    if (!this.options.sendUrl) return;
    const transport = this.options.transport;
    const body = transport.body(caller.proxy, { ...(caller.proxy ? {} : { client: caller.client }), user: caller.user }, { data });
    await transport.call('send', this.options.sendUrl, caller.proxy, body);
  }
}

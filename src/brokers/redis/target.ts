/**
 * What a REDIS_URL names: one Redis server, a Redis Cluster, or a master group watched by
 * Redis Sentinel. One URL scheme per deployment shape, so that a URL alone says how to reach
 * the data and where a failover lands:
 *
 *   redis://[user:password@]host:port[/db]                       one server (rediss:// with TLS)
 *   redis+cluster://[user:password@]host:port,host:port,...      a Cluster, seed nodes (rediss+cluster://)
 *   redis+sentinel://[user:password@]host:port,host:port/name[/db]   the master named `name` (rediss+sentinel://)
 *
 * The credentials of a cluster or sentinel URL are those of the Redis nodes. Sentinels that
 * require a password of their own take it as `?sentinel_password=...`.
 */

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

export type RedisTarget =
  | { readonly kind: 'single'; readonly url: string }
  | {
      readonly kind: 'cluster';
      readonly nodes: readonly RedisAddress[];
      readonly username?: string;
      readonly password?: string;
      readonly tls: boolean;
    }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly RedisAddress[];
      readonly masterName: string;
      readonly db: number;
      readonly username?: string;
      readonly password?: string;
      readonly sentinelPassword?: string;
      readonly tls: boolean;
    };

/** The schemes a REDIS_URL may start with, for config validation. */
export const REDIS_URL_SCHEMES = /^(rediss?|rediss?\+cluster|rediss?\+sentinel):\/\//;

const SCHEME = /^(rediss?)(\+cluster|\+sentinel)?:\/\/(.*)$/s;

/** Parses a REDIS_URL; throws an Error saying what is wrong. */
export function parseRedisUrl(url: string): RedisTarget {
  const match = SCHEME.exec(url);
  if (!match) throw new Error('redis url must start with redis://, rediss://, redis+cluster:// or redis+sentinel://');
  const [, base, shape, rest = ''] = match;
  if (shape === undefined) return { kind: 'single', url };
  const tls = base === 'rediss';
  const queryAt = rest.indexOf('?');
  const query = new URLSearchParams(queryAt >= 0 ? rest.slice(queryAt + 1) : '');
  const withoutQuery = queryAt >= 0 ? rest.slice(0, queryAt) : rest;
  const at = withoutQuery.lastIndexOf('@');
  const credentials = at >= 0 ? withoutQuery.slice(0, at) : '';
  const location = at >= 0 ? withoutQuery.slice(at + 1) : withoutQuery;
  const slash = location.indexOf('/');
  const hostList = slash >= 0 ? location.slice(0, slash) : location;
  const path = slash >= 0 ? location.slice(slash + 1) : '';
  const addresses = parseHosts(hostList);
  const auth = parseCredentials(credentials);
  if (shape === '+cluster') {
    if (path.replace(/\/+$/, '') !== '') throw new Error('a redis+cluster:// url takes no database or path: a Cluster has database 0 only');
    return { kind: 'cluster', nodes: addresses, tls, ...auth };
  }
  const [masterName = '', dbText, ...extra] = path.split('/').filter((part) => part !== '');
  if (masterName === '') throw new Error('a redis+sentinel:// url names its master group: redis+sentinel://host:port,host:port/mymaster');
  if (extra.length > 0) throw new Error('a redis+sentinel:// url path is /<master name>[/<db>]');
  const db = dbText === undefined ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new Error(`redis+sentinel:// database "${dbText ?? ''}" is not a number`);
  const sentinelPassword = query.get('sentinel_password') ?? undefined;
  return {
    kind: 'sentinel',
    sentinels: addresses,
    masterName: decodeURIComponent(masterName),
    db,
    tls,
    ...auth,
    ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
  };
}

function parseHosts(list: string): RedisAddress[] {
  if (list === '') throw new Error('redis url names no host: give host:port[,host:port...]');
  return list.split(',').map((entry) => {
    const trimmed = entry.trim();
    const colon = trimmed.lastIndexOf(':');
    const host = (colon >= 0 ? trimmed.slice(0, colon) : trimmed).replace(/^\[(.*)\]$/, '$1');
    const port = colon >= 0 ? Number(trimmed.slice(colon + 1)) : 6379;
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`redis url host "${trimmed}" is not host:port`);
    return { host, port };
  });
}

function parseCredentials(text: string): { username?: string; password?: string } {
  if (text === '') return {};
  const colon = text.indexOf(':');
  const username = decodeURIComponent(colon >= 0 ? text.slice(0, colon) : text);
  const password = colon >= 0 ? decodeURIComponent(text.slice(colon + 1)) : undefined;
  return { ...(username === '' ? {} : { username }), ...(password === undefined ? {} : { password }) };
}

/** The URL without its passwords, for logs and errors. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, (userinfo) => userinfo.replace(/:[^:@]*@$/, ':***@')).replace(/(sentinel_password=)[^&]*/, '$1***');
}

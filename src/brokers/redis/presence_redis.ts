import { RelaisError } from '../../core/errors.js';
import type { ClientInfo } from '../../core/publication.js';
import type { PresenceManager, PresenceStats } from '../broker.js';
import { decodeClientInfo, encodeClientInfo } from './codec.js';
import { closeConnection, createConnection, unavailable, watchConnection, silentLogger, type RedisClient, type RedisLogger } from './connection.js';
import { RedisKeys } from './keys.js';
import { PRESENCE_ADD, PRESENCE_GET, PRESENCE_REMOVE, PRESENCE_STATS, type LuaScript } from './scripts.js';

export type RedisPresenceOptions = {
  /** Must be the broker's prefix for nodes of one deployment to share presence. */
  readonly prefix: string;
  readonly logger?: RedisLogger;
  /** Longest a command may wait for its reply, ms; default 5000. */
  readonly commandTimeoutMs?: number;
} & (
  | {
      /** A REDIS_URL (target.ts): the manager opens, and closes, its own connection. */
      readonly url: string;
      readonly nodeId?: string;
    }
  | {
      /** A connection owned by the caller, who closes it: `close` leaves it open. */
      readonly client: RedisClient;
    }
);

/**
 * Cluster-wide presence in Redis. Per channel, a hash clientId -> ClientInfo JSON and a
 * sorted set clientId -> expiry (Redis clock, ms), both under the channel's hash tag.
 * Every operation is one Lua script (scripts.ts), atomic: `add` upserts with its TTL,
 * `get` and `stats` first drop expired entries, so the entries of a dead node vanish once
 * their TTL passes, and the keys themselves expire after their longest-lived entry.
 * `stats().numUsers` counts distinct users. Failures reject with BROKER_UNAVAILABLE.
 */
export class RedisPresenceManager implements PresenceManager {
  private readonly keys: RedisKeys;
  private readonly redis: RedisClient;
  private readonly owned: boolean;
  private readonly commandTimeoutMs: number;
  private closed = false;

  constructor(options: RedisPresenceOptions) {
    this.keys = new RedisKeys(options.prefix);
    this.commandTimeoutMs = options.commandTimeoutMs ?? 5000;
    if ('client' in options) {
      this.redis = options.client;
      this.owned = false;
    } else {
      // Connects on first use: presence has no start. Commands made before the connection is
      // up wait for it, bounded by the command deadline; one made while Redis is down
      // rejects at the next failed reconnect attempt at the latest.
      this.redis = createConnection(options.url, {
        name: `${options.prefix}:${options.nodeId ?? 'node'}:presence`,
        commandTimeoutMs: this.commandTimeoutMs,
        connectTimeoutMs: 5000,
        offlineQueue: true,
      });
      this.owned = true;
      watchConnection(this.redis, 'presence', options.url, options.logger ?? silentLogger);
    }
  }

  async add(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    await this.run('add', PRESENCE_ADD, channel, [info.client, encodeClientInfo(info), Math.floor(ttlMs)]);
  }

  async remove(channel: string, clientId: string): Promise<void> {
    await this.run('remove', PRESENCE_REMOVE, channel, [clientId]);
  }

  async get(channel: string): Promise<Record<string, ClientInfo>> {
    const reply = await this.run('get', PRESENCE_GET, channel, []);
    if (!Array.isArray(reply)) throw new RelaisError('INTERNAL', 'unexpected presence reply');
    const entries: Record<string, ClientInfo> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const client: unknown = reply[i];
      const value: unknown = reply[i + 1];
      if (typeof client !== 'string' || typeof value !== 'string') continue;
      try {
        entries[client] = decodeClientInfo(value);
      } catch {
        // Not written by Relais: not an entry.
      }
    }
    return entries;
  }

  async stats(channel: string): Promise<PresenceStats> {
    const reply = await this.run('stats', PRESENCE_STATS, channel, []);
    if (Array.isArray(reply)) {
      const [numClients, numUsers] = reply as unknown[];
      if (typeof numClients === 'number' && typeof numUsers === 'number') return { numClients, numUsers };
    }
    throw new RelaisError('INTERNAL', 'unexpected presence stats reply');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) await closeConnection(this.redis, this.commandTimeoutMs);
  }

  private async run(operation: string, script: LuaScript, channel: string, args: readonly (string | number)[]): Promise<unknown> {
    if (this.closed) throw new RelaisError('BROKER_UNAVAILABLE', `redis presence ${operation}: the presence manager is closed`);
    try {
      return await script.run(this.redis, [this.keys.presence(channel), this.keys.presenceExpiry(channel)], args);
    } catch (err) {
      throw unavailable(`presence ${operation}`, err);
    }
  }
}

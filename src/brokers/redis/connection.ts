/**
 * Redis connections that fail fast: a command made while Redis is unreachable rejects at
 * once, a command in flight when the link drops rejects instead of being sent again, and
 * every command has a deadline. Callers see failures as BROKER_UNAVAILABLE and decide
 * themselves whether to retry; the connection keeps reconnecting in the background.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { RelaisError } from '../../core/errors.js';
import { parseRedisUrl, redactRedisUrl, type RedisTarget } from './target.js';

/** A connection to one server, through Sentinel to the current master, or to a whole Cluster. */
export type RedisClient = Redis | Cluster;

/** What the Redis broker logs: a pino logger fits. */
export interface RedisLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: RedisLogger = { warn: () => undefined, error: () => undefined };

export interface ConnectionOptions {
  /** Shown by CLIENT LIST, to tell a deployment's connections apart. */
  readonly name: string;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /**
   * Queue commands made before the first connection (and between reconnects) instead of
   * rejecting them. Only for clients that have no explicit start; the command deadline and
   * the one-attempt retry policy still bound how long a queued command waits.
   */
  readonly offlineQueue?: boolean;
  /**
   * A connection that only subscribes. On a Cluster it holds one connection per master
   * (ioredis `shardedSubscribers`), each SSUBSCRIBE going to the shard of its channel.
   */
  readonly subscriber?: boolean;
}

const RECONNECT_MAX_MS = 500;

/**
 * Reconnect backoff: 100 ms doubling to 500 ms, forever. Until a node is back on the bus its
 * subscribers cannot be told to resubscribe, nor new subscribes served: a 2 s cap kept them
 * waiting up to 2 s (1 s on average) after the bus was back, to save a few connections' tries.
 */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 5), RECONNECT_MAX_MS);
}

/** The options shared by every connection to one Redis server, whatever the deployment shape. */
function serverOptions(options: ConnectionOptions): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: options.name,
    connectTimeout: options.connectTimeoutMs,
    commandTimeout: options.commandTimeoutMs,
    // No offline queue: a publish made while Redis is down must reject, not wait for a
    // reconnect and resolve late.
    enableOfflineQueue: options.offlineQueue ?? false,
    // A command whose reply was lost with the connection may have run: never resend it (a
    // publish would happen twice) and reject it as soon as the link drops.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // The broker resubscribes itself after a reconnect, then tells the node to resync.
    autoResubscribe: false,
    retryStrategy: reconnectDelayMs,
  };
}

export function createConnection(url: string | RedisTarget, options: ConnectionOptions): RedisClient {
  const target = typeof url === 'string' ? parseRedisUrl(url) : url;
  if (target.kind === 'single') return new Redis(target.url, serverOptions(options));
  if (target.kind === 'sentinel') {
    return new Redis({
      ...serverOptions(options),
      sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
      name: target.masterName,
      db: target.db,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
      // Sentinel announces a promotion on +switch-master: reconnect to the new master at once
      // instead of waiting for the old one's connection to fail.
      failoverDetector: true,
      sentinelRetryStrategy: reconnectDelayMs,
      // A master demoted by a failover answers writes with READONLY: reconnect (Sentinel
      // then gives the new master) and let the failed command reject, never resend it.
      reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 1 : false),
    });
  }
  // Node connections: the fast-fail settings of a single server; ioredis itself decides
  // their reconnects and queue (it opens them lazily, on the first command routed there).
  const { enableOfflineQueue: _queue, retryStrategy: _retry, ...server } = serverOptions(options);
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: options.offlineQueue ?? false,
    // A command refused during a failover (CLUSTERDOWN) or whose connection closed may have
    // run (the latter): reject it rather than send it again after a delay.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    clusterRetryStrategy: reconnectDelayMs,
    slotsRefreshTimeout: options.connectTimeoutMs,
    redisOptions: {
      ...server,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {}),
    },
    ...(options.subscriber ? { shardedSubscribers: true } : {}),
  };
  return new Cluster(
    target.nodes.map(({ host, port }) => ({ host, port })),
    clusterOptions,
  );
}

/** Resolves once the connection is ready; rejects (leaving it closed) after `timeoutMs`. */
export async function connectWithin(redis: RedisClient, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const connecting = redis.connect();
  // The race below may settle on the timer first: the connect promise must never go unhandled.
  connecting.catch(() => undefined);
  try {
    await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    redis.disconnect();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** QUIT when the link is up (pending replies arrive first), then make sure it is closed. */
export async function closeConnection(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        redis.quit(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        }),
      ]);
    } catch {
      // Closing anyway.
    } finally {
      clearTimeout(timer);
    }
  }
  redis.disconnect();
}

/**
 * Logs each outage of a connection once when it starts, once more if reconnecting fails
 * (ioredis reports an error per attempt), and once when it ends. Also keeps ioredis from
 * printing unhandled error events. Errors before the first `ready` are start's to report.
 */
export function watchConnection(redis: RedisClient, what: string, url: string, logger: RedisLogger): void {
  const context = { redis: redactUrl(url), connection: what };
  let up = false;
  let lost = false;
  let reported = false;
  let lastError: unknown;
  redis.on('error', (err: unknown) => {
    lastError = err;
    if (!lost || reported) return;
    reported = true;
    logger.warn({ ...context, err }, 'redis still unreachable; reconnecting');
  });
  redis.on('close', () => {
    // Status `end`: closed on purpose (quit, disconnect), no reconnect follows.
    if (!up || redis.status === 'end') return;
    up = false;
    lost = true;
    reported = false;
    logger.warn({ ...context, err: lastError }, 'redis connection lost; reconnecting');
  });
  redis.on('ready', () => {
    if (lost) logger.warn(context, 'redis connection restored');
    up = true;
    lost = false;
    lastError = undefined;
  });
}

/**
 * Pings the connection every `intervalMs` while it is up. A link that dies silently (no
 * FIN, e.g. a network partition) would otherwise look healthy until TCP gives up, minutes
 * later: a subscriber would miss publications unaware. A failed ping drops the connection,
 * which reconnects (and a subscriber then resubscribes and resyncs). Returns the stopper.
 */
export function startHealthCheck(redis: RedisClient, intervalMs: number, what: string, logger: RedisLogger): () => void {
  if (intervalMs <= 0) return () => undefined;
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight || redis.status !== 'ready') return;
    inFlight = true;
    redis
      .ping()
      .catch((err: unknown) => {
        if (redis.status !== 'ready') return;
        logger.warn({ err, connection: what }, 'redis health check failed; reconnecting');
        redis.disconnect(true);
      })
      .finally(() => {
        inFlight = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** A failure of Redis as the error callers handle: temporary, with the original as cause. */
export function unavailable(operation: string, err: unknown): RelaisError {
  if (err instanceof RelaisError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new RelaisError('BROKER_UNAVAILABLE', `redis ${operation} failed: ${reason}`, { cause: err });
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  return redactRedisUrl(url);
}

import { z } from 'zod';

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: a number of seconds, or a string such as "250ms", "10s", "5m", "24h", "30d". Parsed to milliseconds. */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      ctx.addIssue({ code: 'custom', message: 'expected a non-negative number of seconds' });
      return z.NEVER;
    }
    return Math.round(value * 1000);
  }
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "10s", "5m" or "24h", got "${value}"` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * (durationUnits[match[2] ?? 's'] ?? 1000));
});

/**
 * Who may subscribe to, or publish in, the channels of a namespace:
 * - anonymous: any connection, with or without a user;
 * - authenticated: any connection with a user id;
 * - owner: only the user the channel is named after (`user:alice` belongs to alice);
 * - token: only with a subscription token for the channel (subscribe only);
 * - members: only the members of the room the channel is (an asynchronous check, see
 *   ChannelAuthorizer); other users get permission denied;
 * - server-only: no client; only the server API.
 * A valid subscription token always grants subscribe, whatever the rule.
 */
/** Lifecycle events a webhook can receive (docs/webhooks.md). */
export const webhookEvent = z.enum(['connection_closed', 'unsubscribed', 'channel_occupied', 'channel_vacated']);
export type WebhookEvent = z.infer<typeof webhookEvent>;

export const accessRule = z.enum(['anonymous', 'authenticated', 'owner', 'token', 'members', 'server-only']);
export type AccessRule = z.infer<typeof accessRule>;

/** A token bucket: `burst` commands at once, refilled at `per_second`; per_second 0 turns it off. */
export const rateLimit = z
  .object({
    burst: z.number().int().min(1).max(1_000_000),
    per_second: z.number().min(0).max(1_000_000),
  })
  .strict();

export const namespaceOptions = z
  .object({
    /** Publications kept per channel; 0 keeps none (no offsets, no recovery). */
    history_size: z.number().int().min(0).max(1_000_000).default(0),
    /** How long a publication stays in history. */
    history_ttl: duration.default(0),
    /** How long a channel's offset and epoch outlive its last publication. */
    history_meta_ttl: duration.prefault('30d'),
    /** Recovery for every subscriber, even when its client did not ask for it. */
    force_recovery: z.boolean().default(false),
    /**
     * What a recovering subscriber gets (Centrifugo's `force_recovery_mode`). `stream`: every
     * publication it missed, or none. `cache`: a latest-value channel — the channel's latest
     * publication (within history_ttl) as its first event, on every subscribe and resubscribe,
     * then the live ones; an SSE resume still replays what it missed when history holds it all.
     * Needs history (history_size 1 is enough) and force_recovery.
     */
    force_recovery_mode: z.enum(['stream', 'cache']).default('stream'),
    /**
     * Delta compression a subscriber may ask for (`delta` in its subscribe request): ['fossil']
     * lets publications after a subscriber's first one go as fossil deltas of the previous.
     * Empty: none, and a subscribe asking for one is refused.
     */
    allowed_delta_types: z.array(z.enum(['fossil'])).default([]),
    /** Tell clients their stream is positioned (offsets checked for gaps). */
    force_positioning: z.boolean().default(false),
    /** Largest number of publications one recovery may replay; beyond it recovery fails. */
    recovery_max_publications: z.number().int().min(1).max(100_000).default(1000),
    /**
     * A subscriber that does not recover (its first subscribe) gets this many of the channel's
     * latest publications in its subscribe reply, before the live stream: a chat room shows its
     * last messages on join. 0: none. Needs history (or persist).
     */
    history_on_join: z.number().int().min(0).max(1000).default(0),
    presence: z.boolean().default(false),
    /** Push join and leave events to every subscriber. Needs presence. */
    join_leave: z.boolean().default(false),
    allow_subscribe: accessRule.default('authenticated'),
    allow_publish: accessRule.exclude(['token']).default('server-only'),
    /** Clients may read history (needs history_size and history_ttl). */
    allow_history: z.boolean().default(false),
    /** Clients may read presence and presence stats (needs presence). */
    allow_presence: z.boolean().default(false),
    /** SSE streams may subscribe with a glob pattern (`room:*`) in this namespace. */
    allow_wildcard: z.boolean().default(false),
    /** Per-connection limit on publishing into this namespace, on top of the global ones. */
    rate_limit: rateLimit.optional(),
    /** Publications are written to the durable store (SQLite or PostgreSQL) before they are acknowledged. */
    persist: z.boolean().default(false),
    /** How long the store keeps a persisted publication; 0 keeps it forever. */
    persist_ttl: duration.default(0),
    /** Persisted publications kept per channel (the newest); 0 keeps every one. */
    persist_size: z.number().int().min(0).max(1_000_000_000).default(0),
    /** Subscriptions without a token are decided by the app backend (proxy.subscribe_url) instead of allow_subscribe. */
    proxy_subscribe: z.boolean().default(false),
    /** Client publications are decided, and may be rewritten, by the app backend (proxy.publish_url) instead of allow_publish. */
    proxy_publish: z.boolean().default(false),
    /** Subscriptions the subscribe proxy gave an expiry are prolonged by the app backend (proxy.sub_refresh_url). */
    proxy_sub_refresh: z.boolean().default(false),
    /** The named proxy (top-level `proxies`) that proxy_subscribe asks; absent or "default": proxy.subscribe_url. */
    subscribe_proxy_name: z.string().min(1).optional(),
    /** The named proxy that proxy_publish asks; absent or "default": proxy.publish_url. */
    publish_proxy_name: z.string().min(1).optional(),
    /** The named proxy that proxy_sub_refresh asks; absent or "default": proxy.sub_refresh_url. */
    sub_refresh_proxy_name: z.string().min(1).optional(),
  })
  .strict();

export type NamespaceOptionsInput = z.input<typeof namespaceOptions>;
export type NamespaceOptions = z.infer<typeof namespaceOptions>;

const namespaceName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'namespace names are lowercase letters, digits, "_" and "-"');

export const relaisConfig = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8000),
    node_name: z.string().min(1).max(128).optional(),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Key of the HTTP server API (header X-API-Key). */
    api_key: z.string().min(8, 'api_key must be at least 8 characters').optional(),
    token: z
      .object({
        /** HS256 secret. */
        hmac_secret: z.string().min(16, 'token.hmac_secret must be at least 16 characters').optional(),
        /** RS256 or ES256 public key, PEM (SPKI). */
        public_key: z.string().optional(),
        /** JWKS endpoint; keys are fetched and cached. */
        jwks_url: z.url().optional(),
        audience: z.string().optional(),
        issuer: z.string().optional(),
      })
      .strict()
      .prefault({}),
    /** Connections without a token get user "" (anonymous). */
    allow_anonymous: z.boolean().default(false),
    /** Allowed Origin values for WebSocket, SSE and CORS; empty allows any origin. */
    allowed_origins: z.array(z.string().min(1)).default([]),
    /** Namespace that `@alice` addresses: `@alice` publishes to `<personal_namespace>:alice`. */
    personal_namespace: namespaceName.default('user'),
    /** Options of channels without a namespace prefix. */
    default_namespace: namespaceOptions.prefault({}),
    namespaces: z.record(namespaceName, namespaceOptions).default({}),
    client: z
      .object({
        ping_interval: duration.prefault('25s'),
        pong_timeout: duration.prefault('8s'),
        /** A connection must send `connect` within this time. */
        connect_timeout: duration.prefault('10s'),
        /**
         * A subscribe that meets the message bus down (BROKER_UNAVAILABLE) is tried again for
         * up to this long before the client gets the error: a client refused goes into its
         * SDK's growing resubscribe backoff (up to 10 s) and stays away after the bus is back.
         * Keep it under the SDKs' command timeout (5 s by default); 0 refuses at once.
         */
        subscribe_bus_wait: duration.prefault('3s'),
        /** Largest WebSocket frame accepted; a larger one closes the connection with 1009. */
        max_frame_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(65_536),
        /** Largest publication data accepted from a client or the API. */
        max_publication_bytes: z.number().int().min(64).max(64 * 1024 * 1024).default(65_536),
        max_channels_per_connection: z.number().int().min(1).max(1_000_000).default(128),
        channel_max_length: z.number().int().min(8).max(1024).default(255),
        /** Outbound bytes queued for one connection before it is disconnected as slow. */
        max_queue_bytes: z.number().int().min(1024).default(4 * 1024 * 1024),
        history_max_limit: z.number().int().min(1).max(100_000).default(1000),
        presence_max_size: z.number().int().min(1).max(1_000_000).default(10_000),
        /** Connections one user may hold open (cluster-wide with a bus); 0: no limit. */
        max_connections_per_user: z.number().int().min(0).default(100),
        /**
         * How long a node keeps following a channel after its last local subscriber left,
         * so that clients dropped together recover from memory; 0: stop at once.
         */
        channel_linger: duration.prefault('5s'),
        /**
         * Longest a message waits for others bound to the same connection so that they leave
         * in one write (Centrifugo PRO's `client.write_delay`): fewer system calls when a
         * connection gets several messages a few ms apart, at up to this much latency. 0:
         * written at the end of the event-loop turn that produced it.
         */
        write_delay: duration.refine((ms) => ms <= 1000, 'at most 1s').prefault('0ms'),
      })
      .strict()
      .prefault({}),
    /** HTTP server guards against slow and oversized requests (slowloris, header floods). */
    http: z
      .object({
        /** Time to receive a request's headers. */
        headers_timeout: duration.prefault('10s'),
        /** Time to receive a whole request (not SSE or WebSocket streams, which outlive it). */
        request_timeout: duration.prefault('30s'),
        keep_alive_timeout: duration.prefault('5s'),
        /** Largest request head (request line and headers), bytes; larger gets 431. */
        max_header_bytes: z.number().int().min(1024).max(1_048_576).default(16_384),
      })
      .strict()
      .prefault({}),
    /**
     * WebSocket permessage-deflate (RFC 7692), off by default: it trades memory per connection
     * and a deflate per large message per node (docs/performance.md) for bandwidth. Messages
     * under the threshold go uncompressed.
     */
    websocket: z
      .object({
        compression: z.boolean().default(false),
        /** Messages smaller than this many bytes are sent uncompressed. */
        compression_threshold: z.number().int().min(0).default(1024),
        /** zlib level, 1 (fastest) to 9 (smallest). */
        compression_level: z.number().int().min(1).max(9).default(1),
        /** LZ77 window of the server's deflate: 2^bits bytes (its context holds 4x that). */
        compression_window_bits: z.number().int().min(9).max(15).default(12),
        /** zlib memLevel of the server's deflate, 1-9: its internal state is 2^(memLevel+9) bytes. */
        compression_mem_level: z.number().int().min(1).max(9).default(5),
      })
      .strict()
      .prefault({}),
    /** Bidirectional emulation for clients without WebSocket (centrifuge-js' fallback transports). */
    emulation: z
      .object({
        /** `/connection/http_stream`. */
        http_stream: z.boolean().default(true),
        /** `/connection/sse` (the SDK's `sse` transport; the unidirectional `/sse` is apart). */
        sse: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    sse: z
      .object({
        heartbeat_interval: duration.prefault('20s'),
        max_channels: z.number().int().min(1).max(10_000).default(64),
        /** SSE streams one user may hold open on a node; 0: no limit. */
        max_streams_per_user: z.number().int().min(0).default(10),
      })
      .strict()
      .prefault({}),
    /**
     * Token buckets on message commands (publish, history, presence, rpc, send): per
     * connection and per user (seed 000: burst 30, 10/s), and per API key (off by default).
     * `disconnect_after` refusals in a row end the connection (3013 too many requests).
     */
    rate_limit: z
      .object({
        connection: rateLimit.prefault({ burst: 30, per_second: 10 }),
        user: rateLimit.prefault({ burst: 30, per_second: 10 }),
        api: rateLimit.prefault({ burst: 1000, per_second: 0 }),
        /**
         * `/emulation` requests (the commands of HTTP-streaming and SSE emulation sessions, carried
         * over the bus to the node holding the session) per session and per client IP, on each
         * instance; beyond them a request is refused whole with 429 before any command runs. The
         * IP limit is off by default: behind a reverse proxy every client has the proxy's address.
         */
        emulation: z
          .object({
            session: rateLimit.prefault({ burst: 50, per_second: 20 }),
            ip: rateLimit.prefault({ burst: 1000, per_second: 0 }),
          })
          .strict()
          .prefault({}),
        disconnect_after: z.number().int().min(1).default(50),
      })
      .strict()
      .prefault({}),
    /**
     * How long a presence entry lives without being refreshed: the bound within which the
     * entries of a dead node disappear. Nodes refresh their own every third of it.
     */
    presence_ttl: duration.prefault('60s'),
    /**
     * With a bus configured: `fail` refuses to start when it is unreachable at boot; `degraded`
     * starts anyway (not ready, publishes refused) and keeps retrying.
     */
    bus_start: z.enum(['fail', 'degraded']).default('fail'),
    /** Guards bus publishes (seed 000): failures in a row that open it, and how long it stays open. */
    circuit_breaker: z
      .object({
        failure_threshold: z.number().int().min(1).default(5),
        open_duration: duration.prefault('30s'),
      })
      .strict()
      .prefault({}),
    /** How long a publish idempotency key is remembered. */
    idempotency_ttl: duration.prefault('5m'),
    /**
     * Named proxies (Centrifugo's `proxies`), chosen per namespace by subscribe_proxy_name,
     * publish_proxy_name and sub_refresh_proxy_name: each its own backend, timeout and headers.
     */
    proxies: z
      .array(
        z
          .object({
            /** "default" is taken: it names the `proxy.*_url` ones. */
            name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'proxy names are letters, digits, "_", "." and "-"'),
            endpoint: z.url(),
            timeout: duration.prefault('1s'),
            retries: z.number().int().min(0).max(5).default(1),
            http_headers: z.array(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name')).default([]),
            static_http_headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name'), z.string()).default({}),
            binary_encoding: z.boolean().default(false),
            include_connection_meta: z.boolean().default(false),
          })
          .strict(),
      )
      .default([]),
    /** The app backend's hooks (docs/proxy.md): Centrifugo's proxy request and result JSON over HTTP POST. */
    proxy: z
      .object({
        /** Connections without a token are authenticated here (cookies, headers, connect data). */
        connect_url: z.url().optional(),
        /** Connections the connect proxy gave an expiry are prolonged here when it comes. */
        refresh_url: z.url().optional(),
        /** Used by the namespaces with proxy_subscribe. */
        subscribe_url: z.url().optional(),
        /** Used by the namespaces with proxy_publish. */
        publish_url: z.url().optional(),
        /** Used by the namespaces with proxy_sub_refresh. */
        sub_refresh_url: z.url().optional(),
        /** Client `rpc` commands are POSTed here; without it rpc answers "method not found". */
        rpc_url: z.url().optional(),
        /**
         * Rpc namespaces routed to backends of their own, as Centrifugo's: a method `billing:charge`
         * goes to the URL of `billing`; methods of no namespace listed go to rpc_url.
         */
        rpc_namespaces: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'rpc namespace names are letters, digits, "_", "." and "-"'), z.url()).default({}),
        /** Client `send` messages are POSTed here; without it they are dropped. */
        send_url: z.url().optional(),
        /** Most time one proxy request may take, retries included; past it the client gets a temporary error. */
        timeout: duration.prefault('5s'),
        /**
         * Attempts after the first when the backend could not be reached at all (connection
         * refused, name not resolved): the backend never saw the request, so any hook may be
         * retried. A request that timed out, was cut or got an answer is never retried.
         */
        retries: z.number().int().min(0).max(5).default(1),
        /** Headers of the client's HTTP request (WebSocket upgrade) forwarded to every proxy request, such as "Cookie". */
        http_headers: z.array(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name')).default([]),
        /** Headers the client sets in its connect command (centrifuge-js `headers` option) forwarded; client-controlled. */
        emulated_headers: z.array(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name')).default([]),
        /** Headers added to every proxy request (a shared secret the backend checks, say); the lowest priority. */
        static_headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name'), z.string()).default({}),
        /** Send the connection's meta (from the connect proxy's result) in the other proxy requests. */
        include_connection_meta: z.boolean().default(false),
        /** Payloads go to the backend as `b64data` (base64 of their bytes) instead of `data`, `encoding: "binary"` (Centrifugo's option). */
        binary_encoding: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /**
     * Lifecycle webhooks (docs/webhooks.md): batches of events POSTed to `url`, signed with
     * HMAC-SHA256 of the body under `secret`. Best effort: retried with backoff, then dropped.
     */
    webhooks: z
      .object({
        url: z.url().optional(),
        /** Key of the X-Relais-Signature header; required with `url`. */
        secret: z.string().min(16, 'webhooks.secret: at least 16 characters').optional(),
        events: z.array(webhookEvent).min(1).default(['connection_closed', 'unsubscribed', 'channel_occupied', 'channel_vacated']),
        /** Most events in one request. */
        batch_size: z.number().int().min(1).max(10_000).default(100),
        /** Longest an event waits for others to fill its batch. */
        batch_wait: duration.prefault('100ms'),
        /** Events waiting to be sent; past it new events are dropped (and counted). */
        queue_size: z.number().int().min(1).max(10_000_000).default(100_000),
        timeout: duration.prefault('5s'),
        /** Tries of one batch before its events are counted failed and dropped. */
        max_attempts: z.number().int().min(1).max(100).default(8),
        /** Wait before the first retry, doubled after each failure up to backoff_max. */
        backoff_min: duration.prefault('200ms'),
        backoff_max: duration.prefault('10s'),
      })
      .strict()
      .refine((w) => w.url === undefined || w.secret !== undefined, { message: 'webhooks.secret is required with webhooks.url', path: ['secret'] })
      .prefault({}),
    /**
     * Consumers of the app's own queues (docs/outbox.md): each row or message is a server API
     * command (`method`, `payload`) run by Relais, with its id as the publish's idempotency key.
     */
    consumers: z
      .object({
        /** A transactional outbox table in the app's PostgreSQL (Centrifugo's schema). */
        postgres: z
          .object({
            url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL'),
            /** The outbox table, optionally schema-qualified. */
            table: z.string().regex(/^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/, 'a lowercase table name, optionally schema.table'),
            /** Partitions 0 to partitions-1, each published in id order by one instance at a time. */
            partitions: z.number().int().min(1).max(1024).default(1),
            /** Rows read (and deleted) per transaction. */
            select_limit: z.number().int().min(1).max(10_000).default(100),
            /** How often an idle partition is read when no notification came. */
            poll_interval: duration.prefault('1s'),
            /** LISTEN channel whose notifications (payload: the partition number) wake a partition at once. */
            notify_channel: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).optional(),
          })
          .strict()
          .optional(),
        /** A Redis Stream read through a consumer group; entries have fields `method` and `payload`. */
        redis_stream: z
          .object({
            url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL'),
            stream: z.string().min(1).max(1024),
            group: z.string().min(1).max(256).default('relais'),
            batch: z.number().int().min(1).max(10_000).default(100),
            /** Longest one read blocks waiting for entries. */
            block: duration.prefault('1s'),
            /** Entries delivered to a consumer that died are taken over after this long unacknowledged. */
            claim_idle: duration.prefault('30s'),
          })
          .strict()
          .optional(),
        /** A NATS JetStream stream read through a durable consumer; messages are `{"method", "payload"}`. */
        nats_jetstream: z
          .object({
            url: z.string().regex(/^(nats|tls):\/\//, 'expected a nats:// or tls:// URL'),
            stream: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/),
            durable: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/).default('relais'),
            /** Only messages of this subject (wildcards allowed); all of the stream when absent. */
            subject: z.string().min(1).max(1024).optional(),
            batch: z.number().int().min(1).max(10_000).default(100),
          })
          .strict()
          .optional(),
      })
      .strict()
      .prefault({}),
    /** One server (redis://, rediss://), a Cluster (redis+cluster://h:p,h:p) or a Sentinel group (redis+sentinel://h:p,h:p/master). */
    redis_url: z
      .string()
      .regex(/^(rediss?|rediss?\+cluster|rediss?\+sentinel):\/\//, 'redis_url must start with redis://, rediss://, redis+cluster:// or redis+sentinel://')
      .optional(),
    /**
     * Replicas that must confirm a publication's history write (Redis WAIT) before it is
     * acknowledged; 0: none. Set 1 with Sentinel or a Cluster with replicas, so that a failover
     * loses no acknowledged publication.
     */
    redis_replica_acks: z.number().int().min(0).max(16).default(0),
    /** Longest wait for those replicas; past it the publish is refused (temporary, BROKER_UNAVAILABLE). */
    redis_replica_ack_timeout: duration.prefault('500ms'),
    nats_url: z.string().regex(/^(nats|tls):\/\//, 'nats_url must start with nats:// or tls://').optional(),
    /** Prefix of every key and subject Relais uses on the bus. */
    bus_prefix: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).default('relais'),
    /**
     * The durable store: PostgreSQL when `url` is set, otherwise SQLite in `data_dir`. Pool
     * settings and timeouts follow seed 002 (the environment gives them in milliseconds).
     */
    database: z
      .object({
        url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL').optional(),
        /** PostgreSQL schema of Relais's tables (must exist); absent: the server's default (public). */
        schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lowercase letters, digits and "_", at most 63').optional(),
        pool_max: z.number().int().min(1).max(10_000).default(20),
        pool_min: z.number().int().min(0).max(10_000).default(2),
        /** An idle connection above pool_min is closed after this. */
        pool_idle_timeout: duration.prefault('30s'),
        /** Most time to get a connection, opening one or waiting for a free one. */
        pool_connection_timeout: duration.prefault('2s'),
        /** Most time one statement may run (PostgreSQL statement_timeout); SQLite waits at most min(this, 5s) for a lock. */
        query_timeout: duration.prefault('30s'),
        /** Logs pool events and counts every 30 s. */
        debug_pool: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /**
     * The snapshot cache of latest-value reads (server API `latest`): a node that read a
     * channel's latest publication keeps following the channel for `ttl` after the last read,
     * so that further reads are answered from memory and stay current (every live publication
     * replaces the entry). `size`: channels followed that way at most (least recently read go first).
     */
    latest_cache: z
      .object({
        ttl: duration.prefault('10s'),
        size: z.number().int().min(0).max(1_000_000).default(10_000),
      })
      .strict()
      .prefault({}),
    /**
     * Job progress (docs/jobs.md): the channels of `namespace` carry a job's state; an SSE
     * stream of one of them sends each state as a `progress` event and, on a terminal status
     * (`status_field` in the data), a `complete` event, then ends.
     */
    jobs: z
      .object({
        namespace: namespaceName.default('batch'),
        status_field: z.string().min(1).max(64).default('status'),
        terminal_statuses: z.array(z.string().min(1).max(64)).min(1).default(['COMPLETED', 'PARTIAL', 'FAILED']),
      })
      .strict()
      .prefault({}),
    /** Folder of the embedded SQLite store (relais.sqlite), created when missing. */
    data_dir: z.string().min(1).default('./data'),
    /**
     * The chat feature (docs/chat.md): rooms of the `room` namespace, conversations of the `dm`
     * namespace, user status on `status:<user>`. Active when a store runs.
     */
    chat: z
      .object({
        /**
         * Follow user status (online, away, offline) and publish its changes on `status:<user>`:
         * a few bus operations per connect and disconnect. false: no status.
         */
        status: z.boolean().default(true),
        /** A connected user with no client command for this long is `away` (all their connections, all instances). */
        away_after: duration.prefault('5m'),
        /** How long a node trusts a membership answer of the store (positive and negative); 0: ask the store every time. */
        member_cache_ttl: duration.prefault('5s'),
        /** Membership answers a node keeps at most. */
        member_cache_size: z.number().int().min(0).max(10_000_000).default(10_000),
      })
      .strict()
      .prefault({}),
    /**
     * Telemetry (docs/telemetry.md, seed 003 case 2): device readings from MQTT and the server
     * API, aggregated into tumbling windows, published on `channel` and streamed to
     * dashboards over SSE (`GET /telemetry/stream`). Off unless `enabled`.
     */
    telemetry: z
      .object({
        enabled: z.boolean().default(false),
        /** Length of a tumbling window; windows start at multiples of it since the Unix epoch. */
        window: duration.prefault('5s'),
        /**
         * How long after its end a window still takes readings (late arrivals, clock drift)
         * before it closes; a reading for a closed window is refused (TIMESTAMP_LATE).
         */
        allowed_lateness: duration.prefault('500ms'),
        /**
         * With several instances: how long the merging instance waits, after a window closed,
         * for the partial aggregates of the instances it knows before publishing without them.
         */
        merge_wait: duration.prefault('1s'),
        /** How long the latest aggregate of a device and sensor stays in dashboards' snapshots. */
        latest_ttl: duration.prefault('60s'),
        /** Channel of the closed windows' aggregates (server-only publish). */
        channel: z.string().min(1).max(255).default('telemetry:metrics'),
        /** Accepted sensor types; a reading of another type is refused (UNKNOWN_SENSOR). */
        sensor_types: z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/)).min(1).max(1000).default(['temperature', 'vibration', 'pressure']),
        /** A reading up to this far ahead of the server's clock is clamped to its arrival time; further ahead it is refused. */
        max_future_skew: duration.prefault('2s'),
        /** Largest absolute value accepted: keeps sums finite whatever devices send. */
        value_limit: z.number().positive().max(1e300).default(1e12),
        /** Readings per device (all its sensors): a flooding device gets DEVICE_RATE_LIMITED past it. */
        device_rate_limit: rateLimit.prefault({ burst: 100, per_second: 50 }),
        /** Device and sensor pairs in the open windows of one instance; past it new pairs are refused (TOO_MANY_SERIES). */
        max_series: z.number().int().min(1).max(100_000_000).default(1_000_000),
        /** Readings in one `telemetry_ingest` call. */
        max_batch: z.number().int().min(1).max(100_000).default(5000),
        mqtt: z
          .object({
            /** External broker (`mqtt://host:1883`); without it Relais embeds one on `port`. */
            broker_url: z.string().regex(/^(mqtts?|wss?|tcp):\/\//, 'expected an mqtt://, mqtts://, ws:// or wss:// URL').optional(),
            /** Topic filter of readings; a `+` level is the device id (checked against the payload's deviceId). */
            topic: z.string().min(1).max(255).default('devices/+/metrics'),
            /**
             * External broker only: subscribe as `$share/<group>/<topic>`, so that instances
             * share the readings and each counts once. Empty: every instance gets every reading
             * (one instance only).
             */
            shared_group: z.string().regex(/^[A-Za-z0-9_-]{0,64}$/).default('relais'),
            qos: z.union([z.literal(0), z.literal(1)]).default(0),
            /** Port of the embedded broker (MQTT over TCP, on `host`). */
            port: z.number().int().min(0).max(65535).default(1883),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type RelaisConfigInput = z.input<typeof relaisConfig>;
export type RelaisConfig = z.infer<typeof relaisConfig>;

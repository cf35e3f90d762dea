import type { RelaisConfigInput } from './schema.js';

/** Used only outside production, and said so in a start-up warning. */
export const DEV_API_KEY = 'relais-dev-api-key';
export const DEV_TOKEN_SECRET = 'relais-dev-token-secret-change-me';

/** Embedded namespaces that a configuration defining one of the same name replaces instead of adjusting (see loadConfig). */
export const REPLACEABLE_NAMESPACES: readonly string[] = ['room', 'dm', 'status', 'batch'];

/**
 * What Relais runs with when nothing is configured: the in-memory bus and two namespaces,
 * so that the quick start works end to end.
 * - `chat:<room>`: chat rooms. Any authenticated user subscribes and publishes; every message
 *   kept in the durable store (SQLite under RELAIS_DATA_DIR, or DATABASE_URL), recovery after
 *   reconnect, presence with join/leave, SSE globs.
 * - `user:<id>`: personal channels. Only alice subscribes to `user:alice`; any authenticated
 *   user may publish there (`@alice` direct messages: stored in the conversation, a copy on
 *   each of the two users' personal channels).
 * - `room:<name>`: chat rooms with members (docs/chat.md): only members subscribe, publish and
 *   read history and presence; stored; the last 50 messages on join.
 * - `dm:<a>,<b>`: the conversation of two users (ids sorted), stored, readable by those two.
 * - `status:<user>`: the user's status (online, away, offline), for any authenticated user to
 *   follow; only the server publishes, the latest on join.
 * - `batch:<id>`: job progress (docs/jobs.md): a latest-value channel (cache recovery mode) that
 *   only the server publishes in (workers through the HTTP API); any authenticated user follows
 *   it, gets the job's current state first, and an SSE stream ends after its terminal status.
 *   History keeps the last 100 states for an hour, so that an SSE stream resumed mid-job misses none.
 * - `telemetry:metrics`: the aggregates of closed telemetry windows (docs/telemetry.md), kept a
 *   minute; only the server publishes.
 * Channels without a namespace: authenticated users subscribe, only the server publishes.
 */
export function embeddedDefaults(production: boolean): RelaisConfigInput {
  return {
    // Development secrets must not be reachable from the network: dev mode binds loopback.
    host: production ? '0.0.0.0' : '127.0.0.1',
    namespaces: {
      chat: {
        persist: true,
        force_recovery: true,
        presence: true,
        join_leave: true,
        allow_subscribe: 'authenticated',
        allow_publish: 'authenticated',
        allow_history: true,
        allow_presence: true,
        allow_wildcard: true,
      },
      room: {
        persist: true,
        force_recovery: true,
        history_on_join: 50,
        presence: true,
        join_leave: true,
        allow_subscribe: 'members',
        allow_publish: 'members',
        allow_history: true,
        allow_presence: true,
      },
      dm: {
        persist: true,
        force_recovery: true,
        history_on_join: 50,
        presence: true,
        allow_subscribe: 'members',
        allow_publish: 'members',
        allow_history: true,
        allow_presence: true,
      },
      status: {
        history_size: 1,
        history_ttl: '24h',
        force_recovery: true,
        history_on_join: 1,
        allow_subscribe: 'authenticated',
        allow_publish: 'server-only',
      },
      batch: {
        history_size: 100,
        history_ttl: '1h',
        force_recovery: true,
        force_recovery_mode: 'cache',
        allow_subscribe: 'authenticated',
        allow_publish: 'server-only',
      },
      telemetry: {
        history_size: 100,
        history_ttl: '60s',
        allow_subscribe: 'authenticated',
        allow_publish: 'server-only',
        allow_history: true,
      },
      user: {
        history_size: 100,
        history_ttl: '24h',
        force_recovery: true,
        allow_subscribe: 'owner',
        allow_publish: 'authenticated',
        allow_history: true,
      },
    },
  };
}
